//! Hostile functions against a real server: each test reproduces an attack from inside a sandbox
//! (or through the API) and asserts that it fails and that the server stays whole.

use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LogType, Runtime};
use serde_json::{Value, json};

use crate::helpers::*;

const HOSTILE: &[u8] = include_bytes!("hostile.py");
const INIT_BURN: &[u8] = b"import threading, time\n\
wall0, cpu0 = time.monotonic(), time.process_time()\n\
def spin():\n    while time.monotonic() - wall0 < 1.5:\n        pass\n\
threads = [threading.Thread(target=spin) for _ in range(2)]\n\
[t.start() for t in threads]\n[t.join() for t in threads]\n\
raise RuntimeError('init cpu %.3f' % ((time.process_time() - cpu0) / (time.monotonic() - wall0)))\n\
def handler(event, context):\n    return 'unreachable'\n";

async fn deploy_hostile(c: &Client, name: &str, memory: i32, timeout: i32) {
    deploy_python(c, name, "hostile.handler", memory, timeout).await;
}

async fn deploy_python(c: &Client, name: &str, handler: &str, memory: i32, timeout: i32) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(host_python().as_str()))
        .handler(handler)
        .role(ROLE)
        .memory_size(memory)
        .timeout(timeout)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[
                    ("hostile.py", HOSTILE),
                    ("init_burn.py", INIT_BURN),
                ])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// Invokes and returns (payload, X-Amz-Function-Error).
