//! Invoke: real functions in real sandboxes (these tests need root, as CI has), through the
//! official Rust SDK. A Python probe function exercises each error path and each isolation claim.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, InvocationType, LogType, Runtime};
use base64::Engine;

use crate::helpers::*;

const PROBE: &[u8] = include_bytes!("probe.py");

async fn deploy(
    c: &Client,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: Vec<u8>,
    memory: i32,
    timeout: i32,
) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(runtime))
        .handler(handler)
        .role(ROLE)
        .memory_size(memory)
        .timeout(timeout)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("USER_VAR", "from-user")
                .build(),
        )
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

async fn probe(c: &Client, name: &str, memory: i32, timeout: i32) {
    deploy(
        c,
        name,
        &host_python(),
        "probe.handler",
        zip_of(&[("probe.py", PROBE)]),
        memory,
        timeout,
    )
    .await;
}

struct Result_ {
    body: serde_json::Value,
    function_error: Option<String>,
    log: String,
}

async fn call(c: &Client, name: &str, event: serde_json::Value) -> Result_ {
    let out = c
        .invoke()
        .function_name(name)
        .log_type(LogType::Tail)
        .payload(Blob::new(serde_json::to_vec(&event).unwrap()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
    assert_eq!(out.status_code(), 200);
    let log = out
        .log_result()
        .map(|l| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(l).unwrap()).unwrap()
        })
        .unwrap_or_default();
    let body = out
        .payload()
        .map(|p| serde_json::from_slice(p.as_ref()).unwrap_or(serde_json::Value::Null))
        .unwrap_or_default();
    Result_ {
        body,
        function_error: out.function_error().map(str::to_owned),
        log,
    }
}

