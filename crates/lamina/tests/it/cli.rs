//! The `lamina` CLI against a running server: deploy (create, then update), ls, show, rm,
//! invoke, logs (recent lines and a live tail), top.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::sdk_auth::AUTH;

const ALICE: (&str, &str) = ("AKIDALICE", "alice-secret");
const BOB: (&str, &str) = ("AKIDBOB", "bob-secret");

/// `lamina ARGS --endpoint ENDPOINT`, unsigned or signed with `key`.
fn command(endpoint: &str, args: &[&str], key: Option<(&str, &str)>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lamina"));
    c.args(args).args(["--endpoint", endpoint]);
    match key {
        Some((id, secret)) => c
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret),
        None => c
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY"),
    };
    c
}

fn lamina(endpoint: &str, args: &[&str]) -> Output {
    lamina_as(endpoint, args, None)
}

fn lamina_as(endpoint: &str, args: &[&str], key: Option<(&str, &str)>) -> Output {
    command(endpoint, args, key)
        .output()
        .expect("the lamina binary runs")
}

fn ok_json(out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "lamina failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The writing end of a pipe whose reader is closed.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).unwrap();
}

#[test]
fn deploy_ls_show_rm() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "app.py", b"def handler(e, c):\n    return 1\n");

    let created = ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "cli-fn",
            "--runtime",
            "provided.al2023",
            "--handler",
            "app.handler",
            "--memory",
            "256",
            "--env",
            "AA=1",
            "--env",
            "BB=two",
            "--json",
        ],
    ));
    assert_eq!(created["FunctionName"], "cli-fn");
    assert_eq!(created["State"], "Pending");
    assert_eq!(created["MemorySize"], 256);
    assert_eq!(created["Environment"]["Variables"]["BB"], "two");
    let first_sha = created["CodeSha256"].as_str().unwrap().to_owned();

    // Deploying the same tree again changes nothing in the code; a new file changes the hash.
    let same = ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "cli-fn",
            "--timeout",
            "10",
            "--json",
        ],
    ));
    assert_eq!(same["CodeSha256"], first_sha.as_str());
    assert_eq!(same["Timeout"], 10);
    // A package big enough for a progress bar (not shown: stdout is not a terminal).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..6_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write(src.path(), "data.bin", &noise);
    let updated = ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "cli-fn",
            "--json",
        ],
    ));
    assert_ne!(updated["CodeSha256"], first_sha.as_str());
    assert!(updated["CodeSize"].as_u64().unwrap() > 5_000_000);

    let shown = ok_json(lamina(&ep, &["show", "cli-fn", "--json"]));
    assert_eq!(shown["Configuration"]["CodeSha256"], updated["CodeSha256"]);
    assert_eq!(shown["Configuration"]["Timeout"], 10);

    let listed = ok_json(lamina(&ep, &["ls", "--json"]));
    assert_eq!(listed["Functions"].as_array().unwrap().len(), 1);

    // The human forms print tables.
    let table = lamina(&ep, &["ls"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.starts_with("NAME") && text.contains("cli-fn") && text.contains("provided.al2023"),
        "{text}"
    );
    // Into a reader that has gone (`lamina ls | head -0`): a quiet end, as for other tools.
    for args in [&["ls"][..], &["ls", "--json"]] {
        let out = command(&ep, args, None)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }

    let rm = lamina(&ep, &["rm", "cli-fn"]);
    assert!(rm.status.success());
    let missing = lamina(&ep, &["show", "cli-fn"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("ResourceNotFoundException") && err.contains("cli-fn"),
        "{err}"
    );

    // Errors say what is wrong.
    let bad = lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "x",
            "--runtime",
            "provided.al2023",
            "--handler",
            "a.b",
            "--memory",
            "64",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("memorySize"));
    let down = Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(["ls", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach the server"));
}

#[test]
fn layers_versions_and_aliases_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let layer = tempfile::tempdir().unwrap();
    std::fs::create_dir(layer.path().join("python")).unwrap();
    write(&layer.path().join("python"), "shared.py", b"X = 1\n");
    let published = ok_json(lamina(
        &ep,
        &[
            "layer",
            "publish",
            "shared",
            layer.path().to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(
        published["LayerVersionArn"]
            .as_str()
            .unwrap()
            .ends_with(":layer:shared:1")
    );
    let layers = ok_json(lamina(&ep, &["layer", "ls", "--json"]));
    assert_eq!(layers["Layers"][0]["LayerName"], "shared");

    let src = tempfile::tempdir().unwrap();
    write(src.path(), "bootstrap", b"#!/bin/sh\nexit 0\n");
    ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "rel",
            "--runtime",
            "provided.al2023",
            "--handler",
            "x",
            "--json",
        ],
    ));
    let v1 = ok_json(lamina(&ep, &["publish", "rel", "--json"]));
    assert_eq!(v1["Version"], "1");
    let alias = ok_json(lamina(&ep, &["alias", "set", "rel", "live", "1", "--json"]));
    assert_eq!(alias["FunctionVersion"], "1");
    write(src.path(), "extra.txt", b"changed");
    ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "rel",
            "--json",
        ],
    ));
    ok_json(lamina(&ep, &["publish", "rel", "--json"]));
    let moved = ok_json(lamina(
        &ep,
        &[
            "alias", "set", "rel", "live", "1", "--weight", "2=0.25", "--json",
        ],
    ));
    assert_eq!(
        moved["RoutingConfig"]["AdditionalVersionWeights"]["2"],
        0.25
    );
}

