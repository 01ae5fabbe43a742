//! The Telemetry and Logs APIs, as an extension built with the official `lambda-extension`
//! crate uses them (`examples/rust_telemetry.rs`): it subscribes during INIT, is sent the
//! platform's records and the function's lines at the listener it names
//! (`http://sandbox.localdomain:PORT`, inside the sandbox), and keeps what it is sent in the
//! `/tmp` it shares with the function, which returns it.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use serde_json::{Value, json};

use crate::extensions::extensions_layer;
use crate::helpers::*;
use crate::runtime_clients::example;

/// What the function returns: its request id, and what the extension was sent so far.
const FUNCTION: &str = r#"
def handler(event, context):
    print("hello from the function")
    try:
        with open("/tmp/telemetry") as f:
            records = f.read().splitlines()
    except FileNotFoundError:
        records = []
    return {"request_id": context.aws_request_id, "records": records}
"#;

pub(crate) async fn function(c: &Client, name: &str, api: &str) {
    let binary = std::fs::read(example("rust_telemetry")).unwrap();
    let layer = publish_layer(
        c,
        &format!("{name}-layer"),
        extensions_layer(&[("telemetry-probe", &binary)]),
    )
    .await;
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        .timeout(10)
        .layers(layer)
        .environment(
            Environment::builder()
                .variables("TELEMETRY_API", api)
                .build(),
        )
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", FUNCTION.as_bytes())])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// Invokes `name` until what its extension was sent has a line that `done` accepts (a bounded
/// number of times, each a little later), and returns the first invocation's request id with
/// the lines.
async fn until(c: &Client, name: &str, done: impl Fn(&str, &str) -> bool) -> (String, Vec<String>) {
    let first = invoke_json(c, name, &json!({})).await;
    let id = first["request_id"].as_str().unwrap().to_owned();
    let mut records = Vec::new();
    for _ in 0..40 {
        let out = invoke_json(c, name, &json!({})).await;
        records = serde_json::from_value::<Vec<String>>(out["records"].clone()).unwrap();
        if records.iter().any(|r| done(r, &id)) {
            return (id, records);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the extension was never sent what was awaited: {records:#?}");
}

#[tokio::test]
async fn an_extension_subscribed_to_the_telemetry_api_is_sent_init_invocations_and_lines() {
    let app = spawn_app().await;
    let c = &app.client;
    function(c, "observed", "telemetry").await;
    let (id, lines) = until(c, "observed", |r, id| {
        r.contains("platform.report") && r.contains(id)
    })
    .await;
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| r["type"] == kind)
            .map(|r| &r["record"])
            .collect()
    };
    // INIT's records, those from before the subscription too, in Lambda's order.
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    let at = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    assert!(
        at("platform.initStart") < at("platform.telemetrySubscription"),
        "{kinds:?}"
    );
    assert!(at("platform.telemetrySubscription") < at("platform.initRuntimeDone"));
    assert!(at("platform.initRuntimeDone") < at("platform.extension"));
    assert!(at("platform.extension") < at("platform.initReport"));
    assert!(at("platform.initReport") < at("platform.start"));
    let subscribed = of("platform.telemetrySubscription");
    assert_eq!(subscribed[0]["name"], "telemetry-probe", "{subscribed:?}");
    assert_eq!(
        subscribed[0]["types"],
        json!(["platform", "function", "extension"])
    );
    // The extension's own line, written before it subscribed, is its own, not the function's.
    assert!(
        of("extension")
            .iter()
            .any(|r| r.as_str() == Some("telemetry-probe started")),
        "{records:#?}"
    );
    assert!(
        !of("function")
            .iter()
            .any(|r| r.as_str() == Some("telemetry-probe started")),
        "{records:#?}"
    );
    assert_eq!(
        of("platform.extension")[0]["events"],
        json!(["INVOKE", "SHUTDOWN"])
    );
    // The first invocation: its start, the function's line, the runtime's end and the report.
    let ours = |kind: &str| {
        of(kind)
            .into_iter()
            .find(|r| r["requestId"] == id.as_str())
            .unwrap_or_else(|| panic!("no {kind} of {id} in {records:#?}"))
            .clone()
    };
    assert_eq!(ours("platform.start")["version"], "$LATEST");
    assert!(
        of("function")
            .iter()
            .any(|r| r.as_str() == Some("hello from the function")),
        "{records:#?}"
    );
    let done = ours("platform.runtimeDone");
    assert_eq!(done["status"], "success", "{done}");
    let report = ours("platform.report");
    assert_eq!(report["status"], "success", "{report}");
    assert_eq!(report["metrics"]["memorySizeMB"], 128);
    assert!(
        report["metrics"]["initDurationMs"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["metrics"]["billedDurationMs"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn an_extension_subscribed_to_the_logs_api_is_sent_its_records() {
    let app = spawn_app().await;
    let c = &app.client;
    function(c, "logged", "logs").await;
    // The crate's own rendering of what it parsed, as the Logs API's types.
    let (id, lines) = until(c, "logged", |r, id| {
        r.starts_with("PlatformReport") && r.contains(id)
    })
    .await;
    let has = |what: &str| lines.iter().any(|l| l.starts_with(what) && l.contains(&id));
    assert!(has("PlatformStart"), "{lines:#?}");
    assert!(has("PlatformRuntimeDone"), "{lines:#?}");
    assert!(has("PlatformEnd"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PlatformLogsSubscription") && l.contains("telemetry-probe")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "Function(\"hello from the function\")"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "Extension(\"telemetry-probe started\")"),
        "{lines:#?}"
    );
}
