//! Response streaming from Node.js handlers written for Lambda (`awslambda.streamifyResponse`,
//! `awslambda.HttpResponseStream.from`, `stream.pipeline`), read through a `RESPONSE_STREAM`
//! function URL (reqwest, on the URL's own host name) and boto3's
//! `invoke_with_response_stream`: the bytes arrive as the handler writes them, and a handler
//! that fails after its first bytes ends the stream with its error's type.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, FunctionUrlAuthType, InvokeMode, Runtime};
use serde_json::Value;

use crate::helpers::*;

/// Three handlers: an HTTP response in two chunks 1.5 s apart, a pipeline, and one that fails
/// after its first chunk.
const HANDLERS: &[u8] = br#"
const { setTimeout: sleep } = require('node:timers/promises');
const { pipeline } = require('node:stream/promises');
const { Readable } = require('node:stream');

exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { 'content-type': 'text/plain', 'x-streamed': 'yes' },
  });
  stream.write('first chunk\n');
  await sleep(1500);
  stream.write('second chunk\n');
  stream.end();
});

exports.piped = awslambda.streamifyResponse(async (event, responseStream) => {
  await pipeline(Readable.from(['a', 'b', JSON.stringify(event)]), responseStream);
});

exports.failing = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('partial');
  await sleep(100);
  throw new TypeError('broke mid-stream');
});
"#;

/// The body a function URL answers with, after the prelude.
const BODY: &str = "first chunk\nsecond chunk\n";