#[test]
fn invoke_sync_and_async() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let src = tempfile::tempdir().unwrap();
    write(
        src.path(),
        "app.py",
        b"def handler(e, c):\n    print('got', e['n'])\n    return e['n'] * 2\n",
    );
    ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "twice",
            "--runtime",
            &host_python(),
            "--handler",
            "app.handler",
            "--json",
        ],
    ));
    let out = ok_json(lamina(
        &ep,
        &[
            "invoke",
            "twice",
            "--payload",
            r#"{"n": 21}"#,
            "--log",
            "--json",
        ],
    ));
    assert_eq!(out["Payload"], 42);
    assert!(out["LogResult"].as_str().unwrap().contains("got 21"));
    let queued = ok_json(lamina(
        &ep,
        &[
            "invoke",
            "twice",
            "--payload",
            r#"{"n": 5}"#,
            "--async",
            "--json",
        ],
    ));
    assert_eq!(queued["StatusCode"], 202);
    let id = queued["RequestId"].as_str().unwrap().to_owned();
    // It runs, under the request id the 202 carried.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let logs = lamina(&ep, &["logs", "twice"]);
        let text = String::from_utf8_lossy(&logs.stdout).into_owned();
        if text.contains(&format!("START RequestId: {id}")) && text.contains("got 5") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let both = lamina(&ep, &["invoke", "twice", "--async", "--log"]);
    assert!(!both.status.success(), "--log and --async conflict");
}

/// A function that prints `line <n>` for its event `{"n": <n>}`, deployed with `key`.
fn deploy_printer(ep: &str, name: &str, key: Option<(&str, &str)>) {
    let src = tempfile::tempdir().unwrap();
    write(
        src.path(),
        "app.py",
        b"def handler(e, c):\n    print('line', e['n'])\n    return e['n']\n",
    );
    let created = lamina_as(
        ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            name,
            "--runtime",
            &host_python(),
            "--handler",
            "app.handler",
            "--json",
        ],
        key,
    );
    ok_json(created);
}

