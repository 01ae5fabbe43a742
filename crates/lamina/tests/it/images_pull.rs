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

/// A server in `dir/data` that pulls from `allow` (`*`: anywhere), `insecure` over plain HTTP.
fn server_pulling_from(dir: &Path, allow: &str, insecure: &str) -> (ServerProcess, Aws) {
    let config = dir.join("lamina.toml");
    std::fs::write(
        &config,
        format!("[images]\npull_from = [\"{allow}\"]\ninsecure_registries = [\"{insecure}\"]\n"),
    )
    .unwrap();
    let server = ServerProcess::start(&dir.join("data"), &["--config", config.to_str().unwrap()]);
    let aws = Aws::new(server.endpoint());
    (server, aws)
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

    let (_server, aws) = server_pulling_from(work.path(), &mirror.host, &mirror.host);
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
    refused(&aws, "missing", &format!("{}/mirror/fn:nope", mirror.host));
}

/// CreateFunction of image `uri` refused with `InvalidParameterValueException`: its message.
fn refused(aws: &Aws, name: &str, uri: &str) -> String {
    let e = aws
        .create_image(name, &format!("ImageUri={uri}"), &[])
        .unwrap_err();
    assert!(e.contains("InvalidParameterValueException"), "{e}");
    e
}

/// A registry on a loopback port that answers a manifest request with a body of 1 GiB (spaces,
/// as fast as loopback carries them), and anything else under `/v2/` with `{}`.
struct EndlessRegistry {
    host: String,
    _thread: std::thread::JoinHandle<()>,
}

impl EndlessRegistry {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let thread = std::thread::spawn(move || {
            // Two connections a pull (the check of `/v2/`, the manifest), each its own thread.
            for stream in listener.incoming().take(32) {
                let Ok(s) = stream else { return };
                std::thread::spawn(move || Self::answer(s));
            }
        });
        Self {
            host,
            _thread: thread,
        }
    }

    fn answer(mut s: std::net::TcpStream) {
        use std::io::{Read, Write};
        const EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
            Content-Length: 2\r\nConnection: close\r\n\r\n{}";
        const ENDLESS: &[u8] = b"HTTP/1.1 200 OK\r\n\
            Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
            Content-Length: 1073741824\r\nConnection: close\r\n\r\n";
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        if !String::from_utf8_lossy(&head).contains("/manifests/") {
            let _ = s.write_all(EMPTY);
            return;
        }
        // Slow to start, so that the pulls of callers who come together overlap.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = s.write_all(ENDLESS);
        // Until the reader goes (its process killed by its memory limit), 1 GiB at most.
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..1024 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    }
}

/// Sends CreateFunction for an image of `registry` (unsigned, as the server takes it without
/// `--auth`) and returns the connection, to be dropped: the caller hanging up.
fn create_and_hang_up(
    server: std::net::SocketAddr,
    name: &str,
    registry: &str,
) -> std::net::TcpStream {
    use std::io::Write;
    let body = serde_json::json!({
        "FunctionName": name,
        "PackageType": "Image",
        "Code": { "ImageUri": format!("{registry}/evil/fn:v1") },
        "Role": "arn:aws:iam::000000000000:role/r",
    })
    .to_string();
    let mut s = std::net::TcpStream::connect(server).unwrap();
    write!(
        s,
        "POST /2015-03-31/functions HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

/// The pull processes (`lamina image-pull`) the server `pid` runs.
fn pulls_running(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`
            let ppid = stat.rfind(')').and_then(|at| {
                stat[at + 1..]
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            });
            ppid == Some(pid)
                && std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"image-pull"))
        })
        .count()
}

/// Peak resident memory of a process, KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_registry_that_answers_without_end_fails_the_pull_and_not_the_server() {
    let work = tempfile::tempdir().unwrap();
    let registry = EndlessRegistry::start();
    let (server, aws) = server_pulling_from(work.path(), "*", &registry.host);
    let before = peak_kib(server.child.id());
    let e = refused(&aws, "endless", &format!("{}/evil/fn:v1", registry.host));
    assert!(e.contains("256 MiB of memory a pull may use"), "{e}");
    // The manifest never reached the server's memory (the pull's process held it, up to its
    // limit, and died of it): 2 GB more with the manifest read in the server.
    let grown = peak_kib(server.child.id()) - before;
    assert!(
        grown < 64 << 10,
        "the server's peak memory grew by {grown} KiB"
    );
    // Two waves of four callers that hang up after 300 ms, the second while the first's pulls
    // run: a pull whose caller went keeps its turn to its end, so at most four run at once
    // (the second wave's wait for a turn ends with its callers).
    let pid = server.child.id();
    let wave = |n: usize| {
        let callers: Vec<_> = (0..4)
            .map(|i| create_and_hang_up(server.addr, &format!("gone{n}{i}"), &registry.host))
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(callers);
    };
    let most = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut most, mut seen) = (0, false);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                let now = pulls_running(pid);
                most = most.max(now);
                seen |= now > 0;
                if seen && now == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            most
        });
        wave(1);
        wave(2);
        sampler.join().unwrap()
    });
    assert!((2..=4).contains(&most), "{most} pulls ran at once");
    // The server goes on, and the failed pulls left nothing staged.
    aws.ok(&["lambda", "list-functions"]);
    // (The server removes a pull's directory once its process has ended.)
    let staging = work.path().join("data/images/staging");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
