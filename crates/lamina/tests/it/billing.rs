//! Metering: every invocation leaves one usage record; the bill's GB-seconds are exactly the
//! REPORT lines' Billed Duration × memory; usage survives kill -9 without double counting.

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LogType, Runtime};
use base64::Engine;

use crate::helpers::*;

async fn deploy(c: &Client, name: &str, memory: i32) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("x")
        .role(ROLE)
        .memory_size(memory)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(shell_runtime_zip()))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// Invokes and returns the REPORT line's Billed Duration.
async fn invoke_billed_ms(c: &Client, name: &str) -> u64 {
    let out = c
        .invoke()
        .function_name(name)
        .log_type(LogType::Tail)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    let log = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(out.log_result().unwrap())
            .unwrap(),
    )
    .unwrap();
    let report = log
        .lines()
        .find(|l| l.starts_with("REPORT"))
        .unwrap_or_else(|| panic!("no REPORT line in {log}"));
    let billed = report
        .split('\t')
        .find_map(|f| f.strip_prefix("Billed Duration: "))
        .unwrap();
    billed.trim_end_matches(" ms").parse().unwrap()
}

async fn bill(endpoint: &str, query: &str) -> serde_json::Value {
    reqwest::get(format!("{endpoint}/_lamina/bill?{query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the bill shows `requests` (usage is written in batches).
async fn bill_with(endpoint: &str, requests: u64) -> serde_json::Value {
    for _ in 0..200 {
        let b = bill(endpoint, "").await;
        if b["requests"] == requests {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the bill never showed {requests} requests: {}",
        bill(endpoint, "").await
    );
}

fn gb_s(mb_ms: u128) -> String {
    format!(
        "{}.{:03}",
        mb_ms / 1_024_000,
        (mb_ms % 1_024_000) * 1000 / 1_024_000
    )
}

#[tokio::test]
async fn usage_matches_report_lines_exactly() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(c, "small", 128).await;
    deploy(c, "large", 1536).await;
    let mut expected: u128 = 0;
    let mut per_fn = std::collections::BTreeMap::new();
    for (name, mb) in [
        ("small", 128u128),
        ("large", 1536),
        ("small", 128),
        ("large", 1536),
        ("large", 1536),
    ] {
        let billed = invoke_billed_ms(c, name).await as u128;
        expected += billed * mb;
        *per_fn.entry(name).or_insert(0u128) += billed * mb;
    }
    let b = bill_with(&app.endpoint(), 5).await;
    assert_eq!(b["gb_seconds"], gb_s(expected), "{b}");
    for f in b["functions"].as_array().unwrap() {
        let name = f["function"].as_str().unwrap();
        assert_eq!(f["gb_seconds"], gb_s(per_fn[name]), "{name}");
    }
    // Five requests and a few GB-seconds are inside the free tier: nothing to pay.
    assert_eq!(b["total"], "0.00");
    assert_eq!(b["free_tier_applied"], true);
    // At list price, the large function costs something measurable.
    let large = bill(&app.endpoint(), "function=large").await;
    assert_eq!(large["requests"], 3);
    assert_eq!(large["free_tier_applied"], false);
    let csv = reqwest::get(format!("{}/_lamina/bill?format=csv", app.endpoint()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("function,architecture,requests,gb_seconds,cost\n")
            && csv.contains("\nTOTAL,,5,"),
        "{csv}"
    );
    // Prometheus counters per function.
    let metrics = metrics(&app.endpoint()).await;
    assert!(
        metrics.contains("lamina_requests_total{function=\"large\",account=\"000000000000\",region=\"us-east-1\",outcome=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lamina_billed_gb_seconds_total{function=\"small\",account=\"000000000000\",region=\"us-east-1\"}"),
        "{metrics}"
    );
    // A month with nothing in it bills nothing.
    assert_eq!(
        bill(&app.endpoint(), "month=2001-01").await["total"],
        "0.00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_kill9_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy(&c, "metered", 256).await;
    let mut total = 0u128;
    for _ in 0..6 {
        total += invoke_billed_ms(&c, "metered").await as u128 * 256;
    }
    let before = bill_with(&server.endpoint(), 6).await;
    server.kill9();

    let mut server = ServerProcess::start(dir.path(), &[]);
    let after = bill(&server.endpoint(), "").await;
    assert_eq!(
        after["requests"], 6,
        "usage acknowledged before the crash survives, once"
    );
    assert_eq!(after["gb_seconds"], before["gb_seconds"]);
    assert_eq!(after["gb_seconds"], gb_s(total));
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    for _ in 0..3 {
        invoke_billed_ms(&c, "metered").await;
    }
    bill_with(&server.endpoint(), 9).await;
    server.kill9();
    let server = ServerProcess::start(dir.path(), &[]);
    assert_eq!(bill(&server.endpoint(), "").await["requests"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_keeps_the_last_invocations_usage_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy(&c, "last", 256).await;
    let billed = invoke_billed_ms(&c, "last").await as u128 * 256;
    // Then one without its log tail, whose caller has its answer when the runtime posts it,
    // before the invocation ends at the runtime's next `/next`.
    let out = c
        .invoke()
        .function_name("last")
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    // SIGTERM as soon as the client has its answer: the usage records and the log lines are
    // still queued for their writers' next interval, the last invocation not even ended.
    server.stop();

    let server = ServerProcess::start(dir.path(), &[]);
    let after = bill(&server.endpoint(), "").await;
    assert_eq!(
        after["requests"], 2,
        "the last invocations are billed: {after}"
    );
    let gb_seconds = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    assert!(
        gb_seconds(&after["gb_seconds"]) >= gb_seconds(&serde_json::json!(gb_s(billed))),
        "{after}"
    );
    let lines = log_lines(&server.endpoint(), "last").await;
    let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
    assert!(
        count("START") == 2 && count("REPORT") == 2,
        "the last invocations' lines are kept: {lines:?}"
    );
}

/// A runtime that sleeps a second before its response when the event says `before`, and after it
/// (before it asks for the next event, so within the invocation) when it says `after`.
const HANGS_RUNTIME: &[u8] = b"#!/bin/sh\nH=/tmp/headers\nwhile true; do\n  EV=$(curl -sS -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\")\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  case \"$EV\" in *before*) sleep 1;; esac\n  curl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" -d \"$EV\"\n  case \"$EV\" in *after*) sleep 1;; esac\ndone\n";

/// A caller that hangs up (a client's read timeout) does not make its invocation free: the
/// invocation runs to its end and is billed and counted, as on Lambda. Both ways a caller can
/// leave: before the function answers, and, asking for the log tail, after the answer while the
/// invocation has yet to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_whose_caller_hung_up_is_billed() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "hangs", HANGS_RUNTIME, 128, 30).await;
    let warm = invoke_billed_ms(c, "hangs").await;
    let url = format!("{}/2015-03-31/functions/hangs/invocations", app.endpoint());
    let client = reqwest::Client::new();
    for (event, tail) in [(r#""before""#, false), (r#""after""#, true)] {
        let mut req = client
            .post(&url)
            .body(event)
            .timeout(Duration::from_millis(300));
        if tail {
            req = req.header("X-Amz-Log-Type", "Tail");
        }
        let gave_up = req.send().await;
        assert!(
            gave_up.as_ref().is_err_and(|e| e.is_timeout()),
            "the call with {event} should time out: {gave_up:?}"
        );
    }
    // Three records: the warm-up, and the two abandoned invocations of at least a second each.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let b = loop {
        let b = bill(&app.endpoint(), "").await;
        if b["requests"] == 3 {
            break b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned invocations were not billed: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gb_seconds: f64 = b["gb_seconds"].as_str().unwrap().parse().unwrap();
    let at_least = gb_s((warm as u128 + 2000) * 128);
    assert!(
        gb_seconds >= at_least.parse::<f64>().unwrap(),
        "both abandoned invocations billed for their second: {b}"
    );
    // And counted as requests in the metrics.
    let metrics = metrics(&app.endpoint()).await;
    assert!(
        metrics.contains("lamina_requests_total{function=\"hangs\",account=\"000000000000\",region=\"us-east-1\",outcome=\"success\"} 3"),
        "{metrics}"
    );
}