fn invoke_printer(ep: &str, name: &str, n: u32, key: Option<(&str, &str)>) {
    let payload = format!(r#"{{"n": {n}}}"#);
    let out = ok_json(lamina_as(
        ep,
        &["invoke", name, "--payload", &payload, "--json"],
        key,
    ));
    assert_eq!(out["Payload"], n, "{out}");
}

/// A server whose configuration file is `toml`.
fn server_with(data: &Path, toml: &str) -> ServerProcess {
    let config = data.join("test-config.toml");
    std::fs::write(&config, toml).unwrap();
    ServerProcess::start(data, &["--config", config.to_str().unwrap()])
}

/// Runs `lamina ARGS` until its output satisfies `done` (30 s at most), and returns it.
fn poll_until(
    ep: &str,
    args: &[&str],
    key: Option<(&str, &str)>,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = lamina_as(ep, args, key);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "lamina {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A `lamina` process whose stdout lines arrive on a channel; killed and reaped when dropped.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(ep: &str, args: &[&str], key: Option<(&str, &str)>) -> Self {
        let mut child = command(ep, args, key)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the lamina binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        // Ends at EOF, when the child is gone.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The lines printed until one containing `text` (waiting 30 s at most).
    fn until(&self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(e) => panic!("no line with {text:?} ({e}); printed {seen:?}"),
            }
        }
    }

    /// Sends SIGINT, as Ctrl-C does, and waits (30 s at most) for the exit status.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill takes integers only.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "lamina ignored SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn logs_print_recent_lines_and_follow_new_ones() {
    let data = tempfile::tempdir().unwrap();
    // Signed requests, so the CLI's CloudWatch Logs calls must be signed for `logs`.
    let server = server_with(data.path(), AUTH);
    let ep = server.endpoint();
    let alice = Some(ALICE);
    deploy_printer(&ep, "talker", alice);
    invoke_printer(&ep, "talker", 1, alice);

    let text = poll_until(&ep, &["logs", "talker"], alice, |t| t.contains("line 1"));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("START RequestId:")),
        "{text}"
    );
    assert!(lines.contains(&"line 1"), "{text}");
    let json = poll_until(&ep, &["logs", "talker", "--json"], alice, |t| {
        t.contains("REPORT RequestId")
    });
    for line in json.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(e["timestamp"].as_i64().unwrap() > 1_600_000_000_000, "{e}");
        assert!(
            e["logStreamName"].as_str().unwrap().contains("[$LATEST]"),
            "{e}"
        );
        assert!(e["message"].is_string(), "{e}");
    }
    assert!(
        json.lines().any(|l| l.contains(r#""message":"line 1""#)),
        "{json}"
    );

    // Without credentials, or with a wrong secret, the error says what to set.
    let unsigned = lamina_as(&ep, &["logs", "talker"], None);
    let err = String::from_utf8_lossy(&unsigned.stderr);
    assert!(
        !unsigned.status.success() && err.contains("set AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    let wrong = lamina_as(&ep, &["logs", "talker"], Some(("AKIDALICE", "wrong")));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && err.contains("check AWS_ACCESS_KEY_ID"),
        "{err}"
    );

    // Another account has no such function; the error says so.
    let bob = lamina_as(&ep, &["logs", "talker"], Some(BOB));
    assert!(!bob.status.success());
    let err = String::from_utf8_lossy(&bob.stderr);
    assert!(
        err.contains("function 'talker' does not exist and has no logs"),
        "{err}"
    );

    // Following: the recent lines first (so the live tail is open by then), then a line of an
    // invocation made afterwards, once; Ctrl-C ends it without an error.
    let mut follow = Running::spawn(&ep, &["logs", "talker", "--follow"], alice);
    follow.until("line 1");
    invoke_printer(&ep, "talker", 2, alice);
    let after = follow.until("line 2");
    assert_eq!(
        after.iter().filter(|l| *l == "line 1").count(),
        0,
        "{after:?}"
    );
    assert!(follow.interrupt().success());
    let left: Vec<String> = follow.lines.try_iter().collect();
    assert!(
        !left.iter().any(|l| l == "line 2"),
        "printed twice: {left:?}"
    );
}

#[test]
fn top_shows_each_account_its_functions_of_the_last_hour() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with(data.path(), &format!("metrics_flush_s = 0.2\n{AUTH}"));
    let ep = server.endpoint();
    let alice = Some(ALICE);
    deploy_printer(&ep, "counted", alice);
    invoke_printer(&ep, "counted", 1, alice);
    invoke_printer(&ep, "counted", 2, alice);

    let counted = |text: &str| -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
        v["functions"]
            .as_array()?
            .iter()
            .find(|f| f["function"] == "counted")
            .cloned()
    };
    let text = poll_until(&ep, &["top", "--once", "--json"], alice, |t| {
        counted(t).is_some_and(|f| f["invocations"] == 2)
    });
    let f = counted(&text).unwrap();
    assert_eq!(
        (f["errors"].as_u64(), f["throttles"].as_u64()),
        (Some(0), Some(0)),
        "{f}"
    );
    assert_eq!(f["cold_starts"], 1, "{f}");
    assert!(f["p50_ms"].as_f64().unwrap() > 0.0, "{f}");
    assert!(f["concurrency_max"].as_u64().unwrap() >= 1, "{f}");
    assert!(f["gb_seconds"].as_f64().unwrap() > 0.0, "{f}");
    assert!(f["concurrency_now"].is_u64(), "{f}");

    // The table says what it shows.
    let table = lamina_as(&ep, &["top", "--once"], alice);
    let table = String::from_utf8(table.stdout).unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(table.starts_with("Last hour"), "{table}");
    assert_eq!(
        rows[1],
        [
            "FUNCTION",
            "NOW",
            "INVOCATIONS",
            "ERRORS",
            "THROTTLES",
            "COLD",
            "P50",
            "P99",
            "PEAK",
            "GB-S"
        ]
    );
    assert_eq!(&rows[2][..1], ["counted"], "{table}");
    assert_eq!(rows[2][2], "2", "{table}");

    // Another account sees none of it.
    let bob = ok_json(lamina_as(&ep, &["top", "--once", "--json"], Some(BOB)));
    assert_eq!(bob["functions"], serde_json::json!([]), "{bob}");
    // Arguments that make no sense are refused with a message, not a panic.
    for args in [
        &["top", "--interval", "inf"][..],
        &["top", "--interval", "0"],
        &["bill", "--csv", "--json"],
    ] {
        let out = lamina_as(&ep, args, alice);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && out.status.code() != Some(101) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
