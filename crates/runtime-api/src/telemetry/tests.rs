use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use super::validate::parse;
use super::*;

fn body(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn request(port: u16, types: &[&str], timeout_ms: u64) -> Vec<u8> {
    body(serde_json::json!({
        "schemaVersion": "2022-12-13",
        "types": types,
        "buffering": { "maxItems": 1000, "maxBytes": 262144, "timeoutMs": timeout_ms },
        "destination": { "protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{port}/in") },
    }))
}

#[test]
fn a_subscription_is_checked_as_lambda_checks_it() {
    let ok = parse(&request(8080, &["platform", "function"], 25), false).unwrap();
    assert_eq!(ok.types, records::PLATFORM | records::FUNCTION);
    assert_eq!(ok.buffering.timeout, Duration::from_millis(25));
    assert_eq!(
        ok.destination,
        Destination::Http {
            port: 8080,
            path: "/in".into(),
            host: "sandbox.localdomain:8080".into()
        }
    );
    // Defaults where buffering is left out; the Logs API's schema without runtimeDone.
    let logs = parse(
        &body(serde_json::json!({
            "types": ["function"],
            "destination": { "protocol": "HTTP", "URI": "http://sandbox:9002" },
        })),
        true,
    )
    .unwrap();
    assert_eq!(
        logs.api,
        Api::Logs {
            runtime_done: false
        }
    );
    assert_eq!(logs.buffering.max_items, 10_000);
    assert_eq!(logs.buffering.max_bytes, 262_144);
    assert_eq!(logs.buffering.timeout, Duration::from_millis(1000));

    let refused = |v: Value| parse(&body(v), false).unwrap_err();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(&request(8080, &["platform"], 100)).unwrap();
        f(&mut v);
        refused(v)
    };
    assert!(with(&|v| v["types"] = serde_json::json!([])).contains("types should not be empty"));
    assert!(with(&|v| v["types"] = serde_json::json!(["disk"])).contains("\"disk\""));
    assert!(with(&|v| v["buffering"]["timeoutMs"] = 24.into()).contains("timeoutMs"));
    assert!(with(&|v| v["buffering"]["maxBytes"] = 2_000_000.into()).contains("maxBytes"));
    assert!(with(&|v| v["schemaVersion"] = "2021-01-01".into()).contains("schemaVersion"));
    assert!(
        with(&|v| v["destination"]["URI"] = "http://example.com:8080".into())
            .contains("host must be sandbox.localdomain")
    );
    assert!(
        with(&|v| v["destination"]["URI"] = "http://sandbox.localdomain".into())
            .contains("port is not provided")
    );
    assert!(
        with(&|v| v["destination"]["URI"] = "http://sandbox.localdomain:9001".into())
            .contains("port 9001")
    );
    assert!(with(&|v| v["destination"]["protocol"] = "UDP".into()).contains("protocol"));
    assert!(refused(Value::from("x")).contains("failed to parse JSON"));
}

#[test]
fn records_match_what_the_rust_extension_client_reads() {
    let report = crate::platform::Report {
        request_id: "r-1",
        duration_ms: 2.5,
        billed_ms: 3,
        memory_mb: 128,
        max_memory_mb: 20,
        init_ms: Some(1.25),
        status: None,
        error_type: None,
    };
    let t = Event::Report(&report).render(Api::Telemetry, "2026-12-07T00:00:00.000Z");
    let r: Value = serde_json::from_slice(&t[0]).unwrap();
    assert_eq!(r["type"], "platform.report");
    assert_eq!(r["record"]["status"], "success");
    // Integers where the client reads integers.
    assert!(r["record"]["metrics"]["billedDurationMs"].is_u64());
    assert!(r["record"]["metrics"]["memorySizeMB"].is_u64());
    assert_eq!(r["record"]["metrics"]["initDurationMs"], 1.25);
    // The Logs API ends an invocation with two records.
    let l = Event::Report(&report).render(
        Api::Logs {
            runtime_done: false,
        },
        "t",
    );
    let kinds: Vec<Value> = l
        .iter()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap()["type"].clone())
        .collect();
    assert_eq!(kinds, ["platform.end", "platform.report"]);
    // A JSON line is an object in JSON logs, a string otherwise.
    let line = |json| {
        let b = &Event::Line {
            text: r#"{"message":"hi"}"#,
            json,
            extension: false,
        }
        .render(Api::Telemetry, "t")[0];
        serde_json::from_slice::<Value>(b).unwrap()["record"].clone()
    };
    assert!(line(true).is_object());
    assert!(line(false).is_string());
    // The Logs API's lines are strings whatever the format: its readers take nothing else.
    let logs = &Event::Line {
        text: r#"{"message":"hi"}"#,
        json: true,
        extension: true,
    }
    .render(Api::Logs { runtime_done: true }, "t")[0];
    let logs: Value = serde_json::from_slice(logs).unwrap();
    assert_eq!(logs["type"], "extension");
    assert!(logs["record"].is_string());
    assert!(
        Event::InitStart
            .render(Api::Logs { runtime_done: true }, "t")
            .is_empty()
    );
}

