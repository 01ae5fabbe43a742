//! Response streaming with clients we did not write: a function built with `lambda_runtime`'s
//! `StreamResponse` (`examples/stream_echo.rs`), read with `aws-sdk-lambda`'s and boto3's
//! `InvokeWithResponseStream`, with a buffered Invoke, and through a `RESPONSE_STREAM` function
//! URL with reqwest. Each checks that the first bytes arrive while the function still runs (it
//! pauses 1.5 s between its two chunks).

use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    FunctionCode, FunctionUrlAuthType, InvokeMode, InvokeWithResponseStreamCompleteEvent,
    InvokeWithResponseStreamResponseEvent, LogType, Runtime,
};
use base64::Engine as _;

use crate::helpers::*;

/// Less than the function's pause: the first bytes came this long before the end at least.
const EARLY: Duration = Duration::from_millis(1000);

async fn deploy_streamer(c: &Client, name: &str) {
    let bootstrap = std::fs::read(crate::runtime_clients::example("stream_echo")).unwrap();
    let zip = crate::runtime_clients::package(&[("bootstrap", bootstrap)]);
    c.create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role(ROLE)
        .timeout(10)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// What `lambda_runtime` streams: its prelude, eight NUL bytes, then the body.
fn streamed_body(bytes: &[u8]) -> (serde_json::Value, String) {
    let at = bytes
        .windows(8)
        .position(|w| w == [0; 8])
        .unwrap_or_else(|| panic!("no prelude in {:?}", String::from_utf8_lossy(bytes)));
    let prelude = serde_json::from_slice(&bytes[..at]).unwrap();
    (
        prelude,
        String::from_utf8_lossy(&bytes[at + 8..]).into_owned(),
    )
}

/// The bytes of a stream's `PayloadChunk` events, when the first came, and its
/// `InvokeComplete`.
async fn read_events(
    out: &mut aws_sdk_lambda::operation::invoke_with_response_stream::InvokeWithResponseStreamOutput,
) -> (
    Vec<u8>,
    Option<Instant>,
    InvokeWithResponseStreamCompleteEvent,
) {
    let mut bytes = Vec::new();
    let mut first_at = None;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), out.event_stream.recv())
            .await
            .expect("the stream goes on")
            .expect("the stream reads")
            .expect("the stream ends with InvokeComplete");
        match event {
            InvokeWithResponseStreamResponseEvent::PayloadChunk(p) => {
                first_at.get_or_insert_with(Instant::now);
                bytes.extend_from_slice(p.payload().unwrap().as_ref());
            }
            InvokeWithResponseStreamResponseEvent::InvokeComplete(done) => {
                return (bytes, first_at, done);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_reaches_the_sdk_boto3_and_invoke_as_it_comes() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy_streamer(c, "streamer").await;
    // aws-sdk-lambda: PayloadChunk events, the first long before InvokeComplete.
    let mut out = c
        .invoke_with_response_stream()
        .function_name("streamer")
        .payload(Blob::new("{}"))
        .log_type(LogType::Tail)
        .send()
        .await
        .unwrap_or_else(|e| panic!("InvokeWithResponseStream: {}", describe(&e)));
    assert_eq!(out.executed_version(), Some("$LATEST"));
    let (bytes, first_at, complete) = read_events(&mut out).await;
    let early = first_at.expect("chunks came").elapsed();
    assert!(
        early >= EARLY,
        "the first bytes came only {early:?} before the end"
    );
    assert_eq!(complete.error_code(), None, "{complete:?}");
    let log = base64::engine::general_purpose::STANDARD
        .decode(complete.log_result().expect("the log tail was asked for"))
        .unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("REPORT RequestId"), "{log}");
    let (prelude, body) = streamed_body(&bytes);
    assert_eq!(prelude["statusCode"], 201, "{prelude}");
    assert_eq!(body, "first:none\nsecond\n");

    // A buffered Invoke of the same function gets the whole stream at once.
    let whole = c
        .invoke()
        .function_name("streamer")
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("Invoke: {}", describe(&e)));
    assert_eq!(whole.function_error(), None);
    let (prelude, body) = streamed_body(whole.payload().unwrap().as_ref());
    assert_eq!(prelude["statusCode"], 201);
    assert_eq!(body, "first:none\nsecond\n");

    // boto3, through the AWS event-stream parser of botocore; and a function that answers
    // buffered, whose response comes as one chunk, and one that fails.
    crate::http_urls::deploy_http(c, "buffered", "bare").await;
    crate::http_urls::deploy_http(c, "failing", "fail").await;
    let seen = crate::logs_api::boto3(
        &app.endpoint(),
        ("test", "test"),
        "import time\n\
         lam = boto3.client('lambda', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test', config=cfg)\n\
         def read(name):\n\
         \x20   r = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{}')\n\
         \x20   out = {'version': r['ExecutedVersion'], 'type': r['ResponseStreamContentType'], 'chunks': [], 'complete': None}\n\
         \x20   start = time.monotonic()\n\
         \x20   for e in r['EventStream']:\n\
         \x20       if 'PayloadChunk' in e:\n\
         \x20           out['chunks'].append([time.monotonic() - start, e['PayloadChunk']['Payload'].decode('latin-1')])\n\
         \x20       if 'InvokeComplete' in e:\n\
         \x20           out['complete'] = e['InvokeComplete']\n\
         \x20           out['at'] = time.monotonic() - start\n\
         \x20   return out\n\
         print(json.dumps({'streamer': read('streamer'), 'buffered': read('buffered'), 'failing': read('failing')}))",
    );
    let s = &seen["streamer"];
    assert_eq!(s["version"], "$LATEST");
    assert_eq!(s["type"], "application/vnd.amazon.eventstream");
    let chunks = s["chunks"].as_array().unwrap();
    let joined: String = chunks.iter().map(|c| c[1].as_str().unwrap()).collect();
    assert!(joined.ends_with("first:none\nsecond\n"), "{joined:?}");
    let first = chunks[0][0].as_f64().unwrap();
    let end = s["at"].as_f64().unwrap();
    assert!(end - first >= EARLY.as_secs_f64(), "{s}");
    assert_eq!(s["complete"], serde_json::json!({}), "{s}");
    let b = &seen["buffered"];
    assert_eq!(b["chunks"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["chunks"][0][1], r#"{"hello": "world"}"#);
    // The CLI prints the stream as it comes, the log to stderr, and fails with the function.
    let lamina = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(args)
            .args(["--endpoint", &app.endpoint()])
            .env_remove("AWS_ACCESS_KEY_ID")
            .output()
            .expect("the lamina binary runs")
    };
    let out = lamina(&["invoke", "streamer", "--stream", "--log"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(streamed_body(&out.stdout).1, "first:none\nsecond\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("REPORT RequestId"));
    let out = lamina(&["invoke", "buffered", "--stream", "--json"]);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["Payload"], r#"{"hello": "world"}"#, "{printed}");
    let out = lamina(&["invoke", "failing", "--stream"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the function failed (RuntimeError): boom"),
        "{said}"
    );
    let f = &seen["failing"];
    assert_eq!(f["chunks"], serde_json::json!([]), "{f}");
    assert_eq!(f["complete"]["ErrorCode"], "RuntimeError", "{f}");
    assert!(
        f["complete"]["ErrorDetails"]
            .as_str()
            .unwrap()
            .contains("boom"),
        "{f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_stream_url_sends_the_prelude_as_status_and_headers_then_the_body_as_it_comes() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy_streamer(c, "streamer").await;
    let url = c
        .create_function_url_config()
        .function_name("streamer")
        .auth_type(FunctionUrlAuthType::None)
        .invoke_mode(InvokeMode::ResponseStream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create URL: {}", describe(&e)));
    assert_eq!(url.invoke_mode(), Some(&InvokeMode::ResponseStream));
    let id = url
        .function_url()
        .trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let mut resp = reqwest::Client::new()
        .get(format!("{}/_aws/lambda-url/{id}/items", app.endpoint()))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-streamed"], "yes");
    let mut body = Vec::new();
    let mut first_at = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        first_at.get_or_insert_with(Instant::now);
        body.extend_from_slice(&chunk);
    }
    let early = first_at.expect("the body came").elapsed();
    assert!(
        early >= EARLY,
        "the first bytes came only {early:?} before the end ({:?} in all)",
        started.elapsed()
    );
    assert_eq!(String::from_utf8_lossy(&body), "first:/items\nsecond\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_streamed_beyond_six_megabytes_are_billed() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy_streamer(c, "streamer").await;
    let sent: u64 = 7 << 20;
    let mut out = c
        .invoke_with_response_stream()
        .function_name("streamer")
        .payload(Blob::new(format!(r#"{{"bytes":{sent}}}"#)))
        .send()
        .await
        .unwrap_or_else(|e| panic!("InvokeWithResponseStream: {}", describe(&e)));
    let (bytes, _, complete) = read_events(&mut out).await;
    assert_eq!(complete.error_code(), None, "{complete:?}");
    let bytes = bytes.len() as u64;
    // The prelude, its delimiter, and the body.
    assert!(bytes > sent, "{bytes}");
    // Usage is written in batches.
    let mut bill = serde_json::Value::Null;
    for _ in 0..200 {
        bill = reqwest::get(format!("{}/_lamina/bill?function=streamer", app.endpoint()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if bill["requests"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let beyond = bytes - (6 << 20);
    assert_eq!(bill["streamed_bytes"], beyond, "{bill}");
    assert_eq!(bill["functions"][0]["streamed_bytes"], beyond, "{bill}");
    let line = format!("response streaming beyond 6 MB: {beyond} bytes");
    assert!(
        bill["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["item"] == line.as_str()),
        "{bill}"
    );
}

/// A runtime that streams `first`, then `second` 2 s later, from a background upload, and asks
/// for its next event at once, while its stream is still open.
const EARLY_NEXT_RUNTIME: &[u8] = b"#!/bin/sh\nH=/tmp/headers\nAPI=\"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime\"\nwhile true; do\n  curl -sS -o /dev/null -D $H \"$API/invocation/next\"\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  (echo first; sleep 2; echo second) | curl -sS -o /dev/null -T - -X POST -H 'Lambda-Runtime-Function-Response-Mode: streaming' \"$API/invocation/$ID/response\" &\ndone\n";

/// A runtime cannot end its invocation by asking for the next event while its stream is still
/// open: the invocation holds its concurrency until the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_lasts_as_long_as_its_stream_whatever_its_runtime_asks() {
    let app = spawn_app().await;
    let c = &app.client;
    create_script_function(c, "early", EARLY_NEXT_RUNTIME, 128, 10).await;
    c.put_function_concurrency()
        .function_name("early")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    let mut out = c
        .invoke_with_response_stream()
        .function_name("early")
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("InvokeWithResponseStream: {}", describe(&e)));
    let first = tokio::time::timeout(Duration::from_secs(20), out.event_stream.recv())
        .await
        .expect("the first chunk comes")
        .unwrap()
        .unwrap();
    let InvokeWithResponseStreamResponseEvent::PayloadChunk(p) = first else {
        panic!("{first:?}");
    };
    assert_eq!(p.payload().unwrap().as_ref(), b"first\n");
    // The runtime has asked for its next event, but its stream is open: the one concurrency
    // the function has is still this invocation's.
    let second = c
        .invoke()
        .function_name("early")
        .payload(Blob::new("{}"))
        .send()
        .await;
    let e = second.expect_err("throttled while the stream is open");
    assert!(describe(&e).contains("TooManyRequests"), "{}", describe(&e));
    let (rest, _, complete) = read_events(&mut out).await;
    assert_eq!(rest, b"second\n");
    assert_eq!(complete.error_code(), None, "{complete:?}");
}
