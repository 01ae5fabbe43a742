//! Scaling: reserved and account concurrency with Lambda's throttles, invocations whose callers
//! go away, keep-alive expiry, eviction
//! under a memory budget, 200 concurrent invocations, and shutdown (in the middle of a burst of
//! cold starts, too) that leaves nothing behind; the threads a burst of cold starts holds.

use std::path::Path;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};

use crate::helpers::*;

async fn deploy(c: &Client, name: &str, memory: i32, sleep_s: &str) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("x")
        .role(ROLE)
        .memory_size(memory)
        .timeout(30)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("SLEEP", sleep_s)
                .build(),
        )
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(shell_runtime_zip()))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

type InvokeResult = Result<
    aws_sdk_lambda::operation::invoke::InvokeOutput,
    SdkError<InvokeError, aws_sdk_lambda::config::http::HttpResponse>,
>;

async fn invoke(c: &Client, name: &str) -> InvokeResult {
    c.invoke()
        .function_name(name)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
}

/// The throttle `Reason`, or `None` if the call succeeded.
fn throttle_reason(r: &InvokeResult) -> Option<String> {
    match r {
        Ok(_) => None,
        Err(e) => match e.as_service_error() {
            Some(InvokeError::TooManyRequestsException(t)) => Some(
                t.reason()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            _ => panic!("unexpected error: {}", describe(e)),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reserved_concurrency_caps_and_stops_a_function() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "capped", 128, "1").await;
    assert!(
        c.get_function_concurrency()
            .function_name("capped")
            .send()
            .await
            .unwrap()
            .reserved_concurrent_executions()
            .is_none()
    );
    c.put_function_concurrency()
        .function_name("capped")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    let got = c
        .get_function_concurrency()
        .function_name("capped")
        .send()
        .await
        .unwrap();
    assert_eq!(got.reserved_concurrent_executions(), Some(1));
    let settings = c.get_account_settings().send().await.unwrap();
    assert_eq!(
        settings
            .account_limit()
            .unwrap()
            .unreserved_concurrent_executions(),
        Some(999)
    );
    let got = c
        .get_function()
        .function_name("capped")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(1)
    );

    // Two at once with a reservation of one: one runs, one is throttled.
    let (a, b) = tokio::join!(invoke(c, "capped"), invoke(c, "capped"));
    let mut reasons: Vec<Option<String>> = vec![throttle_reason(&a), throttle_reason(&b)];
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            None,
            Some("ReservedFunctionConcurrentInvocationLimitExceeded".to_string())
        ]
    );

    // Zero stops the function.
    c.put_function_concurrency()
        .function_name("capped")
        .reserved_concurrent_executions(0)
        .send()
        .await
        .unwrap();
    let r = invoke(c, "capped").await;
    assert_eq!(
        throttle_reason(&r).as_deref(),
        Some("ReservedFunctionConcurrentInvocationLimitExceeded")
    );
    let (code, msg) = error_of(r.as_ref().unwrap_err());
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("TooManyRequestsException", "Rate Exceeded.")
    );
    c.delete_function_concurrency()
        .function_name("capped")
        .send()
        .await
        .unwrap();
    assert_eq!(throttle_reason(&invoke(c, "capped").await), None);

    // The unreserved pool never drops below 100.
    assert_error(
        c.put_function_concurrency()
            .function_name("capped")
            .reserved_concurrent_executions(901)
            .send()
            .await,
        "InvalidParameterValueException",
        "decreases account's UnreservedConcurrentExecution below its minimum value of [100]",
    );
    c.put_function_concurrency()
        .function_name("capped")
        .reserved_concurrent_executions(900)
        .send()
        .await
        .unwrap();
    assert_error(
        c.put_function_concurrency()
            .function_name("capped:1")
            .reserved_concurrent_executions(1)
            .send()
            .await,
        "InvalidParameterValueException",
        "permitted on Lambda functions only",
    );
    assert_error(
        c.get_function_concurrency()
            .function_name("ghost")
            .send()
            .await,
        "ResourceNotFoundException",
        "ghost",
    );
}

/// A runtime that answers with the time it started (one value per environment), then lingers
/// 200 ms after each response before it asks for the next event. Between its response and its
/// next `/next` it starts only `sleep` and `curl`, so that a loaded machine does not stretch the
/// linger past the second a caller waits.
const LINGERING_RUNTIME: &[u8] = b"#!/bin/sh\nSTARTED=$(date +%s%N)\nH=/tmp/headers\nwhile true; do\n  curl -sS -o /dev/null -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  curl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" -d \"\\\"$STARTED\\\"\"\n  sleep 0.2\ndone\n";

