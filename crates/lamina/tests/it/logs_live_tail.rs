//! CloudWatch Logs' `StartLiveTail` through boto3 (which needs the operation's `stream-` host
//! prefix turned off to reach a plain address) and as raw AWS event-stream frames: new matching
//! lines arrive in `sessionUpdate`s, and a session ends when the server shuts down.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::logs_api::{boto3, deploy, invoke, wait_for_reports};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_live_tail_streams_new_matching_lines() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy(&app.client, "tailed").await;
    // Lines from before the session are not sent.
    invoke(&app.client, "tailed", json!(["tail me 0 (before)"])).await;
    wait_for_reports(&ep, "tailed", 1).await;
    let out = boto3(
        &ep,
        ("test", "test"),
        r#"
import time
# The operation's host prefix ('stream-') would name another host.
tcfg = botocore.config.Config(connect_timeout=5, read_timeout=20, retries={'total_max_attempts': 1}, inject_host_prefix=False)
tail = boto3.client('logs', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test', config=tcfg)
lam = boto3.client('lambda', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test', config=cfg)
arn = 'arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/tailed'
r = tail.start_live_tail(logGroupIdentifiers=[arn], logEventFilterPattern='tail')
stream = r['responseStream']
events = iter(stream)
start = next(events)
lam.invoke(FunctionName='tailed', Payload=json.dumps({'lines': ['tail me 1', 'skip me', 'tail me 2']}))
got, updates, deadline = [], 0, time.time() + 20
for ev in events:
    if 'sessionUpdate' in ev:
        updates += 1
        got += ev['sessionUpdate']['sessionResults']
    if len(got) >= 2 or time.time() > deadline:
        break
# 1.6 MB of lines in one invocation: more than one update may carry, so they come in several,
# all of them.
lam.invoke(FunctionName='tailed', Payload=json.dumps({'lines': ['tail big %d ' % i + 'x' * 200000 for i in range(8)]}))
big, big_updates, deadline = [], 0, time.time() + 20
for ev in events:
    if 'sessionUpdate' in ev:
        lines = [e['message'][:12] for e in ev['sessionUpdate']['sessionResults']]
        big_updates += 1 if lines else 0
        big += lines
    if len(big) >= 8 or time.time() > deadline:
        break
stream.close()
missing = err(lambda: tail.start_live_tail(logGroupIdentifiers=['arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/none']))
print(json.dumps({'start': start, 'got': got, 'updates': updates, 'missing': missing, 'big': big, 'big_updates': big_updates}))
"#,
    );
    let start = &out["start"]["sessionStart"];
    assert_eq!(
        start["logGroupIdentifiers"],
        json!(["arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/tailed"]),
        "{out}"
    );
    assert_eq!(start["logEventFilterPattern"], "tail");
    assert!(start["sessionId"].as_str().is_some_and(|s| !s.is_empty()));
    let got = out["got"].as_array().unwrap();
    let messages: Vec<&str> = got.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["tail me 1", "tail me 2"], "{out}");
    for e in got {
        assert!(e["timestamp"].as_i64().is_some() && e["ingestionTime"].as_i64().is_some());
        assert!(e["logStreamName"].as_str().unwrap().contains("[$LATEST]"));
        assert_eq!(e["logGroupIdentifier"], start["logGroupIdentifiers"][0]);
    }
    assert_eq!(out["missing"][0], "ResourceNotFoundException");
    let big: Vec<String> = (0..8).map(|i| format!("tail big {i} x")).collect();
    assert_eq!(out["big"], json!(big), "every large line, once, in order");
    assert!(
        out["big_updates"].as_i64().unwrap() >= 2,
        "{}",
        out["big_updates"]
    );
}

/// One AWS event-stream message: its string headers and its payload.
type Message = (Vec<(String, String)>, Vec<u8>);