/// A listener on this host's loopback, in this namespace: the namespace a subscription's
/// connection came from is found and entered exactly as a sandbox's would be.
async fn listener() -> (tokio::net::TcpListener, u16) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Reads one HTTP request's body from `conn`, and answers `code`.
async fn one_post(conn: &mut BufReader<tokio::net::TcpStream>, code: u16) -> (String, Value) {
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
    conn.get_mut().write_all(answer.as_bytes()).await.unwrap();
    (head, serde_json::from_slice(&body).unwrap())
}

/// A listener, and telemetry whose INIT has begun (keeping its records); `None` without root.
async fn begun() -> Option<(tokio::net::TcpListener, u16, Arc<Telemetry>)> {
    if !root() {
        return None;
    }
    let (l, port) = listener().await;
    let t = Arc::new(Telemetry::new());
    t.begin_init(true);
    Some((l, port, t))
}

/// The one connection `l` is sent, within a bounded wait.
async fn accepted(l: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    let (conn, _) = tokio::time::timeout(Duration::from_secs(5), l.accept())
        .await
        .unwrap()
        .unwrap();
    conn
}

/// The types of a batch's records, in order.
fn types_of(batch: &Value) -> Vec<&str> {
    batch
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect()
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("telemetry delivery enters a network namespace, which needs root: not run");
    }
    root
}

#[tokio::test]
async fn records_go_in_batches_over_one_connection_and_init_is_replayed() {
    let Some((l, port, t)) = begun().await else {
        return;
    };
    t.line("during init", false, false);
    let sub = parse(&request(port, &["platform", "function"], 25), false).unwrap();
    t.subscribe(
        t.namespace(l.as_raw_fd()).await.unwrap(),
        "ext-1",
        "probe",
        sub,
    )
    .unwrap();
    let conn = accepted(&l).await;
    let mut conn = BufReader::new(conn);
    let (head, batch) = one_post(&mut conn, 200).await;
    assert!(head.starts_with("POST /in HTTP/1.1"), "{head}");
    assert!(head.contains("sandbox.localdomain"), "{head}");
    let kinds = types_of(&batch);
    assert_eq!(
        kinds,
        [
            "platform.initStart",
            "function",
            "platform.telemetrySubscription"
        ]
    );
    assert_eq!(batch[1]["record"], "during init");
    t.end_init(|| vec![("probe".into(), vec!["INVOKE"])], 3.0);
    let (_, batch) = one_post(&mut conn, 200).await;
    let kinds = types_of(&batch);
    assert_eq!(
        kinds,
        [
            "platform.initRuntimeDone",
            "platform.extension",
            "platform.initReport"
        ]
    );
    // A refused batch is counted, and said in the next one.
    t.line("refused", false, false);
    t.line("refused too", false, false);
    let _ = one_post(&mut conn, 400).await;
    // A batch that said so and was refused too: the next says all three.
    t.line("refused again", false, false);
    let (_, batch) = one_post(&mut conn, 503).await;
    assert_eq!(batch[0]["record"]["droppedRecords"], 2);
    t.line("after", false, false);
    let (_, batch) = one_post(&mut conn, 200).await;
    assert_eq!(batch[0]["type"], "platform.logsDropped");
    assert_eq!(batch[0]["record"]["droppedRecords"], 3);
    assert_eq!(batch[1]["record"], "after");
    // Subscriptions are closed once INIT has ended.
    let again = parse(&request(port, &["platform"], 25), false).unwrap();
    let e = t
        .subscribe(
            t.namespace(l.as_raw_fd()).await.unwrap(),
            "ext-2",
            "late",
            again,
        )
        .unwrap_err();
    assert_eq!(e.1, "Telemetry.SubscriptionClosed");
    // What is held is released once sent.
    t.flush(Duration::from_secs(1)).await;
    assert_eq!(t.lock().held(), 0);
}

