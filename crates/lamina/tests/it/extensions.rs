//! External extensions, as on Lambda: programs in a layer's `extensions/`, started beside the
//! runtime in the same sandbox, each told of every invocation and of the environment's end
//! through the Extensions API. The extension is built with the official `lambda-extension`
//! crate (`examples/rust_extension.rs`).

use std::io::Write;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use serde_json::json;

use crate::helpers::*;
use crate::runtime_clients::{deploy, example, package};

/// What the function reports: what the extension left in the `/tmp` they share.
const FUNCTION: &str = r#"
import json, os, time

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    fresh = not os.path.exists("/tmp/function-ran")
    open("/tmp/function-ran", "w").close()
    return {
        "fresh": fresh,
        "registered": json.loads(read("/tmp/extension-registered") or "null"),
        "invokes": (read("/tmp/extension-invokes") or "").split(),
        "request_id": context.aws_request_id,
        "uid": os.getuid(),
    }
"#;

/// A layer with `files` (name, bytes) as executables under `extensions/`.
pub(crate) fn extensions_layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        w.start_file(format!("extensions/{name}"), options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

async fn function(c: &Client, name: &str, layer: String, timeout_s: i32, more: &[(&str, &str)]) {
    let variables = more
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("EXTENSION_WORK_MS".to_owned(), "300".to_owned())]);
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        .timeout(timeout_s)
        .layers(layer)
        .environment(
            Environment::builder()
                .set_variables(Some(variables.into_iter().collect()))
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

/// The error body of an invocation of `name` that fails (an unhandled error, as INIT's are).
async fn failed_invoke(c: &Client, name: &str) -> serde_json::Value {
    let out = c
        .invoke()
        .function_name(name)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap()
}

/// Waits (a bounded while) until `name`'s log has a line that contains `what`.
async fn logged(app: &TestApp, name: &str, what: &str) -> Vec<String> {
    for _ in 0..40 {
        let lines = log_lines(&app.endpoint(), name).await;
        if lines.iter().any(|l| l.contains(what)) {
            return lines;
        }
    }
    panic!(
        "{name}'s log never had {what:?}: {:?}",
        log_lines(&app.endpoint(), name).await
    );
}

#[tokio::test]
async fn an_extension_from_a_layer_sees_every_invocation_before_the_next_and_its_environments_end()
{
    // Idle environments go after a second: the extension's SHUTDOWN comes soon.
    let app = spawn_app_with("keep_alive_s = 1").await;
    let c = &app.client;
    let binary = std::fs::read(example("rust_extension")).unwrap();
    let layer = publish_layer(c, "probe", extensions_layer(&[("probe", &binary)])).await;
    function(c, "watched", layer, 2, &[]).await;

    // The extension registered during INIT, under its file's name, and was told the function's
    // identity; the runtime's own variables are not in its environment, the function's are.
    let first = invoke_json(c, "watched", &json!({})).await;
    let registered = &first["registered"];
    assert_eq!(registered["function"], "watched", "{first}");
    assert_eq!(registered["version"], "$LATEST");
    assert_eq!(registered["handler"], "app.handler");
    assert_eq!(registered["account"], "000000000000");
    assert_eq!(registered["has_handler_variable"], false);
    assert_eq!(registered["has_task_root_variable"], false);
    assert_eq!(registered["function_name_variable"], "watched");
    assert_eq!(registered["work_ms_variable"], "300");
    // It runs as the function's own user.
    assert_eq!(registered["uid"], first["uid"]);
    // It was given the invocation as the runtime was, and works 300 ms on it: not done yet.
    assert_eq!(first["invokes"], json!([]), "{first}");

    // The next invocation waits for the extension to ask for its next event: it sees the
    // first one's work done, whichever invocation it is. Without that wait the second
    // would begin while the extension still works on the first.
    let second = invoke_json(c, "watched", &json!({})).await;
    assert_eq!(second["invokes"], json!([first["request_id"]]), "{second}");
    let third = invoke_json(c, "watched", &json!({})).await;
    assert_eq!(
        third["invokes"],
        json!([first["request_id"], second["request_id"]]),
        "{third}"
    );

    // Idle past the keep-alive, the environment goes: the extension is told why first.
    let lines = logged(&app, "watched", "EXTENSION SHUTDOWN").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("EXTENSION SHUTDOWN spindown")),
        "{lines:?}"
    );
    let invoked = format!(
        "EXTENSION INVOKE {}",
        second["request_id"].as_str().unwrap()
    );
    assert!(lines.iter().any(|l| l.contains(&invoked)), "{lines:?}");

    // An invocation that times out ends its environment: the extension hears that reason.
    let out = c
        .invoke()
        .function_name("watched")
        .payload(Blob::new(br#"{"sleep": 5}"#.to_vec()))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    logged(&app, "watched", "EXTENSION SHUTDOWN timeout").await;
}

#[tokio::test]
async fn an_extension_that_cannot_be_executed_fails_the_invocation_with_a_launch_error() {
    let app = spawn_app().await;
    let c = &app.client;
    let layer = publish_layer(
        c,
        "broken",
        extensions_layer(&[("broken", b"not a program\n")]),
    )
    .await;
    function(c, "fails", layer, 3, &[]).await;
    let body = failed_invoke(c, "fails").await;
    assert_eq!(body["errorType"], "Extension.LaunchError", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("/opt/extensions/broken") && message.contains("Exec format error"),
        "{message}"
    );
}

#[tokio::test]
async fn an_extension_that_exits_during_init_fails_it_with_extension_crash() {
    let app = spawn_app().await;
    let c = &app.client;
    // It starts, but exits before it has registered: INIT fails at once, not at its limit.
    let layer = publish_layer(
        c,
        "crashy",
        extensions_layer(&[("crashy", b"#!/bin/sh\nexit 3\n")]),
    )
    .await;
    function(c, "crashes", layer, 3, &[]).await;
    let body = failed_invoke(c, "crashes").await;
    assert_eq!(body["errorType"], "Extension.Crash", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("Extension crashy exited"), "{message}");
}

#[tokio::test]
async fn an_extension_that_exits_during_an_invocation_ends_its_environment_at_once() {
    let app = spawn_app().await;
    let c = &app.client;
    let binary = std::fs::read(example("rust_extension")).unwrap();
    let layer = publish_layer(c, "fragile", extensions_layer(&[("fragile", &binary)])).await;
    let crash = [("EXTENSION_CRASH_ON_INVOKE", "1")];
    function(c, "fragile", layer, 30, &crash).await;
    // One environment at most: the second invocation gets one only once the first has ended.
    // Had the first one waited for its extension (until the function's 30 s timeout), the second
    // would be throttled after the 1 s a caller waits for an environment finishing (the
    // client does not retry).
    c.put_function_concurrency()
        .function_name("fragile")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();

    // The function answers; its extension exits on the invocation it was given. The
    // invocation still ends when the runtime asks for its next event, rather than waiting out
    // the function's 30 s for the extension's, and its environment is not used again.
    let first = invoke_json(c, "fragile", &json!({})).await;
    assert_eq!(first["fresh"], true, "{first}");
    let second = invoke_json(c, "fragile", &json!({})).await;
    assert_eq!(second["fresh"], true, "a new environment: {second}");
    assert_ne!(second["request_id"], first["request_id"]);
}

#[tokio::test]
async fn a_runtime_that_exits_during_init_is_its_own_error_not_its_extensions() {
    let app = spawn_app().await;
    let c = &app.client;
    let binary = std::fs::read(example("rust_extension")).unwrap();
    let layer = publish_layer(c, "bystander", extensions_layer(&[("bystander", &binary)])).await;
    // The runtime exits while it imports the handler: every process of the sandbox goes with
    // it, the extension's too, but the error is the runtime's.
    let app_py = "import os\nos._exit(2)\n";
    c.create_function()
        .function_name("exits")
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        .timeout(5)
        .layers(layer)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", app_py.as_bytes())])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let body = failed_invoke(c, "exits").await;
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
}

#[tokio::test]
async fn a_runtime_that_asks_for_a_graceful_shutdown_gets_sigterm_as_its_environment_ends() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED: the runtime's SIGTERM goes through a PID 1 handed over to the server, \
             which needs root (cgroups and the fork server)"
        );
        return;
    }
    // Idle environments go after a second.
    let app = spawn_app_with("keep_alive_s = 1").await;
    let c = &app.client;
    // `lambda_runtime`'s graceful shutdown: an internal extension registered for no event, and a
    // handler for SIGTERM that runs the function's hook.
    let bootstrap = std::fs::read(example("rust_graceful")).unwrap();
    let zip = package(&[("bootstrap", bootstrap)]);
    deploy(c, "graceful", "provided.al2023", "bootstrap", zip).await;
    let echoed = invoke_json(c, "graceful", &json!({"n": 1})).await;
    assert_eq!(echoed, json!({"n": 1}));
    let lines = logged(&app, "graceful", "GRACEFUL SHUTDOWN HOOK").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[runtime] SIGTERM received")),
        "{lines:?}"
    );
}