/// The `nodejsN.x` runtime of the host's node.
fn node_runtime() -> Runtime {
    let node = ["/usr/bin/node", "/usr/local/bin/node"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs node in /usr/bin or /usr/local/bin");
    let out = Command::new(node).arg("--version").output().unwrap();
    let version = String::from_utf8(out.stdout).unwrap();
    let major = version.trim().trim_start_matches('v').split('.').next();
    Runtime::from(format!("nodejs{}.x", major.unwrap()).as_str())
}

/// Calls each of `names` with boto3's `invoke_with_response_stream`: per function, its status,
/// its `PayloadChunk` bytes joined (latin-1), its `InvokeComplete`, and how long before that
/// end the first chunk arrived.
fn boto3_streams(endpoint: &str, names: &[&str]) -> Value {
    let program = "import boto3, json, sys, time, botocore.config\n\
        cfg = botocore.config.Config(connect_timeout=5, read_timeout=30, retries={'total_max_attempts': 1})\n\
        c = boto3.client('lambda', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test', config=cfg)\n\
        out = {}\n\
        for name in sys.argv[2:]:\n\
        \x20   r = c.invoke_with_response_stream(FunctionName=name, Payload=b'{\"n\":1}')\n\
        \x20   chunks, first, done = [], None, None\n\
        \x20   for ev in r['EventStream']:\n\
        \x20       if 'PayloadChunk' in ev:\n\
        \x20           chunks.append(ev['PayloadChunk']['Payload'])\n\
        \x20           first = first or time.monotonic()\n\
        \x20       if 'InvokeComplete' in ev:\n\
        \x20           done = ev['InvokeComplete']\n\
        \x20   lead = time.monotonic() - first if first else None\n\
        \x20   out[name] = {'status': r['StatusCode'], 'payload': b''.join(chunks).decode('latin-1'), 'complete': done, 'lead': lead}\n\
        print(json.dumps(out))\n";
    let out = Command::new(python_venv().join("bin/python"))
        .args(["-c", program, endpoint])
        .args(names)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_streaming_handlers_written_for_lambda_stream_their_bytes() {
    let runtime = node_runtime();
    let app = spawn_app().await;
    let c = &app.client;
    let zip = zip_of(&[("index.js", HANDLERS)]);
    for (name, handler) in [
        ("streamer", "index.handler"),
        ("piped", "index.piped"),
        ("failing", "index.failing"),
    ] {
        c.create_function()
            .function_name(name)
            .runtime(runtime.clone())
            .handler(handler)
            .role(ROLE)
            .timeout(20)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip.clone()))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
    }

    // A public function URL that streams.
    let url = c
        .create_function_url_config()
        .function_name("streamer")
        .auth_type(FunctionUrlAuthType::None)
        .invoke_mode(InvokeMode::ResponseStream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("url: {}", describe(&e)))
        .function_url;
    c.add_permission()
        .function_name("streamer")
        .statement_id("url")
        .action("lambda:InvokeFunctionUrl")
        .principal("*")
        .function_url_auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap();
    c.add_permission()
        .function_name("streamer")
        .statement_id("url-invoke")
        .action("lambda:InvokeFunction")
        .principal("*")
        .invoked_via_function_url(true)
        .send()
        .await
        .unwrap();

    // The URL's host name (`<id>.lambda-url.us-east-1.localhost`) goes to the server.
    let host = url
        .trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::builder()
        .resolve(&host, app.addr)
        .build()
        .unwrap();
    let read = async {
        let mut resp = http.get(&url).send().await.unwrap();
        let mut body = Vec::new();
        let mut first = None;
        while let Some(bytes) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&bytes);
            if first.is_none() && body.starts_with(b"first chunk\n") {
                first = Some(Instant::now());
            }
        }
        (
            resp.status(),
            resp.headers().clone(),
            body,
            first,
            Instant::now(),
        )
    };
    let (status, headers, body, first, end) = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the function URL answers within 30 s");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-streamed"], "yes");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(String::from_utf8_lossy(&body), BODY);
    let first = first.expect("the first chunk arrived on its own");
    assert!(
        end - first >= Duration::from_secs(1),
        "the first chunk came only {:?} before the end: the response was not streamed",
        end - first
    );

    // InvokeWithResponseStream: the raw bytes (an HTTP stream's prelude included), as they come.
    let seen = boto3_streams(&app.endpoint(), &["streamer", "piped", "failing"]);
    let s = &seen["streamer"];
    assert_eq!(s["status"], 200, "{seen}");
    let prelude =
        r#"{"statusCode":201,"headers":{"content-type":"text/plain","x-streamed":"yes"}}"#;
    assert_eq!(s["payload"], format!("{prelude}{}{BODY}", "\0".repeat(8)));
    assert_eq!(s["complete"].get("ErrorCode"), None, "{seen}");
    assert!(s["lead"].as_f64().unwrap() >= 1.0, "not streamed: {seen}");

    let p = &seen["piped"];
    assert_eq!(p["payload"], r#"ab{"n":1}"#, "{seen}");
    assert_eq!(p["complete"].get("ErrorCode"), None, "{seen}");

    // An error after the first bytes: those bytes, then the error's type at the end.
    let f = &seen["failing"];
    assert_eq!(f["payload"], "partial", "{seen}");
    assert_eq!(f["complete"]["ErrorCode"], "TypeError", "{seen}");
    assert!(
        f["complete"]["ErrorDetails"]
            .as_str()
            .is_some_and(|d| d.contains("broke mid-stream")),
        "{seen}"
    );
    // Counted as an error, though its caller had the stream as a success.
    for (function, errors) in [("failing", 1.0), ("piped", 0.0)] {
        let points = history_of(&app.endpoint(), function).await;
        let sum = |f: &str| -> f64 { points.iter().filter_map(|p| p[f].as_f64()).sum() };
        assert_eq!(sum("errors"), errors, "{function}: {points:?}");
    }
}

/// The metric history's points of `function` for the last hour, once it shows its invocation
/// (the history is flushed every few seconds).
async fn history_of(endpoint: &str, function: &str) -> Vec<serde_json::Value> {
    let url = format!("{endpoint}/_lamina/metrics/history/{function}?period=1h");
    for _ in 0..100 {
        let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        let points = body["points"].as_array().cloned().unwrap_or_default();
        if points
            .iter()
            .filter_map(|p| p["invocations"].as_f64())
            .sum::<f64>()
            >= 1.0
        {
            return points;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the history of {function} never showed its invocation");
}