#[tokio::test]
async fn python_function_runs_warm_with_context_env_and_logs() {
    let app = spawn_app().await;
    let c = &app.client;
    probe(c, "py", 256, 10).await;
    let r = call(c, "py", serde_json::json!({"action": "echo", "x": 1})).await;
    assert_eq!(r.function_error, None, "{:?}", r.body);
    assert_eq!(r.body["event"]["x"], 1);
    assert_eq!(r.body["n"], 1);
    assert_eq!(
        r.body["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:py"
    );
    let env = &r.body["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "py");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["LAMBDA_TASK_ROOT"], "/var/task");
    assert_eq!(env["_HANDLER"], "probe.handler");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
    assert_eq!(env["USER_VAR"], "from-user");
    assert_eq!(
        env["AWS_EXECUTION_ENV"],
        format!("AWS_Lambda_{}", host_python())
    );
    assert!(
        env["AWS_LAMBDA_LOG_STREAM_NAME"]
            .as_str()
            .unwrap()
            .contains("/[$LATEST]")
    );
    assert!(r.body["remaining"].as_i64().unwrap() > 9000);
    // Tail: START, the function's output, END and REPORT with Init Duration on a cold start.
    assert!(r.log.contains("START RequestId: "), "{}", r.log);
    assert!(r.log.contains("echo line 1"), "{}", r.log);
    assert!(r.log.contains("END RequestId: "), "{}", r.log);
    assert!(
        r.log.contains("Billed Duration: ")
            && r.log.contains("Memory Size: 256 MB")
            && r.log.contains("Init Duration: "),
        "{}",
        r.log
    );

    // Warm: globals and /tmp persist; no Init Duration.
    let r2 = call(c, "py", serde_json::json!({"action": "echo"})).await;
    assert_eq!(
        r2.body["n"], 2,
        "the same environment serves the second invocation"
    );
    assert!(!r2.log.contains("Init Duration"), "{}", r2.log);
    let t1 = call(c, "py", serde_json::json!({"action": "tmp_persist"})).await;
    let t2 = call(c, "py", serde_json::json!({"action": "tmp_persist"})).await;
    assert_eq!(
        (t1.body["existed"].as_bool(), t2.body["existed"].as_bool()),
        (Some(false), Some(true))
    );

    // A 3 MiB event reaches the handler whole over the runtime client's connection, and its
    // 3 MiB answer comes back whole, twice on the same connection.
    for _ in 0..2 {
        let pad = "p".repeat(3 << 20);
        let r = call(c, "py", serde_json::json!({"action": "echo", "pad": pad})).await;
        assert_eq!(r.function_error, None, "{}", r.log);
        assert_eq!(r.body["event"]["pad"].as_str().map(str::len), Some(3 << 20));
    }

    // Client context reaches the function, written compactly or pretty-printed (line breaks
    // cannot go into the runtime's header as they are).
    for context in [
        "{\"custom\":{\"k\":\"v\"}}",
        "{\n  \"custom\": {\n    \"k\": \"v\"\n  }\n}\n",
    ] {
        let cc = base64::engine::general_purpose::STANDARD.encode(context);
        let out = c
            .invoke()
            .function_name("py")
            .client_context(cc)
            .payload(Blob::new(br#"{"action":"echo"}"#.to_vec()))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
        assert_eq!(body["client_context"]["k"], "v", "{context:?}");
        assert_eq!(out.executed_version(), Some("$LATEST"));
    }

    // The logs are stored too, by a writer of their own: soon, not before the answer (as
    // CloudWatch Logs), so they are looked for a little while on a busy machine.
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..100 {
        let logs = reqwest::get(format!("{}/_lamina/logs/py", app.endpoint()))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        lines = logs["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect();
        if lines.iter().any(|l| l.starts_with("REPORT RequestId:")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        lines.iter().any(|l| l.starts_with("REPORT RequestId:")),
        "{lines:?}"
    );

    // DryRun checks without running.
    let dry = c
        .invoke()
        .function_name("py")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .unwrap();
    assert_eq!(dry.status_code(), 204);
}

#[tokio::test]
async fn error_paths_have_lambdas_error_types() {
    let app = spawn_app().await;
    let c = &app.client;
    probe(c, "err", 128, 2).await;

    let r = call(c, "err", serde_json::json!({"action": "raise"})).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(r.body["errorType"], "ValueError");
    assert_eq!(r.body["errorMessage"], "boom");
    let trace = r.body["stackTrace"].as_array().expect("a stack trace");
    assert!(
        trace
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains("probe.py"))),
        "{trace:?}"
    );
    // A handled error keeps the environment warm.
    let after = call(c, "err", serde_json::json!({"action": "echo"})).await;
    assert!(after.body["n"].as_i64().unwrap() >= 2);

    let r = call(c, "err", serde_json::json!({"action": "sleep", "s": 5})).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(r.body["errorType"], "Sandbox.Timedout");
    assert!(
        r.body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Task timed out after 2.00 seconds"),
        "{}",
        r.body
    );
    assert!(r.log.contains("Status: timeout"), "{}", r.log);
    // The timed-out environment is gone: the next call is a cold start.
    let fresh = call(c, "err", serde_json::json!({"action": "echo"})).await;
    assert_eq!(fresh.body["n"], 1);

    let r = call(c, "err", serde_json::json!({"action": "exit"})).await;
    assert_eq!(r.body["errorType"], "Runtime.ExitError");
    assert!(
        r.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Runtime exited with error: exit status 3"),
        "{}",
        r.body
    );
    assert_eq!(
        call(c, "err", serde_json::json!({"action": "echo"}))
            .await
            .body["n"],
        1
    );

    // At 128 MB the function has 7 % of a CPU: touching 128 MB of pages can take longer than
    // the 2 s timeout on a loaded machine, and the memory limit is what this call is about.
    c.update_function_configuration()
        .function_name("err")
        .timeout(60)
        .send()
        .await
        .unwrap();
    let r = call(c, "err", serde_json::json!({"action": "hog", "mb": 400})).await;
    assert_eq!(r.body["errorType"], "Runtime.OutOfMemory", "{}", r.body);
    assert!(r.log.contains("Max Memory Used: 128 MB"), "{}", r.log);

    let r = call(c, "err", serde_json::json!({"action": "big"})).await;
    assert_eq!(r.body["errorType"], "Function.ResponseSizeTooLarge");
    assert_eq!(
        r.body["errorMessage"],
        "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
    );

    // An event just under the limit reaches the handler whole, and comes back whole: the
    // runtime client reads it in many pieces.
    let pad = "y".repeat(6_000_000);
    let r = call(c, "err", serde_json::json!({"action": "echo", "pad": pad})).await;
    assert_eq!(r.function_error, None);
    assert_eq!(r.body["event"]["pad"].as_str(), Some(pad.as_str()));

    // Requests over 6 MB are refused before anything runs.
    let big =
        serde_json::to_vec(&serde_json::json!({"action": "echo", "pad": "y".repeat(6_300_000)}))
            .unwrap();
    assert_error(
        c.invoke()
            .function_name("err")
            .payload(Blob::new(big))
            .send()
            .await,
        "RequestEntityTooLargeException",
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    );
    assert_error(
        c.invoke()
            .function_name("err")
            .payload(Blob::new(b"{not json".to_vec()))
            .send()
            .await,
        "InvalidRequestContentException",
        "Could not parse request body into json",
    );
    assert_error(
        c.invoke().function_name("missing").send().await,
        "ResourceNotFoundException",
        "function:missing",
    );

    // Init failures are reported as such, at once, not as timeouts.
    deploy(
        c,
        "badimport",
        &host_python(),
        "nomodule.handler",
        zip_of(&[("probe.py", PROBE)]),
        128,
        30,
    )
    .await;
    let started = std::time::Instant::now();
    let r = call(c, "badimport", serde_json::json!({})).await;
    assert!(started.elapsed().as_secs() < 10);
    assert_eq!(r.body["errorType"], "Runtime.ImportModuleError");
    assert!(
        r.log.contains("Unable to import module 'nomodule'"),
        "the runtime's own error line is in the tail: {}",
        r.log
    );
    // Then the platform's lines, as on Lambda: the failed phase, and the invocation it failed.
    assert_failed_init(
        &r.log,
        "Runtime.ImportModuleError",
        "Unable to import module",
    );
    assert!(
        r.body["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("Unable to import module 'nomodule'"),
        "{}",
        r.body
    );

    deploy(
        c,
        "noboot",
        "provided.al2023",
        "x",
        zip_of(&[("README", b"no bootstrap here")]),
        128,
        3,
    )
    .await;
    let r = call(c, "noboot", serde_json::json!({})).await;
    assert_eq!(
        r.body["errorType"], "Runtime.InvalidEntrypoint",
        "{}",
        r.body
    );
    let message = r.body["errorMessage"].as_str().unwrap();
    assert_failed_init(&r.log, "Runtime.InvalidEntrypoint", "");
    assert!(
        r.log.contains(&format!(
            "{message}\nRuntime.InvalidEntrypoint\nEND RequestId: "
        )),
        "{}",
        r.log
    );

    // What a runtime wrote before its INIT failed, a last line without its newline too, is the
    // caller's log tail.
    let zip = bootstrap_zip(
        b"#!/bin/sh\necho 'starting up'\necho 'no config at /var/task/app.toml' >&2\nprintf 'giving up'\nexit 3\n",
    );
    deploy(c, "initexit", "provided.al2023", "x", zip, 128, 3).await;
    let r = call(c, "initexit", serde_json::json!({})).await;
    assert_eq!(r.body["errorType"], "Runtime.ExitError", "{}", r.body);
    assert!(
        r.body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 3"),
        "{}",
        r.body
    );
    assert!(
        r.log
            .contains("starting up\nno config at /var/task/app.toml\ngiving up\nINIT_REPORT "),
        "{}",
        r.log
    );
    assert_failed_init(&r.log, "Runtime.ExitError", "no config at");
    assert!(
        r.log.contains(
            "Error: Runtime exited with error: exit status 3\nRuntime.ExitError\nEND RequestId: "
        ),
        "{}",
        r.log
    );
}

/// A failed INIT's tail, as on Lambda: what the runtime wrote (`output`), `INIT_REPORT` for the
/// environment's INIT, the runtime's output again and `INIT_REPORT` for the second INIT, run
/// within the invocation, then the invocation's `START`, `END`, and a `REPORT` with the error.
fn assert_failed_init(log: &str, error_type: &str, output: &str) {
    let at = |what: &str, from: usize| {
        from + log[from..]
            .find(what)
            .unwrap_or_else(|| panic!("no {what:?} after byte {from} of the tail: {log}"))
    };
    let status = format!("\tStatus: error\tError Type: {error_type}\n");
    let first = at(&format!("\tPhase: init{status}"), 0);
    assert!(
        log[..first].contains("INIT_REPORT Init Duration: "),
        "{log}"
    );
    assert!(at(output, 0) < first, "{log}");
    let second = at(&format!("\tPhase: invoke{status}"), first);
    assert!(at(output, first) < second, "the second INIT ran: {log}");
    let start = at("\nSTART RequestId: ", second);
    let end = at("\nEND RequestId: ", start);
    let summary = at("\nREPORT RequestId: ", end);
    let line = log[summary + 1..].lines().next().unwrap_or_default();
    assert!(
        line.contains("\tBilled Duration: ")
            && line.ends_with(&format!("\tStatus: error\tError Type: {error_type}\t")),
        "{log}"
    );
}

#[tokio::test]
async fn an_init_longer_than_ten_seconds_runs_again_within_the_invocation() {
    let app = spawn_app().await;
    let c = &app.client;
    let slow = b"import time\ntime.sleep(10.5)\n\ndef handler(event, context):\n    return {\"ok\": True}\n";
    deploy(
        c,
        "slowinit",
        &host_python(),
        "slow.handler",
        zip_of(&[("slow.py", slow.as_slice())]),
        512,
        30,
    )
    .await;
    let r = call(c, "slowinit", serde_json::json!({})).await;
    assert_eq!(r.function_error, None, "{}", r.body);
    assert_eq!(r.body["ok"], true);
    // The environment's INIT timed out at 10 s; the second ran within the invocation's 30 s,
    // which its REPORT's duration includes, billed with the first.
    assert!(
        r.log.contains("\tPhase: init\tStatus: timeout\n"),
        "{}",
        r.log
    );
    let report = r
        .log
        .lines()
        .find(|l| l.starts_with("REPORT RequestId: "))
        .unwrap_or_else(|| panic!("no REPORT: {}", r.log));
    assert!(ms_of(report, "\tDuration: ") >= 10_500.0, "{report}");
    assert!(ms_of(report, "\tBilled Duration: ") >= 20_500.0, "{report}");
    assert!(!report.contains("Init Duration"), "{report}");
    // Warm from then on.
    let warm = call(c, "slowinit", serde_json::json!({})).await;
    let report = warm.log.lines().find(|l| l.starts_with("REPORT")).unwrap();
    assert!(ms_of(report, "\tDuration: ") < 5_000.0, "{report}");
}

/// A duration in a REPORT line, ms.
fn ms_of(report: &str, field: &str) -> f64 {
    let v = report
        .split(field)
        .nth(1)
        .unwrap_or_else(|| panic!("{report}"));
    v.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn idle_environments_are_frozen() {
    let app = spawn_app().await;
    let c = &app.client;
    probe(c, "idle", 512, 5).await;
    call(c, "idle", serde_json::json!({"action": "ticker"})).await;
    // Busy back to back: the ticker thread runs between invocations.
    let a = call(c, "idle", serde_json::json!({"action": "ticker"}))
        .await
        .body
        .as_i64()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    let b = call(c, "idle", serde_json::json!({"action": "ticker"}))
        .await
        .body
        .as_i64()
        .unwrap();
    assert!(
        b > a,
        "the environment runs while it is in use ({a} -> {b})"
    );
    // Idle for 800 ms: unfrozen, the thread would tick about 80 times; frozen after 50 ms, a few.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let c2 = call(c, "idle", serde_json::json!({"action": "ticker"}))
        .await
        .body
        .as_i64()
        .unwrap();
    assert!(
        c2 - b < 30,
        "an idle environment must be frozen: {} ticks in 800 ms",
        c2 - b
    );
}

#[tokio::test]
async fn custom_runtime_bootstrap_speaks_the_runtime_api() {
    let app = spawn_app().await;
    let c = &app.client;
    // A shell bootstrap using curl, the way the provided.al2023 tutorial does.
    let bootstrap = b"#!/bin/sh\nset -e\nwhile true; do\n  H=$(mktemp)\n  EV=$(curl -sS -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\")\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  echo \"handling $ID\"\n  n=0; while [ $n -lt 20 ]; do n=$((n+1)); echo \"out $n\"; echo \"err $n\" >&2; done\n  curl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" -d \"{\\\"echo\\\": $EV}\"\ndone\n";
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    use std::io::Write;
    w.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    w.write_all(bootstrap).unwrap();
    let zip = w.finish().unwrap().into_inner();
    deploy(c, "sh", "provided.al2023", "handler", zip, 128, 5).await;
    for i in 0..3 {
        let r = call(c, "sh", serde_json::json!({"i": i})).await;
        assert_eq!(r.function_error, None, "{:?} {}", r.body, r.log);
        assert_eq!(r.body["echo"]["i"], i);
        assert!(r.log.contains("handling "), "{}", r.log);
        // stdout and stderr reach the log in the order they were written, as in Lambda.
        let written: Vec<String> = (1..=20)
            .flat_map(|n| [format!("out {n}"), format!("err {n}")])
            .collect();
        let logged: Vec<&str> = r
            .log
            .lines()
            .filter(|l| l.starts_with("out ") || l.starts_with("err "))
            .collect();
        assert_eq!(logged, written, "{}", r.log);
    }
}

#[tokio::test]
async fn isolation_from_inside_a_hostile_function() {
    let app = spawn_app().await;
    let c = &app.client;
    // Enough CPU (memory) for a fork bomb to reach the process limit quickly.
    probe(c, "hostile", 2048, 30).await;
    let r = call(
        c,
        "hostile",
        serde_json::json!({"action": "probe", "port": app.addr.port()}),
    )
    .await;
    let b = &r.body;
    assert_eq!(r.function_error, None, "{b}");
    assert_ne!(b["uid"], 0, "functions never run as root");
    assert_no_host_dirs(b);
    // Only the sandbox's own processes, and only the function's: PID 1 (the reaper, root) is
    // hidden.
    let pids: Vec<i64> = b["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(pids.len() <= 2 && !pids.contains(&1), "{pids:?}");
    assert_eq!(
        b["host_port"], "ECONNREFUSED",
        "the server's own port on the host's 127.0.0.1 is unreachable"
    );
    assert_eq!(b["setuid"], "EPERM");
    assert_eq!(b["mount"], "EPERM");
    assert_eq!(b["ptrace"], "EPERM");
    assert_eq!(b["write_task"], "EROFS");
    assert_eq!(b["cap_eff"], "0000000000000000", "no capabilities");

    // Every sandbox's mount namespace is a copy of one template: what one attaches (its code)
    // reaches no other. A second function's sandbox starts after this one's; each sees its own
    // code, mounted once, and nothing of the host's root.
    let mounts = |b: &serde_json::Value| -> Vec<String> {
        serde_json::from_value(b["mounts"].clone()).unwrap()
    };
    deploy(
        c,
        "hostile2",
        &host_python(),
        "probe.handler",
        zip_of(&[("probe.py", PROBE), ("other.txt", &b"x"[..])]),
        128,
        30,
    )
    .await;
    let event = serde_json::json!({"action": "probe", "port": app.addr.port()});
    let other = call(c, "hostile2", event.clone()).await.body;
    let again = call(c, "hostile", event).await.body;
    assert_eq!(
        other["task_files"],
        serde_json::json!(["other.txt", "probe.py"])
    );
    assert_eq!(again["task_files"], serde_json::json!(["probe.py"]));
    for b in [&other, &again] {
        let m = mounts(b);
        assert_eq!(m.iter().filter(|p| *p == "/var/task").count(), 1, "{m:?}");
        assert_eq!(m.iter().filter(|p| *p == "/").count(), 1, "{m:?}");
        assert!(!m.iter().any(|p| p.starts_with("/oldroot")), "{m:?}");
        // Private: not a peer of the host's mount of the code (on hosts whose mounts are
        // shared, as systemd makes them), so nothing mounted there reaches the sandbox.
        let task = b["task_mount"].to_string();
        assert!(
            !task.contains("shared:") && !task.contains("master:"),
            "{task}"
        );
    }

    let r = call(c, "hostile", serde_json::json!({"action": "forkbomb"})).await;
    assert_eq!(r.body["error"], "EAGAIN", "{}", r.body);
    assert!(r.body["forked"].as_i64().unwrap() < 1024, "{}", r.body);
    // The server is still responsive.
    c.list_functions().send().await.unwrap();
}

#[tokio::test]
async fn tmp_is_limited_and_cpu_follows_memory() {
    let app = spawn_app().await;
    let c = &app.client;
    // /tmp holds exactly EphemeralStorage (512 MB); `hardening::tmp_is_disk_not_memory` shows a
    // function with less memory than that filling it.
    probe(c, "tmp", 1024, 30).await;
    let r = call(c, "tmp", serde_json::json!({"action": "tmp"})).await;
    assert_eq!(r.body["error"], "ENOSPC");
    let mb = r.body["written_mb"].as_i64().unwrap();
    assert!(
        (500..=512).contains(&mb),
        "/tmp holds 512 MB: wrote {mb} MB"
    );
    c.list_functions().send().await.unwrap();

    // 256 MB buys 256/1769 of a vCPU.
    probe(c, "cpu", 256, 30).await;
    let r = call(c, "cpu", serde_json::json!({"action": "cpu", "s": 2})).await;
    let share = r.body.as_f64().unwrap();
    let expected = 256.0 / 1769.0;
    assert!(
        (share - expected).abs() <= expected * 0.2,
        "CPU share {share:.3}, expected {expected:.3} ± 20%"
    );
}