async fn call(c: &Client, name: &str, event: Value) -> (Value, Option<String>) {
    let out = c
        .invoke()
        .function_name(name)
        .log_type(LogType::None)
        .payload(Blob::new(serde_json::to_vec(&event).unwrap()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
    let body = out
        .payload()
        .map(|p| serde_json::from_slice(p.as_ref()).unwrap_or(Value::Null))
        .unwrap_or_default();
    (body, out.function_error().map(str::to_owned))
}

/// A server process with `toml` as its configuration file.
fn server_with(dir: &std::path::Path, toml: &str) -> ServerProcess {
    let config = dir.join("lamina.toml");
    std::fs::write(&config, toml).unwrap();
    ServerProcess::start(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

#[tokio::test]
async fn seccomp_refuses_new_namespaces_and_unneeded_kernel_surface() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy_hostile(c, "sys", 512, 30).await;
    let (b, err) = call(c, "sys", json!({"action": "syscalls"})).await;
    assert_eq!(err, None, "{b}");
    for ns in [
        "newns",
        "newcgroup",
        "newuts",
        "newipc",
        "newuser",
        "newpid",
        "newnet",
    ] {
        assert_eq!(b[format!("clone_{ns}")], "EPERM", "clone(CLONE_{ns}): {b}");
    }
    assert_eq!(b["clone3"], "ENOSYS", "libc falls back to clone: {b}");
    assert_eq!(b["unshare_user"], "EPERM");
    assert_eq!(b["io_uring_setup"], "ENOSYS");
    for family in [
        "socket_vsock",
        "socket_alg",
        "socket_packet",
        "socket_key",
        "socket_netlink_audit",
    ] {
        assert_eq!(b[family], "EPERM", "{family}: {b}");
    }
    assert_eq!(b["personality_read_implies_exec"], "EPERM");
    // What ordinary functions need still works.
    for ok in [
        "socket_netlink_route",
        "socket_inet",
        "socket_inet6",
        "socket_unix",
        "personality_query",
        "fork",
        "thread",
        "subprocess",
    ] {
        assert_eq!(b[ok], "ok", "{ok}: {b}");
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_connections_are_bounded_per_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "");
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy_hostile(&c, "conns", 1024, 30).await;
    let before = fd_count(server.child.id());
    // 8 processes try to open 900 connections each and keep them for 4 s.
    let (b, err) = call(
        &c,
        "conns",
        json!({"action": "connections", "children": 8, "per_child": 900, "hold": 4}),
    )
    .await;
    assert_eq!(err, None, "{b}");
    let held = fd_count(server.child.id());
    assert!(
        held < before + 100,
        "the server holds {held} descriptors ({before} before) while the function opened {} connections",
        b["opened"]
    );
    // The environment still works once the flood is over.
    let (b, err) = call(&c, "conns", json!({"action": "uid"})).await;
    assert_eq!(err, None, "{b}");
    // The server raised its own descriptor limit at start.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap();
    assert!(soft > 4096, "{limits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_bodies_are_not_buffered_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "");
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy_hostile(&c, "bodies", 128, 60).await;
    call(&c, "bodies", json!({"action": "uid"})).await;
    let pid = server.child.id();
    let before = status_kb(pid, "VmRSS:");
    // 40 connections each send 5 MB of a body for a request that is not in flight, then stall.
    let (b, err) = call(
        &c,
        "bodies",
        json!({"action": "stalled_bodies", "count": 40, "mb": 5, "hold": 3}),
    )
    .await;
    assert_eq!(err, None, "{b}");
    let grown_mb = (status_kb(pid, "VmHWM:").saturating_sub(before)) / 1024;
    assert!(
        grown_mb < 64,
        "the server grew by {grown_mb} MB while a 128 MB function sent {} MB of stalled bodies",
        b["sent_mb"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_output_is_bytes_cut_into_bounded_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "log_rate_bytes_per_s = 1073741824\n");
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy_hostile(&c, "out", 1024, 60).await;
    call(&c, "out", json!({"action": "uid"})).await;
    let pid = server.child.id();
    let before = status_kb(pid, "VmRSS:");
    // One unterminated line of 100 MB.
    let (b, err) = call(&c, "out", json!({"action": "long_line", "mb": 100})).await;
    assert_eq!((b.clone(), err), (json!("done"), None));
    let grown_mb = (status_kb(pid, "VmHWM:").saturating_sub(before)) / 1024;
    assert!(grown_mb < 64, "the server grew by {grown_mb} MB");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = log_lines(&server.endpoint(), "out").await;
    let longest = lines.iter().map(String::len).max().unwrap();
    assert!(
        longest <= 256 * 1024,
        "an event holds at most 256 KB: {longest}"
    );
    assert!(lines.iter().any(|l| l == "short line after"));

    // A byte that is not UTF-8 neither stops the log nor kills the function.
    let (b, err) = call(&c, "out", json!({"action": "bad_utf8"})).await;
    assert_eq!((b, err), (json!("alive"), None));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = log_lines(&server.endpoint(), "out").await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("before \u{fffd}") && l.ends_with("bad bytes")),
        "lossy line missing"
    );
    assert!(lines.iter().any(|l| l == "after the bad bytes"));
    assert!(lines.iter().any(|l| l == "still alive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_function_cannot_push_out_other_functions_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        "log_rate_bytes_per_s = 1048576\nlog_burst_bytes = 2097152\nlog_max_mb_per_function = 8\n",
    );
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy_hostile(&c, "flood", 1024, 60).await;
    deploy_hostile(&c, "quiet", 512, 60).await;
    let flood = {
        let c = c.clone();
        tokio::spawn(async move { call(&c, "flood", json!({"action": "flood", "s": 4})).await })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (b, err) = call(
        &c,
        "quiet",
        json!({"action": "numbered", "tag": "quiet", "n": 3000}),
    )
    .await;
    assert_eq!((b, err), (json!(3000), None));
    let (written, err) = flood.await.unwrap();
    assert_eq!(err, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet = log_lines(&server.endpoint(), "quiet").await;
    for i in 0..3000 {
        let want = format!("quiet line {i}");
        assert!(quiet.contains(&want), "{want} was dropped");
    }
    // The flood was cut to its budget, and the cut is said in the log.
    let flooded = log_lines(&server.endpoint(), "flood").await;
    let stored: usize = flooded.iter().map(String::len).sum();
    let offered = written.as_u64().unwrap() as usize * 200;
    assert!(
        stored < offered / 4 && stored <= 8 << 20,
        "stored {stored} of {offered} bytes"
    );
    assert!(
        flooded.iter().any(|l| l.contains("log output dropped")),
        "the drop is reported in the log"
    );

    // Empty lines cost their event overhead: a flood of them is cut too.
    let (written, err) = call(&c, "quiet", json!({"action": "empty_lines", "s": 2})).await;
    assert_eq!(err, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = log_lines(&server.endpoint(), "quiet").await.len() - quiet.len();
    // At most (burst + 2 s of rate) / 64 bytes per event, plus the platform lines.
    assert!(stored < 70_000, "{stored} of {written} empty lines stored");
}

/// `a/up -> ..` alone stays inside; `r1 -> a/up/..` then walks out one level per link.
fn symlink_chain_zip() -> Vec<u8> {
    use std::io::Write;
    let opts = zip::write::SimpleFileOptions::default();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.add_directory("a/", opts).unwrap();
    w.add_symlink("a/up", "..", opts).unwrap();
    w.add_symlink("r1", "a/up/..", opts).unwrap();
    for i in 2..=24 {
        w.add_symlink(format!("r{i}"), format!("r{}/..", i - 1), opts)
            .unwrap();
    }
    w.add_symlink("bootstrap", "r24/etc/shadow", opts).unwrap();
    w.start_file("app.py", opts).unwrap();
    w.write_all(b"def handler(e, c): return 1\n").unwrap();
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn symlink_chains_out_of_the_package_are_refused() {
    let app = spawn_app().await;
    let r = app
        .client
        .create_function()
        .function_name("chain")
        .runtime(Runtime::Providedal2023)
        .handler("x")
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(symlink_chain_zip()))
                .build(),
        )
        .send()
        .await;
    assert_error(r, "InvalidParameterValueException", "symlink");
}

#[tokio::test]
async fn zip_entries_with_overlong_names_are_client_errors() {
    let app = spawn_app().await;
    let long_component = "n".repeat(300);
    let deep = vec!["d"; 3000].join("/") + "/f";
    for name in [long_component.as_str(), deep.as_str()] {
        let r = app
            .client
            .create_function()
            .function_name("longname")
            .runtime(Runtime::Providedal2023)
            .handler("x")
            .role(ROLE)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip_of(&[(name, b"x")])))
                    .build(),
            )
            .send()
            .await;
        assert_error(r, "InvalidParameterValueException", "name");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invokes_racing_updates_and_deletes_see_old_code_new_code_or_404() {
    let app = spawn_app().await;
    let c = app.client.clone();
    let zip = |tag: &str| {
        zip_of(&[(
            "app.py",
            format!("def handler(event, context):\n    return {tag:?}\n").as_bytes(),
        )])
    };
    let python = host_python();
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut invokers = Vec::new();
    for _ in 0..3 {
        let c = c.clone();
        invokers.push(tokio::spawn(async move {
            let mut seen = (0, 0);
            while Instant::now() < deadline {
                match c
                    .invoke()
                    .function_name("racy")
                    .payload(Blob::new("{}"))
                    .send()
                    .await
                {
                    Ok(out) => {
                        let body =
                            String::from_utf8_lossy(out.payload().unwrap().as_ref()).into_owned();
                        assert_eq!(out.function_error(), None, "{body}");
                        assert!(body.starts_with("\"v"), "{body}");
                        seen.0 += 1;
                    }
                    Err(e) => {
                        let (code, msg) = error_of(&e);
                        assert_eq!(code, "ResourceNotFoundException", "{code}: {msg}");
                        seen.1 += 1;
                    }
                }
            }
            seen
        }));
    }
    let mut rounds = 0;
    while Instant::now() < deadline {
        rounds += 1;
        let r = c
            .create_function()
            .function_name("racy")
            .runtime(Runtime::from(python.as_str()))
            .handler("app.handler")
            .role(ROLE)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip(&format!("v{rounds}"))))
                    .build(),
            )
            .send()
            .await;
        r.unwrap_or_else(|e| panic!("create: {}", describe(&e)));
        // Two updates without a RevisionId racing each other: both succeed.
        let (a, b) = tokio::join!(
            c.update_function_code()
                .function_name("racy")
                .zip_file(Blob::new(zip(&format!("v{rounds}a"))))
                .send(),
            c.update_function_code()
                .function_name("racy")
                .zip_file(Blob::new(zip(&format!("v{rounds}b"))))
                .send(),
        );
        a.unwrap_or_else(|e| panic!("update a: {}", describe(&e)));
        b.unwrap_or_else(|e| panic!("update b: {}", describe(&e)));
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.delete_function()
            .function_name("racy")
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete: {}", describe(&e)));
    }
    let mut total = (0, 0);
    for i in invokers {
        let (ok, gone) = i.await.unwrap();
        total = (total.0 + ok, total.1 + gone);
    }
    assert!(
        total.0 > 0 && total.1 > 0 && rounds > 3,
        "{total:?} in {rounds} rounds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_times_out_promptly_and_leaves_nothing() {
    // No sandboxes made ahead of time: every group left would be the bomb's.
    let app = spawn_app_with("prepared_sandboxes = 0").await;
    let c = &app.client;
    deploy_hostile(c, "bomb", 128, 3).await;
    let started = Instant::now();
    let (b, err) = call(c, "bomb", json!({"action": "fork_bomb"})).await;
    let took = started.elapsed();
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(b["errorType"], "Sandbox.Timedout", "{b}");
    assert!(
        took < Duration::from_secs(6),
        "a 3 s timeout answered after {took:?}"
    );
    // The environment's cgroups are gone shortly after.
    let parent = cgroup_parent(app.data_dir());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = env_cgroups(&parent);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The function works again.
    let (b, err) = call(c, "bomb", json!({"action": "uid"})).await;
    assert_eq!(err, None, "{b}");
}

/// Processes (of any user namespace) running as `uid` on the host.
fn processes_of_uid(uid: u64) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let real: Option<u64> = status.lines().find_map(|l| {
            l.strip_prefix("Uid:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        if real == Some(uid) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_die_with_their_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server_with(dir.path(), "");
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy_hostile(&c, "orphan", 128, 300).await;
    // One environment busy with a long invocation...
    let sleeping = {
        let c = c.clone();
        tokio::spawn(async move {
            let _ = c
                .invoke()
                .function_name("orphan")
                .payload(Blob::new(r#"{"action": "sleep", "s": 250}"#))
                .send()
                .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    // ...and one idle, and so frozen after 50 ms.
    let (b, _) = call(&c, "orphan", json!({"action": "uid"})).await;
    let idle_uid = b["uid"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy_uid = processes_of_uid_other_than(idle_uid);
    assert!(
        !processes_of_uid(idle_uid).is_empty(),
        "the idle function lives"
    );
    assert!(busy_uid.is_some(), "the busy function is running");
    // Each sandbox is a session and process group of its own: a function's `kill(0, …)` reaches
    // nothing outside it, and a signal to the server's group reaches no function.
    let server_ids = session_and_group(server.child.id());
    for p in processes_of_uid(idle_uid) {
        let ids = session_and_group(p);
        assert!(
            ids.0 != server_ids.0 && ids.1 != server_ids.1,
            "function process {p} (session, group) {ids:?} shares the server's {server_ids:?}"
        );
    }
    server.kill9();
    let deadline = Instant::now() + Duration::from_secs(5);
    for uid in [idle_uid, busy_uid.unwrap()] {
        while !processes_of_uid(uid).is_empty() {
            assert!(
                Instant::now() < deadline,
                "a function (uid {uid}) outlived its server: {:?}",
                processes_of_uid(uid)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    sleeping.abort();
    // A restart removes what a crash leaves (empty cgroups); its API answers once it has. It
    // makes no sandboxes ahead of time, so that any group left would be the crash's.
    let server = server_with(dir.path(), "prepared_sandboxes = 0\n");
    sdk_client(&server.endpoint(), "test", "test", "us-east-1")
        .list_functions()
        .send()
        .await
        .unwrap();
    assert!(env_cgroups(&cgroup_parent(&dir.path().join("data"))).is_empty());
}

/// The session and process group of `pid`, from `/proc/<pid>/stat`.
fn session_and_group(pid: u32) -> (i64, i64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // `pid (comm) state ppid pgrp session ...`: the name may hold spaces and parentheses.
    let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    (after[3].parse().unwrap(), after[2].parse().unwrap())
}

/// The uid of a running process, other than `uid`, in the same server's range as `uid`.
fn processes_of_uid_other_than(uid: u64) -> Option<u64> {
    use lamina_sandbox::uids::{BASE, RANGE};
    let base = uid - (uid - BASE as u64) % RANGE as u64;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("Uid:")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
        })
        .find(|u| (base..base + RANGE as u64).contains(u) && *u != uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_init_is_cpu_bounded_and_loses_its_boost() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy_python(c, "burn", "init_burn.handler", 128, 10).await;
    // Each call runs INIT twice (the second within the invocation, as on Lambda), and each
    // INIT logs the CPUs it used; the tail holds both lines.
    let mut ratios = Vec::new();
    for _ in 0..2 {
        let out = c
            .invoke()
            .function_name("burn")
            .log_type(LogType::Tail)
            .payload(Blob::new(b"{}".to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke burn: {}", describe(&e)));
        assert_eq!(out.function_error(), Some("Unhandled"));
        use base64::Engine as _;
        let log = base64::engine::general_purpose::STANDARD
            .decode(out.log_result().expect("a log tail"))
            .unwrap();
        let log = String::from_utf8(log).unwrap();
        let used: Vec<f64> = log
            .match_indices("init cpu ")
            .map(|(at, m)| {
                let rest = &log[at + m.len()..];
                rest[..rest.find('\n').unwrap_or(rest.len())]
                    .parse()
                    .unwrap_or_else(|_| panic!("{log}"))
            })
            .collect();
        assert_eq!(used.len(), 2, "two INITs: {log}");
        ratios.push(used);
    }
    // Two spinning threads: INIT is boosted to at most one CPU, never the whole host.
    assert!(
        ratios[0][0] <= 1.15,
        "first INIT used {:.2} CPUs",
        ratios[0][0]
    );
    // After a failed INIT, the next one runs at the function's own share (128/1769 of a CPU):
    // the second of each call, and the first of the next call.
    for (call, init) in [(0, 1), (1, 0), (1, 1)] {
        let used = ratios[call][init];
        assert!(
            used <= 0.3,
            "INIT {init} of call {call} used {used:.2} CPUs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_host_never_share_a_uid() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    deploy_hostile(&a.client, "who", 128, 10).await;
    deploy_hostile(&b.client, "who", 128, 10).await;
    let (ua, _) = call(&a.client, "who", json!({"action": "uid"})).await;
    let (ub, _) = call(&b.client, "who", json!({"action": "uid"})).await;
    assert_ne!(ua["uid"], ub["uid"]);
}

#[tokio::test]
async fn sandboxes_see_no_host_details() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy_hostile(c, "peek", 512, 10).await;
    let (b, err) = call(c, "peek", json!({"action": "leaks"})).await;
    assert_eq!(err, None, "{b}");
    let mountinfo = b["mountinfo"].as_str().unwrap();
    // The server's binary appears nowhere (PID 1, which runs it, is hidden below).
    let binary = env!("CARGO_BIN_EXE_lamina");
    assert!(!mountinfo.contains(binary), "{mountinfo}");
    assert!(!b["pid1_cmdline"].as_str().unwrap().contains(binary));
    // Mount sources are neutral: devices and filesystem types, no names of the server's.
    for line in mountinfo.lines() {
        let source = line
            .split(" - ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().nth(1))
            .unwrap_or_default();
        assert!(
            ["tmpfs", "proc", "devtmpfs"].contains(&source) || source.starts_with("/dev/"),
            "mount source {source:?} in {line}"
        );
    }
    // Nothing of the host's own root is bound: only the curated tree, the code and /opt.
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(
            !matches!(fields[3], "/usr" | "/etc" | "/lib" | "/bin"),
            "a host directory is bound whole: {line}"
        );
    }
    // PID 1 (root) is not even visible to the function.
    let pids: Vec<u64> = b["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(!pids.contains(&1), "{pids:?}");
    // Only what the runtime needs: no package manager, compiler or system tools of the host.
    let usr_bin: Vec<&str> = b["usr_bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for host_only in ["dpkg", "apt", "gcc", "cargo", "ssh", "mount", "qemu-img"] {
        assert!(
            !usr_bin.contains(&host_only),
            "/usr/bin/{host_only} is visible"
        );
    }
    for needed in ["sh", "env", "cat"] {
        assert!(usr_bin.contains(&needed), "/usr/bin/{needed} is missing");
    }
}

/// A function's TCP buffers are bounded by its memory size: 300 connections written to and
/// never read hold about a gigabyte of the host's memory unbounded (3.7 MB each here), and at
/// most the function's 128 MB with the limit (on cgroup v2 within its memory, on v1 beside it).
#[tokio::test]
async fn socket_buffers_count_against_the_functions_memory() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy_hostile(c, "buffers", 128, 60).await;
    let (b, err) = call(
        c,
        "buffers",
        json!({"action": "socket_buffers", "pairs": 300}),
    )
    .await;
    assert_eq!(err, None, "{b}");
    assert_eq!(b["pairs"], 300, "{b}");
    let queued = b["queued_mb"].as_u64().unwrap();
    assert!(queued <= 144, "{queued} MB held in socket buffers: {b}");
}

#[tokio::test]
async fn tmp_is_disk_not_memory() {
    let app = spawn_app().await;
    let c = &app.client;
    // 256 MB of memory, 512 MB of /tmp: the whole /tmp can be written.
    deploy_hostile(c, "disk", 256, 60).await;
    let (b, err) = call(c, "disk", json!({"action": "tmp_fill", "mb": 600})).await;
    assert_eq!(err, None, "{b}");
    assert_eq!(b["error"], "ENOSPC", "{b}");
    let written = b["written_mb"].as_u64().unwrap();
    assert!((500..=512).contains(&written), "wrote {written} MB: {b}");
    // A fresh /tmp is empty (no `lost+found`) and sticky and world-writable, as on Lambda.
    assert_eq!(b["found"], json!([]), "{b}");
    assert_eq!(b["mode"], "0o1777", "{b}");
    // An ext4 of its own, where nothing set-uid or a device node takes effect, whose block
    // bitmaps are read when needed rather than all at its mount (kernels since 5.9).
    let mount = &b["mount"];
    assert_eq!(mount["type"], "ext4", "{b}");
    let has = |key: &str, opt: &str| {
        mount[key]
            .as_array()
            .is_some_and(|o| o.iter().any(|v| v == opt))
    };
    assert!(has("flags", "nosuid") && has("flags", "nodev"), "{b}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut version = release
        .trim()
        .split(['.', '-'])
        .map(|n| n.parse().unwrap_or(0));
    let (major, minor): (u32, u32) = (version.next().unwrap(), version.next().unwrap());
    if (major, minor) >= (5, 9) {
        assert!(has("options", "no_prefetch_block_bitmaps"), "{b}");
    } else {
        eprintln!("NOTE: Linux {release} has no no_prefetch_block_bitmaps (5.9); not checked");
    }
}

#[tokio::test]
async fn tmp_is_memory_when_the_data_directory_is() {
    // A data directory on a tmpfs (/dev/shm is one on every Linux host): the files behind a
    // disk-backed /tmp would be memory no reclaim can free, so the server makes none and gives
    // each environment a tmpfs /tmp, counted as the function's memory, instead.
    let dir = tempfile::tempdir_in("/dev/shm").expect("a data directory in /dev/shm");
    let app = TestApp::start_in(dir, "", None);
    let c = &app.client;
    deploy_hostile(c, "inmem", 256, 60).await;
    let (b, err) = call(c, "inmem", json!({"action": "tmp_fill", "mb": 64})).await;
    assert_eq!(err, None, "{b}");
    assert_eq!(
        (b["written_mb"].as_u64(), &b["error"]),
        (Some(64), &Value::Null),
        "{b}"
    );
    assert_eq!(b["mode"], "0o1777", "{b}");
    let scratch = app.data_dir().join("run/scratch");
    assert!(
        scratch.is_dir(),
        "no {}: the pool did not look at the data directory",
        scratch.display()
    );
    let made: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        made.is_empty(),
        "files for disk-backed /tmp on a tmpfs: {made:?}"
    );
    // Writing more than the function's memory is an out-of-memory kill, not a full disk.
    let (b, err) = call(c, "inmem", json!({"action": "tmp_fill", "mb": 400})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"), "{b}");
    assert_eq!(b["errorType"], "Runtime.OutOfMemory", "{b}");
}
