//! Test fixtures: servers, SDK clients, zips.

use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use lamina_server::{Config, FileConfig, Overrides};
use sha2::Digest;

pub const ROLE: &str = "arn:aws:iam::000000000000:role/lamina-test";

/// A server running in the test process, on a thread and runtime of its own, so that dropping it
/// (at the end of a test, or when a test panics) shuts it down completely: every environment is
/// destroyed and every cgroup removed before the drop returns.
pub struct TestApp {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestApp {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl TestApp {
    /// Shuts the server down completely and keeps its data directory, for a restart.
    pub fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server with default settings (plus `extra_toml`) on a free port.
pub async fn spawn_app_with(extra_toml: &str) -> TestApp {
    TestApp::start(extra_toml, None)
}

impl TestApp {
    /// Starts a server with default settings (plus `extra_toml`) on a free port of this
    /// namespace; with `netns`, the server's threads (and so its sandboxes' network layer) run
    /// in that network namespace, while its API stays reachable here.
    pub fn start(extra_toml: &str, netns: Option<PathBuf>) -> TestApp {
        Self::start_in(tempfile::tempdir().unwrap(), extra_toml, netns)
    }

    /// Starts a server on the data directory `dir` (a fresh one, or one a stopped server kept).
    pub fn start_in(dir: tempfile::TempDir, extra_toml: &str, netns: Option<PathBuf>) -> TestApp {
        let raw: FileConfig = toml::from_str(extra_toml).expect("test configuration parses");
        let mut config = Config::from_parts(
            raw,
            Overrides {
                data_dir: Some(dir.path().to_path_buf()),
                listen: Some("127.0.0.1:0".into()),
                verify_auth: None,
                // The sandboxes start as in production: `lamina-init`, from inside the server.
                init_exe: None,
                // Test servers share the machine's network namespace: only the network tests,
                // which run the server's network layer in namespaces of their own, turn egress
                // on.
                egress: (!extra_toml.contains("[network]")).then_some(false),
            },
        )
        .unwrap();
        // Image pulls run this binary's `image-pull`, not the test's.
        config.image_pulls.exe = Some(env!("CARGO_BIN_EXE_lamina").into());
        let listener = std::net::TcpListener::bind(config.listen).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Some(ns) = netns {
                let f = std::fs::File::open(&ns).expect("the test's network namespace");
                // SAFETY: setns with a descriptor we own; it moves only this thread, and the
                // runtime's threads, made from it, start there.
                let rc =
                    unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns into {}", ns.display());
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the test server");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                lamina_server::run(config, listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
            });
        });
        let client = sdk_client(&format!("http://{addr}"), "test", "test", "us-east-1");
        TestApp {
            addr,
            dir,
            client,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

/// The official SDK pointed at `endpoint`, with retries off so errors surface as they are.
pub fn sdk_client(endpoint: &str, key: &str, secret: &str, region: &str) -> Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(key, secret, None, None, "lamina-tests"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// A zip with the given (name, contents) entries.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A small Python function package; `tag` makes its bytes (and hash) unique.
pub fn python_zip(tag: &str) -> Vec<u8> {
    zip_of(&[(
        "app.py",
        format!("def handler(event, context):\n    return {tag:?}\n").as_bytes(),
    )])
}

/// What the probe function (`probe.py`, action `probe`) saw of the root: none of the host's
/// `/etc` nor of its top-level directories.
pub fn assert_no_host_dirs(b: &serde_json::Value) {
    assert_eq!(b["shadow"], false, "the host's /etc is not visible: {b}");
    assert_eq!(b["host_root_home"], false, "{b}");
    let entries: Vec<&str> = b["root_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for forbidden in ["root", "home", "work", "srv", "boot"] {
        assert!(
            !entries.contains(&forbidden),
            "/{forbidden} must not exist inside: {entries:?}"
        );
    }
}

/// Probes new functions (`PREFIX-0`, `PREFIX-1`, …) with `check` until a start takes an
/// interpreter started ahead: the first start is a plain one. Fails after 40.
pub async fn probe_until_ahead(
    c: &aws_sdk_lambda::Client,
    prefix: &str,
    port: u16,
    check: impl Fn(&serde_json::Value),
) {
    for i in 0..40 {
        let b = probe_python(c, &format!("{prefix}-{i}"), port).await;
        check(&b);
        if i == 0 {
            assert_eq!(b["ahead"], false, "{b}");
        }
        if b["ahead"] == true {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("no start took an interpreter started ahead within 40 tries");
}

/// Creates `name`, a Python function of `probe.py`, and invokes its `probe` action.
async fn probe_python(c: &aws_sdk_lambda::Client, name: &str, port: u16) -> serde_json::Value {
    let python = host_python();
    c.create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::from(python.as_str()))
        .handler("probe.handler")
        .role(ROLE)
        .timeout(10)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip_of(&[(
                    "probe.py",
                    include_bytes!("probe.py"),
                )])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    invoke_json(
        c,
        name,
        &serde_json::json!({"action": "probe", "port": port}),
    )
    .await
}

/// The Python runtime this host serves: the newest `python3.X` in /usr/bin.
pub fn host_python() -> String {
    (9..=14)
        .rev()
        .map(|m| format!("python3.{m}"))
        .find(|p| Path::new("/usr/bin").join(p).exists())
        .expect("these tests need a python3.X interpreter in /usr/bin (Debian: apt-get install python3)")
}

/// A `provided.al2023` bootstrap in shell (curl, as AWS's tutorial does) that sleeps `$SLEEP`
/// seconds (0 if unset) and then echoes the event.
pub const SHELL_RUNTIME: &[u8] = b"#!/bin/sh\nwhile true; do\n  H=$(mktemp)\n  EV=$(curl -sS -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\")\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  sleep ${SLEEP:-0}\n  curl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" -d \"$EV\"\ndone\n";

/// A zip with [`SHELL_RUNTIME`] as its executable `bootstrap`.
pub fn shell_runtime_zip() -> Vec<u8> {
    bootstrap_zip(SHELL_RUNTIME)
}

/// A zip with `script` as its executable `bootstrap`.
pub fn bootstrap_zip(script: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    w.write_all(script).unwrap();
    w.finish().unwrap().into_inner()
}

/// `CodeSha256` as Lambda computes it.
pub fn code_sha256(zip: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(zip))
}

/// Creates a `provided.al2023` function (handler `app.handler`) and returns its configuration.
pub async fn create(
    client: &Client,
    name: &str,
    zip: Vec<u8>,
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    client
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("app.handler")
        .role(ROLE)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)))
}

/// `(code, message)` of an SDK error.
/// Invokes `name` with `event`, asserts it answered without a function error, and returns the
/// answer as JSON.
pub async fn invoke_json(c: &Client, name: &str, event: &serde_json::Value) -> serde_json::Value {
    let out = c
        .invoke()
        .function_name(name)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
    let raw = out.payload().unwrap().as_ref().to_vec();
    let answer = String::from_utf8_lossy(&raw);
    assert_eq!(out.function_error(), None, "{name}: {answer}");
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{name}: {e}: {answer}"))
}

pub fn error_of<E: ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or("<no code>").to_owned(),
        e.message().unwrap_or("<no message>").to_owned(),
    )
}

