//! `LoggingConfig.LogGroup`: a function that names a log group of its own has its lines there,
//! through the CloudWatch Logs API (boto3), and not under `/aws/lambda/<name>`; a group that is
//! another function's is refused.

use aws_sdk_lambda::types::LoggingConfig;
use serde_json::json;

use crate::helpers::*;
use crate::logs_api::{boto3, deploy, invoke, wait_for_reports};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_log_group_holds_its_functions_lines() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy(&app.client, "orders").await;
    deploy(&app.client, "payments").await;
    let custom = |group: &str| LoggingConfig::builder().log_group(group).build();
    app.client
        .update_function_configuration()
        .function_name("orders")
        .logging_config(custom("/shop/orders"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    invoke(&app.client, "orders", json!(["order 1 placed"])).await;
    invoke(&app.client, "payments", json!(["payment 1 taken"])).await;
    wait_for_reports(&ep, "orders", 1).await;
    wait_for_reports(&ep, "payments", 1).await;

    // Another function may not take the group, nor a function's default group.
    for (function, group) in [
        ("payments", "/shop/orders"),
        ("payments", "/aws/lambda/orders"),
    ] {
        let err = app
            .client
            .update_function_configuration()
            .function_name(function)
            .logging_config(custom(group))
            .send()
            .await;
        assert_error(
            err,
            "InvalidParameterValueException",
            "one function per log group",
        );
    }

    let out = boto3(
        &ep,
        ("test", "test"),
        r#"
names = [g['logGroupName'] for g in logs.describe_log_groups()['logGroups']]
lines = [e['message'] for e in logs.filter_log_events(logGroupName='/shop/orders')['events']]
streams = [s['logStreamName'] for s in logs.describe_log_streams(logGroupName='/shop/orders')['logStreams']]
events = logs.get_log_events(logGroupName='/shop/orders', logStreamName=streams[0], startFromHead=True)['events']
default = err(lambda: logs.filter_log_events(logGroupName='/aws/lambda/orders'))
print(json.dumps({'names': names, 'lines': lines, 'streams': streams, 'events': [e['message'] for e in events], 'default': default}))
"#,
    );
    assert_eq!(
        out["names"],
        json!(["/aws/lambda/payments", "/shop/orders"]),
        "{out}"
    );
    let lines: Vec<&str> = out["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"order 1 placed"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("payment")), "{lines:?}");
    assert_eq!(out["streams"].as_array().unwrap().len(), 1, "{out}");
    assert!(
        out["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "order 1 placed"),
        "{out}"
    );
    assert_eq!(out["default"][0], "ResourceNotFoundException", "{out}");

    // `lamina logs` finds the function's group itself.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(["logs", "orders", "--endpoint", &ep])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(text.lines().any(|l| l == "order 1 placed"), "{text}");
}