/// The messages of an AWS event stream.
fn frames(mut body: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while body.len() >= 16 {
        let total = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
        let (message, rest) = body.split_at(total);
        let mut h = &message[12..12 + headers_len];
        let mut headers = Vec::new();
        while !h.is_empty() {
            let n = h[0] as usize;
            let name = String::from_utf8(h[1..1 + n].to_vec()).unwrap();
            assert_eq!(h[1 + n], 7, "string headers only");
            let len = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
            let value = String::from_utf8(h[4 + n..4 + n + len].to_vec()).unwrap();
            headers.push((name, value));
            h = &h[4 + n + len..];
        }
        out.push((headers, message[12 + headers_len..total - 4].to_vec()));
        body = rest;
    }
    assert!(body.is_empty(), "a partial message at the end");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_tail_ends_when_the_server_shuts_down() {
    let app = spawn_app().await;
    deploy(&app.client, "watched").await;
    let resp = reqwest::Client::new()
        .post(app.endpoint())
        .header("x-amz-target", "Logs_20140328.StartLiveTail")
        .header("content-type", "application/x-amz-json-1.1")
        .body(json!({ "logGroupIdentifiers": ["/aws/lambda/watched"] }).to_string())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let reader = tokio::spawn(async move { resp.bytes().await });
    // At least one update, then the server stops: the session ends instead of holding it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = Instant::now();
    tokio::task::spawn_blocking(move || drop(app))
        .await
        .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    let body = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream ended")
        .unwrap()
        .unwrap();
    let messages = frames(&body);
    let header = |i: usize, name: &str| -> String {
        messages[i]
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(messages.len() >= 4, "{} messages", messages.len());
    assert_eq!(header(0, ":event-type"), "initial-response");
    assert_eq!(messages[0].1, b"{}");
    assert_eq!(header(1, ":event-type"), "sessionStart");
    assert_eq!(header(2, ":event-type"), "sessionUpdate");
    let update: Value = serde_json::from_slice(&messages[2].1).unwrap();
    assert_eq!(
        update,
        json!({ "sessionMetadata": { "sampled": false }, "sessionResults": [] })
    );
    let last = messages.len() - 1;
    assert_eq!(header(last, ":message-type"), "exception");
    assert_eq!(header(last, ":exception-type"), "SessionStreamingException");
}

/// A line is stored as it is printed, not when the invocation ends: Python's `print` and
/// Node.js's `console.log` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_a_running_invocation_are_visible() {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{FunctionCode, Runtime};

    const PYTHON: &str = "import time\ndef handler(event, context):\n    print('started')\n    time.sleep(3)\n    print('finished')\n    return 1\n";
    const NODE: &str = "exports.handler = async () => {\n  console.log('started');\n  await new Promise((r) => setTimeout(r, 3000));\n  console.log('finished');\n  return 1;\n};\n";
    let app = spawn_app().await;
    let ep = app.endpoint();
    for (name, runtime, handler, file, code) in [
        ("slow-py", host_python(), "app.handler", "app.py", PYTHON),
        (
            "slow-node",
            crate::json_logs::node_runtime(),
            "index.handler",
            "index.js",
            NODE,
        ),
    ] {
        app.client
            .create_function()
            .function_name(name)
            .runtime(Runtime::from(runtime.as_str()))
            .handler(handler)
            .role(ROLE)
            .timeout(20)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip_of(&[(file, code.as_bytes())])))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
        let client = app.client.clone();
        let running = tokio::spawn(async move {
            client
                .invoke()
                .function_name(name)
                .payload(Blob::new(b"{}".to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| describe(&e))
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let seen = loop {
            let lines = log_lines(&ep, name).await;
            if lines.iter().any(|l| l.trim_end().ends_with("started")) || Instant::now() > deadline
            {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            seen.iter().any(|l| l.trim_end().ends_with("started")),
            "{name}: the first line was not stored while the invocation ran: {seen:?}"
        );
        assert!(
            !running.is_finished() && !seen.iter().any(|l| l.trim_end().ends_with("finished")),
            "{name}: the invocation had ended: {seen:?}"
        );
        running.await.unwrap().unwrap();
        // Stored within the writer's batching interval of the invocation's end.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let all = log_lines(&ep, name).await;
            if all.iter().any(|l| l.trim_end().ends_with("finished")) {
                break;
            }
            assert!(Instant::now() < deadline, "{all:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_at_most_fifteen_sessions_and_gets_one_back_when_a_client_goes() {
    let app = spawn_app().await;
    deploy(&app.client, "watched").await;
    let http = reqwest::Client::new();
    let start = || {
        http.post(app.endpoint())
            .header("x-amz-target", "Logs_20140328.StartLiveTail")
            .header("content-type", "application/x-amz-json-1.1")
            .body(json!({ "logGroupIdentifiers": ["/aws/lambda/watched"] }).to_string())
            .timeout(Duration::from_secs(60))
            .send()
    };
    let mut open = Vec::new();
    for _ in 0..15 {
        let resp = start().await.unwrap();
        assert_eq!(resp.status(), 200);
        open.push(resp);
    }
    let refused = start().await.unwrap();
    assert_eq!(refused.status(), 400);
    let body = refused.text().await.unwrap();
    assert!(body.contains("LimitExceededException"), "{body}");
    // A client that goes gives its session back (once the server next writes to it).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = start().await.unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session was never given back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
