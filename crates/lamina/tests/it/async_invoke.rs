//! Asynchronous invocation through the official SDK: `Event` invokes and `InvokeAsync`, retries
//! with the same request id, destinations (and a change of them), event age, throttled events
//! that wait their turn, events that waited in the queue run before newer ones, event invoke
//! configurations, and a kill -9 with a thousand events queued.

use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::{Blob, ByteStream};
use aws_sdk_lambda::types::{
    DestinationConfig, FunctionCode, InvocationType, OnFailure, OnSuccess, Runtime,
};
use serde_json::{Value, json};

use crate::helpers::*;

const HANDLERS: &[u8] = b"import json, time\n\
def ok(event, context):\n    print('ran', context.aws_request_id)\n    return {'got': event}\n\
def fail(event, context):\n    print('attempt', context.aws_request_id)\n    raise RuntimeError('intentional failure')\n\
def sink(event, context):\n    print('RECORD ' + json.dumps(event))\n    return 1\n\
def slow(event, context):\n    print('slow', context.aws_request_id)\n    time.sleep(1)\n    return 1\n\
def brief(event, context):\n    time.sleep(0.01)\n    return 1\n\
def nap(event, context):\n    print('nap', context.aws_request_id)\n    time.sleep(event['s'])\n    return 1\n";

pub async fn deploy(c: &Client, name: &str, handler: &str) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(host_python().as_str()))
        .handler(format!("handlers.{handler}"))
        .role(ROLE)
        .timeout(10)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("handlers.py", HANDLERS)])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{name}")
}

/// Queues an event; returns its request id.
async fn event(c: &Client, name: &str, payload: Value) -> String {
    let out = c
        .invoke()
        .function_name(name)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(serde_json::to_vec(&payload).unwrap()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("event {name}: {}", describe(&e)));
    assert_eq!(out.status_code(), 202);
    assert!(out.payload().is_none_or(|p| p.as_ref().is_empty()));
    use aws_sdk_lambda::operation::RequestId;
    out.request_id().expect("a request id").to_owned()
}

/// Queues `each` events from each of eight callers at once; returns their request ids.
async fn events_from_eight(c: &Client, name: &'static str, each: usize) -> Vec<String> {
    let mut set = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let c = c.clone();
        set.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..each {
                ids.push(event(&c, name, json!({"chunk": chunk, "i": i})).await);
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.extend(r.unwrap());
    }
    ids
}

/// Sets a function's reserved concurrency.
async fn reserve(c: &Client, name: &str, n: i32) {
    c.put_function_concurrency()
        .function_name(name)
        .reserved_concurrent_executions(n)
        .send()
        .await
        .unwrap();
}