#[tokio::test]
async fn a_subscription_made_again_replaces_the_first_whose_task_takes_nothing_more() {
    let Some((l, port, t)) = begun().await else {
        return;
    };
    let ns = t.namespace(l.as_raw_fd()).await.unwrap();
    let sub = |types: &[&str]| parse(&request(port, types, 30_000), false).unwrap();
    t.subscribe(ns.clone(), "ext-1", "probe", sub(&["platform"]))
        .unwrap();
    let first = t.lock().subs[0].id;
    t.subscribe(ns.clone(), "ext-1", "probe", sub(&["function"]))
        .unwrap();
    assert!(matches!(t.due(first), Due::Gone));
    let s = t.lock();
    assert_eq!(s.subs.len(), 1);
    assert_ne!(s.subs[0].id, first);
    // What the first held went with it: only the second's own records are held.
    let queued: usize = s.subs.iter().map(|x| x.queued + x.in_flight).sum();
    assert_eq!(s.held(), queued);
    drop(s);
    // Through the other API, the same extension is refused.
    let logs = parse(
        &body(serde_json::json!({
            "types": ["function"],
            "destination": { "protocol": "HTTP", "URI": format!("http://sandbox:{port}") },
        })),
        true,
    )
    .unwrap();
    let e = t.subscribe(ns, "ext-1", "probe", logs).unwrap_err();
    assert_eq!(e.1, "Logs.ValidationError");
}

#[tokio::test]
async fn a_tcp_destination_is_sent_a_line_of_json_per_record() {
    let Some((l, port, t)) = begun().await else {
        return;
    };
    let sub = parse(
        &body(serde_json::json!({
            "schemaVersion": "2022-12-13",
            "types": ["function"],
            "buffering": { "timeoutMs": 25 },
            "destination": { "protocol": "TCP", "port": port },
        })),
        false,
    )
    .unwrap();
    t.subscribe(
        t.namespace(l.as_raw_fd()).await.unwrap(),
        "ext-1",
        "probe",
        sub,
    )
    .unwrap();
    t.line("one", false, false);
    t.line("two", false, false);
    let conn = accepted(&l).await;
    let mut lines = BufReader::new(conn).lines();
    let mut got = Vec::new();
    while got.len() < 2 {
        let line = lines.next_line().await.unwrap().unwrap();
        let r: Value = serde_json::from_str(&line).unwrap();
        got.push(r["record"].clone());
    }
    assert_eq!(got, ["one", "two"]);
}

#[tokio::test]
async fn a_listener_that_is_not_there_yet_gets_the_batch_when_it_comes() {
    if !root() {
        return;
    }
    // A port found free, then closed: the first attempts are refused.
    let (l, _) = listener().await;
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = probe.local_addr().unwrap().port();
    drop(probe);
    let t = Arc::new(Telemetry::new());
    t.begin_init(false);
    let sub = parse(&request(free, &["function"], 25), false).unwrap();
    t.subscribe(
        t.namespace(l.as_raw_fd()).await.unwrap(),
        "ext-1",
        "probe",
        sub,
    )
    .unwrap();
    t.line("kept", false, false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = tokio::net::TcpListener::bind(("127.0.0.1", free))
        .await
        .unwrap();
    let conn = accepted(&late).await;
    let (_, batch) = one_post(&mut BufReader::new(conn), 200).await;
    assert_eq!(batch[0]["record"], "kept");
    drop(l);
}

#[tokio::test]
async fn what_a_subscription_holds_is_bounded() {
    // What the environment holds, this subscription's alone.
    let mut held = 0;
    let task = tokio::spawn(std::future::pending::<()>()).abort_handle();
    let req = parse(&request(8080, &["function"], 1000), false).unwrap();
    let mut sub = Sub::new(0, "e", &req, Arc::new(Notify::new()), task);
    let record = Bytes::from(vec![b'x'; 100_000]);
    for _ in 0..10 {
        sub.push(&mut held, std::slice::from_ref(&record));
    }
    // Twice maxBytes: five records of 100 kB are queued, the other five dropped.
    assert_eq!(sub.queue.len(), 5);
    assert_eq!(sub.dropped, (5, 500_000));
    assert_eq!(held, 500_000);
    sub.task.abort();
}
