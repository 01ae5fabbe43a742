//! `/metrics`' series of a function go with it: none of them stays once it is deleted (its
//! gauges, counters and histograms alike), so that functions made and deleted in a loop cannot
//! grow what the server holds; one made again under its name starts afresh.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;

use crate::helpers::*;

/// A runtime that holds each event 2 s before it answers.
const SLOW_RUNTIME: &[u8] = b"#!/bin/sh\nH=/tmp/headers\nAPI=\"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime\"\nwhile true; do\n  curl -sS -o /dev/null -D $H \"$API/invocation/next\"\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  sleep 2\n  curl -sS -o /dev/null -X POST \"$API/invocation/$ID/response\" -d '\"done\"'\ndone\n";

/// The value of the series `name` of `function` (in the default account and region), if
/// `/metrics` shows it.
fn value(text: &str, name: &str, function: &str) -> Option<f64> {
    let labels = format!(r#"{{function="{function}",account="000000000000",region="us-east-1"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(labels.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// The lines of `/metrics` naming `function`.
fn naming<'a>(text: &'a str, function: &str) -> Vec<&'a str> {
    let label = format!("function=\"{function}\"");
    text.lines().filter(|l| l.contains(&label)).collect()
}

async fn invoke(c: &aws_sdk_lambda::Client, function: &str) {
    c.invoke()
        .function_name(function)
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect("the invocation succeeds");
}

/// Reads `text` with Prometheus' own Python client: every family parses, with its type, and the
/// function's histogram has its buckets.
fn parsed_by_prometheus_client(text: &str) {
    let venv = venv_with("prometheus-client-venv", &["prometheus-client"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
print(json.dumps({
    "types": {f.name: f.type for f in families},
    "samples": [[s.name, s.labels, s.value] for f in families for s in f.samples],
}))
"#;
    let out = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let types = &got["types"];
    assert_eq!(
        types["lamina_invoke_duration_seconds"], "histogram",
        "{got}"
    );
    assert_eq!(types["lamina_requests"], "counter", "{got}");
    assert_eq!(types["lamina_concurrent_executions"], "gauge", "{got}");
    let inf = got["samples"].as_array().unwrap().iter().find(|s| {
        s[0] == "lamina_invoke_duration_seconds_bucket"
            && s[1]["function"] == "gauge-gone"
            && s[1]["le"] == "+Inf"
    });
    assert_eq!(inf.and_then(|s| s[2].as_f64()), Some(1.0), "{got}");
}

/// `/metrics` once `ended` holds of it, within 3 s.
async fn once(endpoint: &str, ended: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..60 {
        text = metrics(endpoint).await;
        if ended(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never so: {text}");
}

/// `/metrics` once `function`'s invocation has ended (at its runtime's next `/next`, a moment
/// after its answer): its concurrency reads 0.
async fn settled(endpoint: &str, function: &str) -> String {
    once(endpoint, |t| {
        value(t, "lamina_concurrent_executions", function) == Some(0.0)
    })
    .await
}

/// Invokes `function` in a task of its own, and returns once `/metrics` shows it running.
async fn running(app: &TestApp, function: &'static str) -> tokio::task::JoinHandle<()> {
    let call = {
        let c = app.client.clone();
        tokio::spawn(async move { invoke(&c, function).await })
    };
    once(&app.endpoint(), |t| {
        value(t, "lamina_concurrent_executions", function) == Some(1.0)
    })
    .await;
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_functions_series_go_and_one_made_again_starts_afresh() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "gauge-gone", SLOW_RUNTIME, 128, 10).await;
    running(&app, "gauge-gone").await.await.unwrap();
    let text = settled(&app.endpoint(), "gauge-gone").await;
    assert_eq!(
        value(&text, "lamina_cold_starts_total", "gauge-gone"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "lamina_invoke_duration_seconds_count", "gauge-gone"),
        Some(1.0),
        "{text}"
    );
    let inf = r#"lamina_invoke_duration_seconds_bucket{function="gauge-gone",account="000000000000",region="us-east-1",le="+Inf"} 1"#;
    assert!(text.contains(inf), "{text}");
    parsed_by_prometheus_client(&text);

    c.delete_function()
        .function_name("gauge-gone")
        .send()
        .await
        .unwrap();
    let text = metrics(&app.endpoint()).await;
    let left = naming(&text, "gauge-gone");
    assert!(left.is_empty(), "series of a deleted function: {left:#?}");

    // Made again: its series start from nothing.
    create_script_function(c, "gauge-gone", SLOW_RUNTIME, 128, 10).await;
    invoke(c, "gauge-gone").await;
    let text = settled(&app.endpoint(), "gauge-gone").await;
    let ok = "lamina_requests_total{function=\"gauge-gone\",account=\"000000000000\",region=\"us-east-1\",outcome=\"success\"} 1";
    assert!(text.contains(ok), "{text}");
    assert_eq!(
        value(&text, "lamina_cold_starts_total", "gauge-gone"),
        Some(1.0),
        "{text}"
    );
}

/// A function changed, then deleted, while its first invocation runs: the series that
/// invocation would make at its end are never made, so none stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_deleted_during_its_first_invocation_leaves_no_series() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "gone-early", SLOW_RUNTIME, 128, 10).await;
    let call = running(&app, "gone-early").await;
    c.update_function_configuration()
        .function_name("gone-early")
        .description("changed while it runs")
        .send()
        .await
        .unwrap();
    c.delete_function()
        .function_name("gone-early")
        .send()
        .await
        .unwrap();
    call.await.unwrap();
    // Its concurrency goes with its invocation, at its runtime's next `/next`.
    let text = once(&app.endpoint(), |t| naming(t, "gone-early").is_empty()).await;
    // And nothing comes back after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = metrics(&app.endpoint()).await + &text;
    let left = naming(&text, "gone-early");
    assert!(left.is_empty(), "series of a deleted function: {left:#?}");
}
