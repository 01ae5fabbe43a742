//! Image functions pulled from another registry: Debian's reference registry on 127.0.0.1,
//! allowed by the server's configuration.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;
use crate::images::{Aws, busybox_image, skopeo};
use crate::network::Lab;

/// Debian's reference registry, storing in `dir`; killed on drop.
struct MirrorRegistry {
    child: std::process::Child,
    /// `host:port`, as seen from where it runs.
    host: String,
    /// The network namespace (of the test's lab) it runs in, if not this one.
    netns: Option<String>,
}

/// `cmd`, run in the network namespace `netns` if given.
fn command_in(netns: Option<&str>, cmd: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, cmd]);
            c
        }
        None => Command::new(cmd),
    }
}

impl MirrorRegistry {
    /// On a free loopback port of this network namespace.
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_in(dir, None, &format!("127.0.0.1:{port}"))
    }

    /// Listening on `addr` in the network namespace `netns`, if given.
    fn start_in(dir: &Path, netns: Option<&str>, addr: &str) -> Self {
        assert!(
            Command::new("docker-registry")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "docker-registry is not installed: `apt-get install docker-registry` (.ci/run installs it)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let child = command_in(netns, "docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let me = Self {
            child,
            host: addr.replace("0.0.0.0", "127.0.0.1"),
            netns: netns.map(str::to_owned),
        };
        let up = format!(
            "import socket; socket.create_connection(('127.0.0.1', {}), timeout=1)",
            me.host.rsplit(':').next().unwrap()
        );
        for _ in 0..100 {
            let probe = command_in(me.netns.as_deref(), "/usr/bin/python3")
                .args(["-c", &up])
                .stderr(std::process::Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return me;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {addr}");
    }

    /// Copies the OCI layout's `tag` to `repository:tag` here, with skopeo.
    fn push(&self, layout: &Path, tag: &str, repository: &str) {
        let out = command_in(self.netns.as_deref(), skopeo())
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repository}:{tag}", self.host))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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
        format!(
            "[images]\npull_from = [\"{allow}\"]\ninsecure_registries = [\"{insecure}\"]\n{}",
            [("A", 1), ("B", 2), ("C", 3)]
                .map(|(k, n)| format!(
                    "[[auth.keys]]\naccess_key_id = \"KEY{k}\"\nsecret_access_key = \"s\"\naccount = \"{}\"\n",
                    n.to_string().repeat(12)
                ))
                .concat()
        ),
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
    mirror.push(&layout, "v1", "mirror/fn");

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
    // The pull's process ran as a uid lent for it; what it fetched is stored as root's.
    let blobs = work.path().join("data/images/blobs/sha256");
    let owners: Vec<u32> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| std::os::unix::fs::MetadataExt::uid(&e.unwrap().metadata().unwrap()))
        .collect();
    assert!(
        owners.len() >= 3 && owners.iter().all(|u| *u == 0),
        "{owners:?}"
    );
    // A tag the registry does not have is the registry's error, in Lambda's type.
    refused(&aws, "missing", &format!("{}/mirror/fn:nope", mirror.host));
}

/// A registry that answers everything with a redirect to the same path on the metadata
/// service's address (where the lab's internet registry also listens).
const REDIRECTING: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(307)
        self.send_header("Location", "http://169.254.169.254:5000" + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_HEAD = do_GET
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H)
print("ready", flush=True)
s.serve_forever()
"#;

/// A registry that `*` alone allows is reached as functions reach the internet, from a network
/// namespace with their egress: the same registries are pulled from at a public address and at
/// the address an operator named, and refused at the metadata service's address (directly or by
/// a redirect) and at the host's own. (The lab: the server on `lh`, the stand-in host; `inet`,
/// the internet, holds 203.0.113.7 and 169.254.169.254.)
#[test]
fn a_registry_only_the_wildcard_allows_is_reached_as_functions_reach_the_internet() {
    let mut lab = Lab::new();
    let inet = lab.ns("inet");
    lab.serve_script(&inet, REDIRECTING, &["5001"]);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    busybox_image(&layout, "v1", "from afar");
    let internet = MirrorRegistry::start_in(&work.path().join("inet"), Some(&inet), "0.0.0.0:5000");
    let on_host =
        MirrorRegistry::start_in(&work.path().join("lh"), Some(&lab.ns("lh")), "0.0.0.0:5000");
    internet.push(&layout, "v1", "far/fn");
    on_host.push(&layout, "v1", "far/fn");
    let app = TestApp::start(
        "[network]\negress = true\npool = \"10.254.0.0/24\"\nspare = 1\n\
         [images]\npull_from = [\"*\", \"127.0.0.1:5000\"]\n\
         insecure_registries = [\"203.0.113.7:5000\", \"203.0.113.7:5001\", \"169.254.169.254:5000\", \"198.51.100.2:5000\", \"127.0.0.1:5000\"]\n",
        Some(lab.path("lh")),
    );
    let aws = Aws::new(app.endpoint());
    for (name, registry) in [("far", "203.0.113.7:5000"), ("named", "127.0.0.1:5000")] {
        aws.create_image(name, &format!("ImageUri={registry}/far/fn:v1"), &[])
            .unwrap_or_else(|e| panic!("{registry}: {e}"));
        let out = aws.invoke(name, work.path());
        assert_eq!(out["greeting"], "from afar", "{out}");
    }
    // The registry on the internet, at the metadata service's address, directly or redirected
    // there from a public one; the host's own, at the host's address: what functions cannot
    // reach (the connections time out after 10 s).
    for (name, registry) in [
        ("meta", "169.254.169.254:5000"),
        ("redirected", "203.0.113.7:5001"),
        ("host", "198.51.100.2:5000"),
    ] {
        let e = refused(&aws, name, &format!("{registry}/far/fn:v1"));
        assert!(
            e.contains(&format!("pulling {registry}/far/fn:v1 failed")),
            "{e}"
        );
    }
}

/// Without functions' network, a registry that `*` alone allows is not reached at all.
#[test]
fn without_functions_network_only_named_registries_are_pulled_from() {
    let work = tempfile::tempdir().unwrap();
    let registry = EndlessRegistry::start();
    let (_server, aws) = server_pulling_from(work.path(), "*", &registry.host);
    let e = refused(&aws, "unnamed", &format!("{}/evil/fn:v1", registry.host));
    assert!(
        e.contains("functions on this server have no network")
            && e.contains(&format!("name '{}' in [images] pull_from", registry.host)),
        "{e}"
    );
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
        std::thread::sleep(std::time::Duration::from_millis(3000));
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

/// Sends CreateFunction for an image of `registry` as the account of `key` (unsigned: the server
/// takes the key's account without `--auth`) and returns the connection, to be dropped: the
/// caller hanging up.
fn create_and_hang_up(
    server: std::net::SocketAddr,
    key: &str,
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
        "POST /2015-03-31/functions HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={key}/20261207/us-east-1/lambda/aws4_request, \
         SignedHeaders=host, Signature={}\r\nContent-Length: {}\r\n\r\n{body}",
        "0".repeat(64),
        body.len()
    )
    .unwrap();
    s
}

/// How many pull processes (`lamina image-pull`) the server `pid` runs.
fn pulls_running(pid: u32) -> usize {
    pull_processes(pid).len()
}

/// The `/proc` directories of the pull processes the server `pid` runs.
fn pull_processes(pid: u32) -> Vec<std::path::PathBuf> {
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
        .map(|e| e.path())
        .collect()
}

/// A process's `Uid:`, `CapEff:` and `NoNewPrivs:` lines, if it still runs.
fn credentials(proc_dir: &Path) -> Option<[String; 3]> {
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    Some([field("Uid:")?, field("CapEff:")?, field("NoNewPrivs:")?])
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
    let (server, aws) = server_pulling_from(work.path(), &registry.host, &registry.host);
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
    // Four callers of one account, then four of a second, two of a third and two more of the
    // first while the first's pulls run, all hanging up after a second: an account holds two
    // turns at most, the server four, and a pull whose caller went keeps its turn to its end
    // (the others' wait for a turn ends with their callers).
    let pid = server.child.id();
    let calls = |callers: &[(&str, usize)]| {
        let open: Vec<_> = callers
            .iter()
            .flat_map(|&(key, n)| (0..n).map(move |i| (key, i)))
            .map(|(key, i)| {
                create_and_hang_up(server.addr, key, &format!("{key}{i}"), &registry.host)
            })
            .collect();
        let mut most = 0;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < until {
            most = most.max(pulls_running(pid));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // A second in, the first pulls wait for their manifests, set up: each process the
        // server started waits for the first process of its PID namespace, which waits for
        // the second, which pulls.
        let children =
            |p: &Path| pull_processes(p.file_name().unwrap().to_str().unwrap().parse().unwrap());
        let creds: Vec<_> = pull_processes(pid)
            .iter()
            .flat_map(|outer| children(outer))
            .flat_map(|first| [children(&first), vec![first]].concat())
            .filter_map(|p| credentials(&p))
            .collect();
        drop(open);
        (most, creds)
    };
    let (one_account, creds) = calls(&[("KEYA", 4)]);
    let (all, _) = calls(&[("KEYB", 4), ("KEYC", 2), ("KEYA", 2)]);
    assert_eq!(one_account, 2, "pulls of one account at once");
    assert_eq!(all, 4, "pulls at once");
    // Each pull runs as a uid of the server's range, without capabilities or a way to regain
    // them, however a registry's answers might drive it.
    assert_eq!(creds.len(), 4, "two pulls, two processes each: {creds:?}");
    for [uids, caps, nnp] in &creds {
        assert!(
            uids.split(' ')
                .all(|u| u.parse::<u32>().unwrap() >= 1_000_000_000),
            "a pull runs as {uids}"
        );
        assert_eq!(caps, "0000000000000000");
        assert_eq!(nnp, "1");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pulls_running(pid) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pulls did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The process the server started, killed (as its watchdog does) while the pull waits for
    // the registry's manifest: the pull's PID namespace goes with it at once.
    let caller = create_and_hang_up(server.addr, "KEYC", "killed", &registry.host);
    let pid_of = |p: &Path| -> u32 { p.file_name().unwrap().to_str().unwrap().parse().unwrap() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (outer, inside) = loop {
        assert!(std::time::Instant::now() < deadline, "no pull started");
        if let Some(outer) = pull_processes(pid).first() {
            let first = pull_processes(pid_of(outer));
            if let Some(second) = first.first().map(|f| pull_processes(pid_of(f))) {
                let inside = [first, second].concat();
                // Both set up (their parent-death signal comes right after).
                let set_up = |p: &std::path::PathBuf| credentials(p).is_some_and(|c| c[2] == "1");
                if inside.len() == 2 && inside.iter().all(set_up) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    break (pid_of(outer), inside);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // SAFETY: kill takes integers only.
    unsafe { libc::kill(outer as i32, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let alive = |p: &std::path::PathBuf| {
        std::fs::read_to_string(p.join("status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X')))
        })
    };
    while inside.iter().any(alive) {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull's processes outlived the one the server started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(caller);
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