/// Sends a function's success records to `destination`, a function.
async fn successes_to(c: &Client, function: &str, destination: &str) {
    c.put_function_event_invoke_config()
        .function_name(function)
        .destination_config(
            DestinationConfig::builder()
                .on_success(OnSuccess::builder().destination(arn(destination)).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The destination records a sink function has logged, waiting until there are `n`.
async fn records(endpoint: &str, sink: &str, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let found: Vec<Value> = log_lines(endpoint, sink)
            .await
            .iter()
            .filter_map(|l| l.strip_prefix("RECORD "))
            .map(|r| serde_json::from_str(r).unwrap())
            .collect();
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_retried_with_one_request_id_and_reach_their_destinations() {
    let app = spawn_app_with("async_retry_delays_s = [0.3, 0.6]").await;
    let c = &app.client;
    deploy(c, "ok", "ok").await;
    deploy(c, "fail", "fail").await;
    deploy(c, "sink", "sink").await;
    c.put_function_event_invoke_config()
        .function_name("fail")
        .maximum_retry_attempts(2)
        .destination_config(
            DestinationConfig::builder()
                .on_failure(OnFailure::builder().destination(arn("sink")).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    successes_to(c, "ok", "sink").await;
    let failing = event(c, "fail", json!({"n": 1})).await;
    let succeeding = event(c, "ok", json!({"n": 2})).await;
    let got = records(&app.endpoint(), "sink", 2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let failure = got
        .iter()
        .find(|r| r["requestContext"]["requestId"] == failing.as_str())
        .expect("the failure record");
    assert_eq!(failure["version"], "1.0");
    assert_eq!(failure["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(
        failure["requestContext"]["functionArn"],
        format!("{}:$LATEST", arn("fail"))
    );
    assert_eq!(failure["requestPayload"], json!({"n": 1}));
    assert_eq!(failure["responseContext"]["functionError"], "Unhandled");
    assert_eq!(failure["responseContext"]["executedVersion"], "$LATEST");
    assert_eq!(
        failure["responsePayload"]["errorMessage"],
        "intentional failure"
    );
    let success = got
        .iter()
        .find(|r| r["requestContext"]["requestId"] == succeeding.as_str())
        .expect("the success record");
    assert_eq!(success["requestContext"]["condition"], "Success");
    assert_eq!(success["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(success["responsePayload"], json!({"got": {"n": 2}}));
    assert!(
        success
            .get("responseContext")
            .unwrap()
            .get("functionError")
            .is_none()
    );
    // Three attempts, each with START/END/REPORT, all under the event's own request id.
    let lines = log_lines(&app.endpoint(), "fail").await;
    let starts = lines
        .iter()
        .filter(|l| l.starts_with(&format!("START RequestId: {failing}")))
        .count();
    assert_eq!(starts, 3, "{lines:?}");
    // Every attempt is billed once.
    let bill: Value = reqwest::get(format!("{}/_lamina/bill?function=fail", app.endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bill_requests(&bill), 3, "{bill}");
    // A changed configuration applies to the next event (the dispatcher keeps a function's
    // rules between leases, and must not keep them past a change).
    deploy(c, "sink2", "sink").await;
    successes_to(c, "ok", "sink2").await;
    let after = event(c, "ok", json!({"n": 3})).await;
    let moved = records(&app.endpoint(), "sink2", 1, Duration::from_secs(30)).await;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["requestContext"]["requestId"], after.as_str());
    let old = records(&app.endpoint(), "sink", 3, Duration::ZERO).await;
    assert_eq!(old.len(), 2, "{old:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_invoke_async_and_payload_limits() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "ok", "ok").await;
    #[allow(deprecated)]
    let out = c
        .invoke_async()
        .function_name("ok")
        .invoke_args(ByteStream::from_static(b"{\"legacy\": true}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log_lines(&app.endpoint(), "ok")
        .await
        .iter()
        .any(|l| l.starts_with("ran "))
    {
        assert!(Instant::now() < deadline, "the legacy event never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 256 KB for InvokeAsync, 1 MB for an Event invoke.
    let big = |n: usize| format!("\"{}\"", "x".repeat(n - 2)).into_bytes();
    #[allow(deprecated)]
    let r = c
        .invoke_async()
        .function_name("ok")
        .invoke_args(ByteStream::from(big(262_145)))
        .send()
        .await;
    assert_error(r, "RequestEntityTooLargeException", "262144");
    let r = c
        .invoke()
        .function_name("ok")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(big(1_048_577)))
        .send()
        .await;
    assert_error(r, "RequestEntityTooLargeException", "1048576");
    let r = c
        .invoke()
        .function_name("ok")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(big(1_048_576)))
        .send()
        .await;
    assert_eq!(r.unwrap().status_code(), 202);
    let r = c
        .invoke()
        .function_name("missing")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await;
    assert_error(r, "ResourceNotFoundException", "Function not found");
}

#[tokio::test]
async fn event_invoke_config_life_cycle_and_validation() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "f", "ok").await;
    deploy(c, "g", "sink").await;
    let r = c
        .put_function_event_invoke_config()
        .function_name("f")
        .send()
        .await;
    assert_error(
        r,
        "InvalidParameterValueException",
        "You must specify at least one of error handling or destination setting.",
    );
    let put = c
        .put_function_event_invoke_config()
        .function_name("f")
        .maximum_retry_attempts(0)
        .send()
        .await
        .unwrap();
    assert_eq!(put.maximum_retry_attempts(), Some(0));
    assert_eq!(
        put.function_arn(),
        Some(format!("{}:$LATEST", arn("f")).as_str())
    );
    assert!(put.last_modified().is_some());
    let updated = c
        .update_function_event_invoke_config()
        .function_name("f")
        .maximum_event_age_in_seconds(120)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.maximum_retry_attempts(), Some(0), "kept");
    assert_eq!(updated.maximum_event_age_in_seconds(), Some(120));
    let listed = c
        .list_function_event_invoke_configs()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.function_event_invoke_configs().len(), 1);
    for (dest, needle) in [
        (
            arn("f"),
            "You can't specify the function as a destination for itself.",
        ),
        (arn("nope"), "is invalid"),
        (
            "arn:aws:sqs:us-east-1:000000000000:q".to_owned(),
            "cannot deliver to SQS queue destinations",
        ),
    ] {
        let r = c
            .put_function_event_invoke_config()
            .function_name("f")
            .destination_config(
                DestinationConfig::builder()
                    .on_failure(OnFailure::builder().destination(dest).build())
                    .build(),
            )
            .send()
            .await;
        assert_error(r, "InvalidParameterValueException", needle);
    }
    let r = c
        .put_function_event_invoke_config()
        .function_name("f")
        .maximum_retry_attempts(3)
        .send()
        .await;
    assert_error(r, "ValidationException", "maximumRetryAttempts");
    c.delete_function_event_invoke_config()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let r = c
        .get_function_event_invoke_config()
        .function_name("f")
        .send()
        .await;
    assert_error(
        r,
        "ResourceNotFoundException",
        &format!(
            "The function {}:$LATEST doesn't have an EventInvokeConfig",
            arn("f")
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_stopped_functions_and_throttled_events() {
    let app = spawn_app_with("async_retry_delays_s = [100]").await;
    let c = &app.client;
    deploy(c, "fail", "fail").await;
    deploy(c, "slow", "slow").await;
    deploy(c, "stopped", "ok").await;
    deploy(c, "sink", "sink").await;
    let to_sink = || {
        DestinationConfig::builder()
            .on_failure(OnFailure::builder().destination(arn("sink")).build())
            .build()
    };
    // A retry 100 s away would make the event older than its 60 s: it ends after one attempt.
    c.put_function_event_invoke_config()
        .function_name("fail")
        .maximum_event_age_in_seconds(60)
        .destination_config(to_sink())
        .send()
        .await
        .unwrap();
    c.put_function_event_invoke_config()
        .function_name("stopped")
        .destination_config(to_sink())
        .send()
        .await
        .unwrap();
    reserve(c, "stopped", 0).await;
    let old = event(c, "fail", json!({})).await;
    let stopped = event(c, "stopped", json!({})).await;
    let got = records(&app.endpoint(), "sink", 2, Duration::from_secs(20)).await;
    let by = |id: &str| {
        got.iter()
            .find(|r| r["requestContext"]["requestId"] == id)
            .unwrap_or_else(|| panic!("no record for {id}: {got:?}"))
            .clone()
    };
    assert_eq!(by(&old)["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(by(&old)["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(
        by(&stopped)["requestContext"]["condition"],
        "ZeroReservedConcurrency"
    );
    assert_eq!(by(&stopped)["requestContext"]["approximateInvokeCount"], 0);

    // One at a time: the events that find the function busy wait in the queue and run later.
    reserve(c, "slow", 1).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(event(c, "slow", json!({"i": i})).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = log_lines(&app.endpoint(), "slow").await;
        if ids
            .iter()
            .all(|id| lines.iter().any(|l| l == &format!("slow {id}")))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "throttled events never ran: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A synchronous caller still gets its turn.
    let out = c.invoke().function_name("slow").send().await;
    assert!(out.is_ok() || out.is_err_and(|e| describe(&e).contains("TooManyRequests")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_a_thousand_queued_events_loses_none_and_bills_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data, &[]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    // At most one attempt at a time (the async share of 2), 10 ms each: the queue drains at
    // under 100 events a second, so most of the thousand are still queued at the crash
    // however fast they are accepted.
    deploy(&c, "work", "brief").await;
    reserve(&c, "work", 2).await;
    let ids = events_from_eight(&c, "work", 125).await;
    assert_eq!(ids.len(), 1000);
    // Some are running, most are queued: crash.
    let metrics = metrics(&server.endpoint()).await;
    let queued: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("lamina_async_queue_events ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap();
    assert!(
        queued > 100.0,
        "most events are still queued at the crash: {queued}"
    );
    server.kill9();
    let server = ServerProcess::start(&data, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let requests = loop {
        let bill: Value = reqwest::get(format!("{}/_lamina/bill?function=work", server.endpoint()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let requests = bill_requests(&bill);
        if requests >= 1000 || Instant::now() > deadline {
            break requests;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Each of the 1000 acknowledged events ran at least once, and each is billed exactly once
    // (every attempt's usage record is keyed by its request id).
    assert_eq!(requests, 1000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bill: Value = reqwest::get(format!("{}/_lamina/bill?function=work", server.endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bill_requests(&bill), 1000);
}

/// The request count of a bill's function lines.
pub fn bill_requests(bill: &Value) -> u64 {
    fn walk(v: &Value) -> Option<u64> {
        match v {
            Value::Object(m) => m
                .get("requests")
                .and_then(Value::as_u64)
                .or_else(|| m.values().find_map(walk)),
            Value::Array(a) => a.iter().find_map(walk),
            _ => None,
        }
    }
    walk(bill).unwrap_or(0)
}

/// `lamina_async_queue_events` from `/metrics`.
pub async fn queued(endpoint: &str) -> f64 {
    metrics(endpoint)
        .await
        .lines()
        .find_map(|l| {
            l.strip_prefix("lamina_async_queue_events ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_function_takes_its_queued_events_along() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "slow", "slow").await;
    reserve(c, "slow", 1).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(event(c, "slow", json!({"i": i})).await);
    }
    assert!(queued(&app.endpoint()).await >= 15.0);
    c.delete_function()
        .function_name("slow")
        .send()
        .await
        .unwrap();
    // A function of the same name, made at once: none of the deleted one's events runs on it,
    // neither those still in the store nor those the dispatcher held waiting for room.
    deploy(c, "slow", "ok").await;
    // The running attempt ends; nothing else of the function's runs, and the queue is empty
    // (its bound counts nothing that is gone).
    let deadline = Instant::now() + Duration::from_secs(10);
    while queued(&app.endpoint()).await != 0.0 {
        assert!(
            Instant::now() < deadline,
            "{}",
            queued(&app.endpoint()).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(queued(&app.endpoint()).await, 0.0);
    let lines = log_lines(&app.endpoint(), "slow").await;
    let ran: Vec<_> = lines
        .iter()
        .filter(|l| ids.iter().any(|id| l.trim() == format!("ran {id}")))
        .collect();
    assert!(
        ran.is_empty(),
        "deleted events ran on the new function: {ran:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_waiting_in_the_queue_run_before_newer_ones() {
    let app = spawn_app().await;
    let c = &app.client;
    // One attempt at a time: the first events go to the dispatcher, the rest wait in the queue.
    deploy(c, "ordered", "ok").await;
    reserve(c, "ordered", 1).await;
    let first: std::collections::HashSet<String> = events_from_eight(c, "ordered", 25)
        .await
        .into_iter()
        .collect();
    // Newer events while the queue drains, each with a slot freed since the last: none may run
    // before an event that waited in the queue.
    let mut later = std::collections::HashSet::new();
    for i in 0..20 {
        later.insert(event(c, "ordered", json!({"later": i})).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let ran: Vec<String> = loop {
        let ran: Vec<String> = log_lines(&app.endpoint(), "ordered")
            .await
            .iter()
            .filter_map(|l| l.trim().strip_prefix("ran ").map(str::to_owned))
            .collect();
        if ran.len() >= first.len() + later.len() || Instant::now() > deadline {
            break ran;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ran.len(), 220, "every event ran once");
    let last_first = ran.iter().rposition(|id| first.contains(id)).unwrap();
    let first_later = ran.iter().position(|id| later.contains(id)).unwrap();
    assert!(
        last_first < first_later,
        "an event that waited in the queue ran at {last_first}, after a newer one at {first_later}"
    );
}
