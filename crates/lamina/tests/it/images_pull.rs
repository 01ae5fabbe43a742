//! Image functions pulled from another registry: Debian's reference registry on 127.0.0.1,
//! allowed by the server's configuration.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;
use crate::images::{Aws, busybox_image, skopeo};

/// Debian's reference registry on a loopback port, storing in `dir`; killed on drop.
struct MirrorRegistry {
    child: std::process::Child,
    host: String,
}

impl MirrorRegistry {
    fn start(dir: &Path) -> Self {
        assert!(
            Command::new("docker-registry")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "docker-registry is not installed: `apt-get install docker-registry` (.ci/run installs it)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let me = Self {
            child,
            host: format!("127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&me.host).is_ok() {
                return me;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", me.host);
    }
}

impl Drop for MirrorRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_image_on_an_allowed_registry_is_pulled_and_runs() {
    let work = tempfile::tempdir().unwrap();
    let mirror = MirrorRegistry::start(work.path());
    let layout = work.path().join("layout");
    busybox_image(&layout, "v1", "mirrored");
    let out = Command::new(skopeo())
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/mirror/fn:v1", mirror.host))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let data = work.path().join("data");
    let config = work.path().join("lamina.toml");
    std::fs::write(
        &config,
        format!(
            "[images]\npull_from = [\"{h}\"]\ninsecure_registries = [\"{h}\"]\n",
            h = mirror.host
        ),
    )
    .unwrap();
    let server = ServerProcess::start(&data, &["--config", config.to_str().unwrap()]);
    let aws = Aws::new(server.endpoint());
    let uri = format!("{}/mirror/fn:v1", mirror.host);
    aws.create_image("pulled", &format!("ImageUri={uri}"), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let got = aws.ok(&["lambda", "get-function", "--function-name", "pulled"]);
    let resolved = got["Code"]["ResolvedImageUri"].as_str().unwrap();
    assert!(
        resolved.starts_with(&format!("{}/mirror/fn@sha256:", mirror.host)),
        "{resolved}"
    );
    let out = aws.invoke("pulled", work.path());
    assert_eq!(out["greeting"], "mirrored", "{out}");
    assert_eq!(out["old"], "gone");
    // A tag the registry does not have is the registry's error, in Lambda's type.
    let e = aws
        .create_image(
            "missing",
            &format!("ImageUri={}/mirror/fn:nope", mirror.host),
            &[],
        )
        .unwrap_err();
    assert!(e.contains("InvalidParameterValueException"), "{e}");
}