/// A caller has its answer when the runtime posts it, while the environment stays in flight
/// until the runtime asks for the next event. A sequential caller that comes meanwhile waits for
/// that environment: with a reservation of one it is neither throttled nor given another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sequential_caller_waits_for_the_environment_finishing() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "lingers", LINGERING_RUNTIME, 1024, 30).await;
    c.put_function_concurrency()
        .function_name("lingers")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    let mut started = Vec::new();
    for i in 0..4 {
        let r = invoke(c, "lingers").await;
        assert_eq!(throttle_reason(&r), None, "call {i} throttled");
        let out = r.unwrap();
        assert_eq!(out.function_error(), None, "call {i}");
        started.push(String::from_utf8(out.payload().unwrap().as_ref().to_vec()).unwrap());
    }
    assert!(
        started.iter().all(|s| s == &started[0]),
        "one environment served every call: {started:?}"
    );
    // The invocation lasts until the runtime asks for the next event: its 200 ms linger is in
    // the REPORT line's Duration (a log tail waits for it).
    let out = c
        .invoke()
        .function_name("lingers")
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap();
    use base64::Engine;
    let log = base64::engine::general_purpose::STANDARD
        .decode(out.log_result().unwrap())
        .unwrap();
    let log = String::from_utf8_lossy(&log);
    let duration: f64 = log
        .split("\tDuration: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Duration in {log}"));
    assert!(duration >= 200.0, "Duration {duration} ms in {log}");
    assert_eq!(
        String::from_utf8(out.payload().unwrap().as_ref().to_vec()).unwrap(),
        started[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_account_limit_throttles_unreserved_functions() {
    let app = spawn_app_with("account_concurrency = 2").await;
    let c = &app.client;
    deploy(c, "busy", 128, "1").await;
    let (a, b, d) = tokio::join!(invoke(c, "busy"), invoke(c, "busy"), invoke(c, "busy"));
    let mut reasons = vec![
        throttle_reason(&a),
        throttle_reason(&b),
        throttle_reason(&d),
    ];
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            None,
            None,
            Some("ConcurrentInvocationLimitExceeded".to_string())
        ]
    );
    let metrics = metrics(&app.endpoint()).await;
    assert!(
        metrics.contains(
            "lamina_throttles_total{function=\"busy\",account=\"000000000000\",region=\"us-east-1\",reason=\"ConcurrentInvocationLimitExceeded\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_up_rate_throttles_new_environments_only() {
    let app = spawn_app_with("scale_up_per_10s = 2").await;
    let c = &app.client;
    deploy(c, "ramp", 128, "1").await;
    let (a, b, d) = tokio::join!(invoke(c, "ramp"), invoke(c, "ramp"), invoke(c, "ramp"));
    let mut reasons = vec![
        throttle_reason(&a),
        throttle_reason(&b),
        throttle_reason(&d),
    ];
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            None,
            None,
            Some("FunctionInvocationRateLimitExceeded".to_string())
        ]
    );
    // Warm environments are not new: they serve at once.
    assert_eq!(throttle_reason(&invoke(c, "ramp").await), None);
    let metrics = metrics(&app.endpoint()).await;
    for name in [
        "lamina_cold_starts_total{function=\"ramp\",account=\"000000000000\",region=\"us-east-1\"}",
        "lamina_invoke_duration_seconds",
        "lamina_environments ",
        "lamina_concurrent_executions",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics: {metrics}"
        );
    }
}

/// Whether the next invocation of `name` is a cold start (its REPORT line has Init Duration).
async fn is_cold(c: &Client, name: &str) -> bool {
    started_cold(&invoke_tail(c, name).await.unwrap())
}

/// Invokes `name` with the log's tail in the answer.
async fn invoke_tail(c: &Client, name: &str) -> InvokeResult {
    c.invoke()
        .function_name(name)
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
}

/// Whether the invocation's REPORT line (in its log tail) has an Init Duration.
fn started_cold(out: &aws_sdk_lambda::operation::invoke::InvokeOutput) -> bool {
    use base64::Engine;
    let log = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(out.log_result().unwrap())
            .unwrap(),
    )
    .unwrap();
    log.contains("Init Duration")
}