pub fn describe<E: ProvideErrorMetadata + std::fmt::Debug>(e: &E) -> String {
    match e.code() {
        Some(c) => format!("{c}: {}", e.message().unwrap_or_default()),
        None => format!("{e:?}"),
    }
}

/// Asserts an SDK result is an error with this code and a message containing `needle`.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, E>,
    code: &str,
    needle: &str,
) {
    match r {
        Ok(v) => panic!("expected {code} containing {needle:?}, got success: {v:?}"),
        Err(e) => {
            let (c, m) = error_of(&e);
            assert_eq!(c, code, "wrong error type; message was: {m}; error: {e:?}");
            assert!(
                m.contains(needle),
                "{code} message {m:?} does not contain {needle:?}"
            );
        }
    }
}

/// The hex hashes of every package on disk (zips and extracted trees).
pub fn code_on_disk(data_dir: &Path) -> (Vec<String>, Vec<String>, usize) {
    let names = |p: PathBuf| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .trim_end_matches(".zip")
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let staging = std::fs::read_dir(data_dir.join("code/staging"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    (
        names(data_dir.join("code/zips")),
        names(data_dir.join("code/trees")),
        staging,
    )
}

/// Base64 `CodeSha256` to the hex form used on disk.
pub fn sha_hex(b64: &str) -> String {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `lamina` binary running as its own process.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_via(&[], data_dir, extra)
    }

    /// Starts the server through a wrapper command (e.g. `setpriv` to drop root).
    pub fn start_via(wrapper: &[&str], data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_binary(
            Path::new(env!("CARGO_BIN_EXE_lamina")),
            wrapper,
            data_dir,
            extra,
        )
    }

    /// Starts a given copy of the `lamina` binary (which carries `lamina-init` for its sandboxes).
    pub fn start_binary(binary: &Path, wrapper: &[&str], data_dir: &Path, extra: &[&str]) -> Self {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let mut child = cmd
            .args([
                "server",
                "--no-egress",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the lamina binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
            .parse()
            .unwrap();
        Self { child, addr }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl ServerProcess {
    /// SIGTERM, as an operator would stop it, and waits for it to finish (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        self.stop_within(std::time::Duration::from_secs(30));
    }

    /// SIGTERM, and waits for the server to finish (SIGKILL after `limit`).
    pub fn stop_within(&mut self, limit: std::time::Duration) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: kill takes integers only.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The name of a server's parent cgroup: `lamina-<FNV-1a of its work directory>`.
pub fn cgroup_parent(data_dir: &Path) -> String {
    lamina_sandbox::cgroup::parent_name(&data_dir.canonicalize().unwrap().join("run"))
}

/// Environment cgroups under a server's parent group, in any controller's hierarchy.
pub fn env_cgroups(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for hierarchy in ["", "memory", "cpu", "pids", "freezer"] {
        let dir = Path::new("/sys/fs/cgroup").join(hierarchy).join(parent);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            out.extend(
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("env-"))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Every log line of a function, oldest first, including every line printed before the call:
/// the server stores lines in batches at most 50 ms apart (its writer's interval), so a wait of
/// five intervals leaves room for a loaded machine.
pub async fn log_lines(endpoint: &str, function: &str) -> Vec<String> {
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    let mut after = 0i64;
    loop {
        let v: serde_json::Value = http
            .get(format!("{endpoint}/_lamina/logs/{function}?after={after}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = v["events"].as_array().unwrap();
        if events.is_empty() {
            return out;
        }
        for e in events {
            out.push(e["message"].as_str().unwrap().to_owned());
        }
        after = v["next"].as_i64().unwrap();
    }
}

/// Installs Python packages once per target directory, under `name`, by running `install` with
/// the directory: serialised across threads and test processes by a lock file, and marked
/// complete only once `install` succeeded (a half-finished attempt is started over).
pub fn installed_once(name: &str, install: impl FnOnce(&Path) -> bool) -> PathBuf {
    use std::os::fd::AsRawFd;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join(name);
    let lock = std::fs::File::create(base.join(format!("{name}.lock"))).expect("lock file");
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let done = dir.join(".installed");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        install(&dir),
        "installing {name} failed: these tests need python3 with venv and pip, and PyPI"
    );
    std::fs::write(&done, b"").expect("marker");
    dir
}

/// A virtualenv with the AWS CLI, boto3 and cryptography (from PyPI), installed on first use.
pub fn python_venv() -> PathBuf {
    venv_with("aws-venv-2", &["awscli", "boto3", "cryptography"])
}

/// A virtualenv named `name` with `packages` from PyPI, installed on first use.
pub fn venv_with(name: &str, packages: &[&str]) -> PathBuf {
    installed_once(name, |venv| {
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(packages)
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// `awslambdaric` and its dependencies for the host's Python, installed once per target dir.
pub fn awslambdaric(python: &str) -> PathBuf {
    let version = python.trim_start_matches("python").to_owned();
    installed_once(&format!("awslambdaric-{version}"), |dir| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(dir)
            .args([
                "--only-binary=:all:",
                "--python-version",
                &version,
                "--platform",
                "manylinux2014_x86_64",
                "awslambdaric",
            ])
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A directory tree as (path, bytes) entries.
pub fn tree(root: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            tree(&e.path(), &format!("{name}/"), out);
        } else if e.file_type().unwrap().is_file() {
            out.push((name, std::fs::read(e.path()).unwrap()));
        }
    }
}

/// Whether a process exists and is not a zombie (an exited process not yet reaped by init).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// A `/proc/<pid>/status` field in kB.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

/// The server's Prometheus metrics (`/metrics`).
pub async fn metrics(endpoint: &str) -> String {
    reqwest::get(format!("{endpoint}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Creates a `provided.al2023` function whose executable `bootstrap` is `script`.
pub async fn create_script_function(
    c: &Client,
    name: &str,
    script: &[u8],
    memory_mb: i32,
    timeout_s: i32,
) {
    use aws_sdk_lambda::types::{FunctionCode, Runtime};
    c.create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("x")
        .role(ROLE)
        .memory_size(memory_mb)
        .timeout(timeout_s)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(bootstrap_zip(script)))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// Publishes `zip` as a version of the layer `name` in `c`'s account; its version's ARN.
pub async fn publish_layer(c: &Client, name: &str, zip: Vec<u8>) -> String {
    c.publish_layer_version()
        .layer_name(name)
        .content(
            aws_sdk_lambda::types::LayerVersionContentInput::builder()
                .zip_file(Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {}", describe(&e)))
        .layer_version_arn()
        .unwrap()
        .to_owned()
}
