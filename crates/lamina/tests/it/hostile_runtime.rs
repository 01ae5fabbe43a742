//! Runtimes that push the server: output it must read as fast as a function writes it, and
//! error types it would copy into platform log lines.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::LogType;
use base64::Engine as _;

use crate::helpers::*;

/// A runtime that writes empty lines to its output as fast as it can for 60 s on each event.
const FLOOD_RUNTIME: &[u8] = b"#!/bin/sh\nH=/tmp/headers\nwhile true; do\n  curl -sS -o /dev/null -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\n  timeout 60 tr '\\0' '\\n' < /dev/zero\ndone\n";

/// A function's output is read as fast as it writes it, and beyond its log budget a flood of
/// short lines must not cost the server a worker thread per function: with two flooding (as
/// many as the test server's workers, each with a whole CPU to write with), the server still
/// answers its API and still enforces the
/// functions' timeout (3 s), long before the floods would end (60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_flooding_their_output_leave_the_server_answering() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "flood", FLOOD_RUNTIME, 1769, 3).await;
    let floods: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let call = c
                    .invoke()
                    .function_name("flood")
                    .payload(Blob::new(b"{}".to_vec()))
                    .send();
                tokio::time::timeout(Duration::from_secs(20), call).await
            })
        })
        .collect();
    // Both floods running (their cold starts take a fraction of this).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed = tokio::time::timeout(Duration::from_secs(10), c.list_functions().send()).await;
    let listed = listed.expect("the server answers while its functions flood their output");
    assert_eq!(listed.unwrap().functions().len(), 1);
    for flood in floods {
        let out = flood
            .await
            .unwrap()
            .expect("the flood ends at its function's timeout, not its own")
            .unwrap();
        assert_eq!(out.function_error(), Some("Unhandled"), "timed out");
    }
}

/// A runtime that posts an error whose type is 100,000 bytes long.
const LONG_ERROR_TYPE_RUNTIME: &[u8] = b"#!/bin/sh\nH=/tmp/headers\nT=$(head -c 100000 /dev/zero | tr '\\0' A)\nwhile true; do\n  curl -sS -o /dev/null -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  curl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/error\" -d \"{\\\"errorType\\\": \\\"$T\\\", \\\"errorMessage\\\": \\\"long\\\"}\"\ndone\n";

/// A runtime's error type goes into the REPORT line, which counts against no budget: it is cut
/// to 256 bytes there, while the caller still gets the error body as the runtime posted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtimes_long_error_type_is_cut_in_its_report_line() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "long-type", LONG_ERROR_TYPE_RUNTIME, 128, 10).await;
    let out = c
        .invoke()
        .function_name("long-type")
        .log_type(LogType::Tail)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke: {}", describe(&e)));
    assert_eq!(out.function_error(), Some("Unhandled"));
    let body: serde_json::Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["errorType"].as_str().unwrap().len(), 100_000);
    let log = base64::engine::general_purpose::STANDARD
        .decode(out.log_result().expect("a log tail"))
        .unwrap();
    let log = String::from_utf8(log).unwrap();
    let report = log
        .lines()
        .find(|l| l.starts_with("REPORT RequestId: "))
        .unwrap_or_else(|| panic!("no whole REPORT line in the tail: {log}"));
    assert!(
        report.ends_with(&format!("Error Type: {}\t", "A".repeat(256))),
        "{report}"
    );
}