#[tokio::test]
async fn idle_environments_expire_after_the_keep_alive() {
    let app = spawn_app_with("keep_alive_s = 1").await;
    let c = &app.client;
    deploy(c, "brief", 128, "0").await;
    assert!(is_cold(c, "brief").await);
    assert!(!is_cold(c, "brief").await, "warm within the keep-alive");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        is_cold(c, "brief").await,
        "destroyed after the keep-alive: scale to zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invocation_its_caller_abandons_runs_to_its_end() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "slow", 128, "1").await;
    c.put_function_concurrency()
        .function_name("slow")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    // Its one environment, warm: what follows does not wait for a cold start.
    invoke(c, "slow").await.unwrap();
    // A caller that gives up after 300 ms (a client with a short timeout) and closes its
    // connection while the function sleeps for a second.
    let url = format!("{}/2015-03-31/functions/slow/invocations", app.endpoint());
    let gave_up = reqwest::Client::new()
        .post(&url)
        .body("{}")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        gave_up.as_ref().is_err_and(|e| e.is_timeout()),
        "the first call should time out: {gave_up:?}"
    );
    // Its invocation still runs and holds the function's one environment...
    let meanwhile = invoke(c, "slow").await;
    assert_eq!(
        throttle_reason(&meanwhile).as_deref(),
        Some("ReservedFunctionConcurrentInvocationLimitExceeded"),
        "the abandoned invocation keeps running"
    );
    // ...which goes back to the pool, warm, once the invocation ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let next = loop {
        let next = invoke_tail(c, "slow").await;
        if throttle_reason(&next).is_none() {
            break next.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned invocation never gave its environment back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !started_cold(&next),
        "the environment the abandoned invocation ran in serves the next one"
    );
}

