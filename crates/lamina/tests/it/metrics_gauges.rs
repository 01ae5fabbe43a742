//! `/metrics`' per-function gauges follow functions that go: a deleted function's concurrency
//! reads 0 rather than its last value.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;

use crate::helpers::*;

/// A runtime that holds each event 2 s before it answers.
const SLOW_RUNTIME: &[u8] = b"#!/bin/sh\nH=/tmp/headers\nAPI=\"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime\"\nwhile true; do\n  curl -sS -o /dev/null -D $H \"$API/invocation/next\"\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  sleep 2\n  curl -sS -o /dev/null -X POST \"$API/invocation/$ID/response\" -d '\"done\"'\ndone\n";

/// The value of `lamina_concurrent_executions` for `arn`, if `/metrics` shows it.
async fn concurrency(endpoint: &str, arn: &str) -> Option<f64> {
    let text = metrics(endpoint).await;
    let key = format!("lamina_concurrent_executions{{function=\"{arn}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_functions_concurrency_gauge_reads_zero() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "gauge-gone", SLOW_RUNTIME, 128, 10).await;
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:gauge-gone";
    let call = {
        let c = c.clone();
        tokio::spawn(async move {
            c.invoke()
                .function_name("gauge-gone")
                .payload(Blob::new("{}"))
                .send()
                .await
        })
    };
    // Scraped while the invocation runs.
    let mut running = None;
    for _ in 0..40 {
        running = concurrency(&app.endpoint(), arn).await;
        if running == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running, Some(1.0), "the invocation was seen running");
    call.await.unwrap().expect("the invocation succeeds");
    c.delete_function()
        .function_name("gauge-gone")
        .send()
        .await
        .unwrap();
    // Its invocation ends at its runtime's next `/next`, a moment after its answer; then its
    // entry goes, and the gauge must not keep the 1 it showed.
    let mut last = None;
    for _ in 0..60 {
        last = concurrency(&app.endpoint(), arn).await;
        if last == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, Some(0.0));
}
