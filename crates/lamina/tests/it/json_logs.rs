//! `LoggingConfig` on functions: with `LogFormat: JSON` the platform writes `platform.start` and
//! `platform.report` records instead of START/END/REPORT, `SystemLogLevel` filters them, and the
//! Python and Node.js runtime clients write one JSON object per application log call at
//! `ApplicationLogLevel`. `Text` keeps Lambda's text lines. Every line is read back from the
//! invoke's log tail and parsed.

use std::path::Path;
use std::process::Command;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LogType, LoggingConfig, Runtime};
use base64::Engine;
use serde_json::Value;

use crate::helpers::*;
use crate::runtime_clients::package;

// `logging` imported by the handler, after INIT: the runtime client sets it up all the same.
const PYTHON: &str = "def handler(event, context):
    import logging
    log = logging.getLogger('app')
    log.debug('debug line')
    log.info('info line %s', 1)
    log.warning('warn line')
    log.error('error line')
    print('plain print')
    return 'ok'
";

const NODE: &str = "exports.handler = async () => {
  console.debug('debug line');
  console.info('info line %d', 1);
  console.warn('warn line');
  console.error('error line');
  return 'ok';
};
";

pub(crate) fn node_runtime() -> String {
    let node = ["/usr/bin/node", "/usr/local/bin/node"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs node in /usr/bin or /usr/local/bin (apt-get install nodejs)");
    let out = Command::new(node).arg("--version").output().unwrap();
    let v = String::from_utf8(out.stdout).unwrap();
    let major = v.trim().trim_start_matches('v').split('.').next().unwrap();
    format!("nodejs{major}.x")
}

async fn deploy(c: &Client, name: &str, node: bool, logging: LoggingConfig) {
    let (runtime, handler, zip) = if node {
        let zip = package(&[("index.js", NODE.as_bytes().to_vec())]);
        (node_runtime(), "index.handler", zip)
    } else {
        // A module of the function's named `logging` does not replace the standard library's,
        // as on Lambda, whose runtime imported `logging` before the function's directory.
        let zip = package(&[
            ("app.py", PYTHON.as_bytes().to_vec()),
            (
                "logging.py",
                b"raise ImportError('the function\'s own logging.py')\n".to_vec(),
            ),
        ]);
        (host_python(), "app.handler", zip)
    };
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(runtime.as_str()))
        .handler(handler)
        .role(ROLE)
        .memory_size(256)
        .timeout(10)
        .logging_config(logging)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// The invocation's log lines.
async fn tail(c: &Client, name: &str) -> Vec<String> {
    let out = c
        .invoke()
        .function_name(name)
        .log_type(LogType::Tail)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
    assert_eq!(out.function_error(), None, "{name}");
    let log = base64::engine::general_purpose::STANDARD
        .decode(out.log_result().expect("a log tail"))
        .unwrap();
    String::from_utf8(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json_config(app: &str, system: &str) -> LoggingConfig {
    LoggingConfig::builder()
        .log_format("JSON".into())
        .application_log_level(app.into())
        .system_log_level(system.into())
        .build()
}

/// The JSON objects among `lines` (every line but `plain print` must be one).
fn records(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l.as_str() != "plain print")
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The levels of the application records, in order.
fn app_levels(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r.get("level")?.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_writes_platform_records_and_leveled_application_lines() {
    let app = spawn_app().await;
    let c = &app.client;
    for node in [false, true] {
        let lang = if node { "node" } else { "py" };
        let (warn_app, debug_app) = (format!("{lang}-warn"), format!("{lang}-debug"));
        deploy(c, &debug_app, node, json_config("DEBUG", "INFO")).await;
        deploy(c, &warn_app, node, json_config("WARN", "WARN")).await;

        let lines = tail(c, &debug_app).await;
        let recs = records(&lines);
        let types: Vec<&str> = recs.iter().filter_map(|r| r["type"].as_str()).collect();
        assert_eq!(types, ["platform.start", "platform.report"], "{lines:?}");
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with("START") || l.starts_with("REPORT"))
        );
        let report = &recs
            .iter()
            .find(|r| r["type"] == "platform.report")
            .unwrap()["record"];
        assert_eq!(report["status"], "success", "{report}");
        assert_eq!(report["metrics"]["memorySizeMB"], 256);
        assert!(report["metrics"]["durationMs"].as_f64().unwrap() > 0.0);
        assert!(
            report["metrics"]["initDurationMs"].as_f64().is_some(),
            "a cold start"
        );
        let warning = if node { "WARN" } else { "WARNING" };
        assert_eq!(
            app_levels(&recs),
            ["DEBUG", "INFO", warning, "ERROR"],
            "{lang}: {lines:?}"
        );
        let info = recs.iter().find(|r| r["level"] == "INFO").unwrap();
        assert_eq!(info["message"], "info line 1");
        let request_id = recs[0]["record"]["requestId"].as_str().unwrap();
        assert_eq!(info["requestId"], request_id, "{info}");
        assert!(info["timestamp"].as_str().unwrap().ends_with('Z'));
        if !node {
            assert_eq!(info["logger"], "app");
            assert!(lines.iter().any(|l| l == "plain print"), "print stays text");
        }

        // WARN for both: application lines below it and the INFO platform records are gone.
        let lines = tail(c, &warn_app).await;
        let recs = records(&lines);
        assert!(recs.iter().all(|r| r.get("type").is_none()), "{lines:?}");
        assert_eq!(app_levels(&recs), [warning, "ERROR"], "{lang}: {lines:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_keeps_lambdas_lines_and_the_configuration_reads_back() {
    let app = spawn_app().await;
    let c = &app.client;
    deploy(
        c,
        "py-text",
        false,
        LoggingConfig::builder().log_format("Text".into()).build(),
    )
    .await;
    let lines = tail(c, "py-text").await;
    assert!(lines[0].starts_with("START RequestId: "), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("REPORT RequestId: ")));
    // Python's Text format: `[LEVEL]\ttime\trequest id\tmessage`; the root logger stays at
    // WARNING, as on Lambda.
    let warn = lines
        .iter()
        .find(|l| l.starts_with("[WARNING]\t"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    let fields: Vec<&str> = warn.split('\t').collect();
    assert_eq!(fields.len(), 4, "{warn}");
    assert!(fields[1].ends_with('Z') && fields[2].len() == 36 && fields[3] == "warn line");
    assert!(!lines.iter().any(|l| l.contains("info line")));

    // The settings read back, and switching to JSON applies to the next environment.
    c.update_function_configuration()
        .function_name("py-text")
        .logging_config(json_config("ERROR", "INFO"))
        .send()
        .await
        .unwrap();
    let got = c
        .get_function_configuration()
        .function_name("py-text")
        .send()
        .await
        .unwrap();
    let cfg = got.logging_config().unwrap();
    assert_eq!(cfg.log_format().unwrap().as_str(), "JSON");
    assert_eq!(cfg.application_log_level().unwrap().as_str(), "ERROR");
    assert_eq!(cfg.log_group(), Some("/aws/lambda/py-text"));
    let recs = records(&tail(c, "py-text").await);
    assert_eq!(app_levels(&recs), ["ERROR"]);
}