/// The `lamina_environments` gauge.
async fn environments(endpoint: &str) -> f64 {
    let m = metrics(endpoint).await;
    m.lines()
        .find_map(|l| l.strip_prefix("lamina_environments "))
        .unwrap_or_else(|| panic!("no lamina_environments in /metrics: {m}"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits until an environment runs (a call has started).
async fn until_running(endpoint: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while environments(endpoint).await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_environment_busy_while_its_function_is_deleted_goes_when_its_invocation_ends() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "doomed", 128, "2").await;
    let call = tokio::spawn({
        let c = c.clone();
        async move { invoke(&c, "doomed").await }
    });
    // Deleted while its one environment runs the call.
    until_running(&app.endpoint()).await;
    c.delete_function()
        .function_name("doomed")
        .send()
        .await
        .unwrap();
    let answered = call.await.unwrap();
    assert!(answered.is_ok(), "the call runs to its end: {answered:?}");
    // Its environment goes with the invocation, not a keep-alive later: it would hold a uid,
    // a network namespace and the deleted code.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while environments(&app.endpoint()).await > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the deleted function's environment was kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_published_version_keeps_its_busy_environment_when_latest_changes() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "steady", 128, "2").await;
    c.publish_version()
        .function_name("steady")
        .send()
        .await
        .unwrap();
    let call = |c: &Client| {
        c.invoke()
            .function_name("steady")
            .qualifier("1")
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .payload(Blob::new(b"{}".to_vec()))
            .send()
    };
    let first = tokio::spawn(call(c));
    until_running(&app.endpoint()).await;
    // $LATEST changes while version 1 runs: only $LATEST's environments are retired.
    c.update_function_configuration()
        .function_name("steady")
        .description("changed")
        .send()
        .await
        .unwrap();
    assert!(started_cold(&first.await.unwrap().unwrap()));
    let again = call(c).await.unwrap();
    assert!(
        !started_cold(&again),
        "version 1's environment serves it again: $LATEST's change is not version 1's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_memory_budget_evicts_idle_environments_then_throttles() {
    let app = spawn_app_with("memory_budget_mb = 300").await;
    let c = &app.client;
    deploy(c, "a", 256, "0").await;
    deploy(c, "b", 256, "0").await;
    assert!(is_cold(c, "a").await);
    assert!(!is_cold(c, "a").await);
    // b needs room: a's idle environment is evicted.
    assert!(is_cold(c, "b").await);
    assert!(is_cold(c, "a").await, "a was evicted to make room for b");
    // While a runs (1 s), b cannot get memory: throttled, not run out of memory.
    deploy(c, "slow", 256, "1").await;
    let (slow, other) = tokio::join!(invoke(c, "slow"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        invoke(c, "b").await
    });
    assert_eq!(throttle_reason(&slow), None);
    assert_eq!(
        throttle_reason(&other).as_deref(),
        Some("ConcurrentInvocationLimitExceeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_commit_admits_more_environments_and_the_hosts_memory_still_guards() {
    // The budget of 300 MB, over-committed twice: two 256 MB environments live side by side,
    // where without over-commit the second evicts the first.
    let app = spawn_app_with("memory_budget_mb = 300\nmemory_overcommit = 2.0").await;
    let c = &app.client;
    deploy(c, "a", 256, "0").await;
    deploy(c, "b", 256, "0").await;
    assert!(is_cold(c, "a").await);
    assert!(is_cold(c, "b").await);
    assert!(!is_cold(c, "a").await, "a kept its environment beside b's");
    assert!(!is_cold(c, "b").await);
    // A third does not fit 600 MB: the oldest idle one makes room, as without over-commit.
    deploy(c, "third", 256, "0").await;
    assert!(is_cold(c, "third").await);
    assert!(
        is_cold(c, "a").await,
        "a, the least recently used, was evicted"
    );
    drop(app);

    // A reserve larger than the host: no new environment may start, whatever the budget. The
    // refusal is a throttle, as a full budget's is.
    let app = spawn_app_with("memory_overcommit = 2.0\nmemory_reserve_mb = 1000000000").await;
    let c = &app.client;
    deploy(c, "guarded", 128, "0").await;
    let r = invoke(c, "guarded").await;
    assert_eq!(
        throttle_reason(&r).as_deref(),
        Some("ConcurrentInvocationLimitExceeded"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_invocations() {
    let app = spawn_app_with("memory_budget_mb = 100000\ntmp_budget_mb = 1000000").await;
    let c = &app.client;
    deploy(c, "wide", 128, "0.5").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let c = c.clone();
        set.spawn(async move {
            c.invoke()
                .function_name("wide")
                .payload(Blob::new(format!("{{\"i\":{i}}}").into_bytes()))
                .send()
                .await
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        let out = r
            .unwrap()
            .unwrap_or_else(|e| panic!("invocation failed: {}", describe(&e)));
        assert_eq!(out.function_error(), None);
        ok += 1;
    }
    assert_eq!(ok, 200);
}

/// This server's environment cgroups and their processes.
fn residue(data_dir: &Path) -> (Vec<String>, Vec<i32>) {
    let dir = Path::new("/sys/fs/cgroup/pids").join(cgroup_parent(data_dir));
    let mut groups = Vec::new();
    let mut pids = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten().filter(|e| e.path().is_dir()) {
            groups.push(e.file_name().to_string_lossy().into_owned());
            let procs = std::fs::read_to_string(e.path().join("cgroup.procs")).unwrap_or_default();
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    (groups, pids)
}

/// A `lamina server` process with its data in `<dir>/data`, and a client of it.
fn server_process() -> (tempfile::TempDir, ServerProcess, Client) {
    assert!(
        Path::new("/sys/fs/cgroup/pids").exists(),
        "this test needs cgroup v1 pids (as on the CI machine)"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    (dir, server, c)
}

/// SIGTERM, and a clean exit.
fn stop(server: &mut ServerProcess) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_crash_leave_nothing_behind() {
    let (dir, mut server, c) = server_process();
    let data = dir.path().join("data");
    deploy(&c, "one", 128, "0").await;
    deploy(&c, "two", 128, "0").await;
    invoke(&c, "one").await.unwrap();
    invoke(&c, "two").await.unwrap();
    // Two idle environments, and the sandboxes made ahead of time (two by default).
    let (groups, pids) = residue(&data);
    assert!(groups.len() >= 2, "two idle environments: {groups:?}");
    assert!(pids.len() >= 4, "{pids:?}");

    // SIGTERM: everything goes, including the parent group.
    stop(&mut server);
    let (groups, _) = residue(&data);
    assert!(groups.is_empty(), "cgroups left after shutdown: {groups:?}");
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "processes left after shutdown"
    );
    // Sandboxes mount only inside their own mount namespaces: nothing of ours is in the host's.
    let data_path = data.canonicalize().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(data_path.to_str().unwrap()),
        "mounts left in the host namespace"
    );
    // Network namespaces are anonymous and go with their processes: none is ever named (the
    // network tests' own labs, `lmn<pid>-…`, aside).
    let named = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with("lmn"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(named, 0, "no named network namespaces are created");

    // kill -9: the fork server kills what runs in the groups, and the next start removes
    // whatever is left.
    let mut server = ServerProcess::start(&data, &[]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    invoke(&c, "one").await.unwrap();
    let (_, pids) = residue(&data);
    assert!(!pids.is_empty());
    server.kill9();
    let server = ServerProcess::start(&data, &[]);
    // The server cleans up while it starts; its API answers once that is done.
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    c.list_functions().send().await.unwrap();
    // What is left are the new server's sandboxes made ahead of time (at most two, none holding
    // a process of the crashed run).
    let mut now = residue(&data);
    for _ in 0..300 {
        if now.0.len() <= 2 && pids.iter().all(|p| !alive(*p) && !now.1.contains(p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        now = residue(&data);
    }
    assert!(
        now.0.len() <= 2 && pids.iter().all(|p| !now.1.contains(p)),
        "leftovers of the crashed run are removed at start: {now:?}"
    );
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "processes of the crashed run are killed at start"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_in_a_burst_of_cold_starts_leaves_nothing_behind() {
    // No grace period: the stop does not wait for the attempts, so it meets the sandboxes still
    // being made for them.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lamina.toml");
    std::fs::write(&config, "shutdown_grace_s = 0\n").unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data, &["--config", config.to_str().unwrap()]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy(&c, "burst", 128, "1").await;
    // Thirty events, so thirty cold starts at once (past the two sandboxes made ahead, each made
    // on the spot), which no caller waits for.
    for _ in 0..30 {
        c.invoke()
            .function_name("burst")
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(Blob::new(b"{}".to_vec()))
            .send()
            .await
            .unwrap();
    }
    // SIGTERM while sandboxes are being made: beyond the two made ahead, some exist and more
    // are on their way.
    let mut seen = residue(&data);
    for _ in 0..2500 {
        if seen.0.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        seen = residue(&data);
    }
    assert!(seen.0.len() >= 4, "the burst started: {seen:?}");
    stop(&mut server);
    // No group under the server's parent, and the parent gone from every hierarchy.
    let (groups, _) = residue(&data);
    assert!(groups.is_empty(), "cgroups left after shutdown: {groups:?}");
    let parent = cgroup_parent(&data);
    for hierarchy in ["pids", "memory", "cpu", "freezer"] {
        let p = Path::new("/sys/fs/cgroup").join(hierarchy).join(&parent);
        assert!(!p.exists(), "{} left after shutdown", p.display());
    }
    let (_, pids) = seen;
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "processes left after shutdown"
    );
}

/// Threads of a process, from `/proc`.
fn threads_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_cold_starts_holds_a_bounded_number_of_threads() {
    // Each start holds a blocking thread until its function's process runs; a hundred at once
    // must not become a hundred threads (their stacks are the server's memory), only as many as
    // start at once: eight per CPU, at least 16 (`starts_at_once` in runtime-api). A hundred
    // more starts than that are asked for.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let starts = (8 * cpus).clamp(16, 256);
    let n = starts + 104;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lamina.toml");
    std::fs::write(
        &config,
        "memory_budget_mb = 100000\ntmp_budget_mb = 1000000\n",
    )
    .unwrap();
    let mut server = ServerProcess::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy(&c, "burst", 128, "1").await;
    // Called once first, so that the burst finds the function's configuration cached rather
    // than each call reading it from the store on a blocking thread of its own.
    let first = invoke(&c, "burst").await.unwrap();
    assert_eq!(first.function_error(), None);
    let pid = server.child.id();
    let before = threads_of(pid);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let c = c.clone();
        set.spawn(async move { invoke(&c, "burst").await });
    }
    let mut most = before;
    let mut done = 0;
    while done < n {
        tokio::select! {
            r = set.join_next() => {
                let out = r.unwrap().unwrap().unwrap_or_else(|e| panic!("invocation failed: {}", describe(&e)));
                assert_eq!(out.function_error(), None);
                done += 1;
            }
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
        most = most.max(threads_of(pid));
    }
    // The runtime's workers and the server's own threads (writers, pools, the network) come
    // on top, with a few blocking threads for the store.
    assert!(
        most <= before + starts + 16,
        "{most} threads during {n} cold starts ({before} before; {starts} starts at once)"
    );
    stop(&mut server);
}
