//! Metric history: real invocations (successes, errors, a throttle) show up per minute in
//! `/_lamina/metrics/history`, only to their own account, and survive a restart.

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use serde_json::Value;

use crate::helpers::*;
use crate::sdk_auth::AUTH;

const HANDLER: &[u8] = b"def handler(event, context):\n    if event.get('fail'):\n        raise ValueError('boom')\n    return 'ok'\n";

/// `YYYYMMDDTHHMMSSZ` for now, as SigV4 wants it.
fn amz_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A GET signed with `key`'s credentials; returns the status and the JSON body.
async fn get(endpoint: &str, key: (&str, &str), path: &str, query: &str) -> (u16, Value) {
    let host = endpoint.trim_start_matches("http://").to_owned();
    let headers = vec![("host".to_string(), host)];
    let hash = lamina_api::sigv4::sha256_hex(b"");
    let signed = lamina_api::sigv4::SignedRequest {
        method: "GET",
        raw_path: path,
        raw_query: query,
        headers: &headers,
        payload_hash: &hash,
    };
    let mut req = reqwest::Client::new()
        .get(format!("{endpoint}{path}?{query}"))
        .timeout(Duration::from_secs(10));
    for (name, value) in
        lamina_api::sigv4::sign(&signed, key.0, key.1, "us-east-1", "lambda", &amz_date())
    {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const ALICE: (&str, &str) = ("AKIDALICE", "alice-secret");
const BOB: (&str, &str) = ("AKIDBOB", "bob-secret");

fn sum(points: &Value, field: &str) -> f64 {
    points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_f64().unwrap_or(0.0))
        .sum()
}

/// Polls the series until it shows `invocations` and `throttles`.
async fn history_with(endpoint: &str, invocations: f64, throttles: f64) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = get(
            endpoint,
            ALICE,
            "/_lamina/metrics/history/hist",
            "period=1h",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if sum(&body["points"], "invocations") == invocations
            && sum(&body["points"], "throttles") == throttles
        {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the history never showed {invocations} invocations and {throttles} throttles: {last}");
}

async fn invoke(c: &Client, fail: bool) -> Option<String> {
    let out = c
        .invoke()
        .function_name("hist")
        .payload(Blob::new(format!("{{\"fail\": {fail}}}").into_bytes()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke: {}", describe(&e)));
    out.function_error().map(str::to_owned)
}

fn check(body: &Value) {
    assert_eq!(body["function"], "hist");
    assert_eq!(body["step_s"], 60);
    let points = &body["points"];
    assert_eq!(points.as_array().unwrap().len(), 60, "{body}");
    assert_eq!(sum(points, "errors"), 2.0, "{body}");
    assert!(sum(points, "cold_starts") >= 1.0, "{body}");
    assert!(sum(points, "gb_seconds") > 0.0, "{body}");
    assert!(sum(points, "concurrency_max") >= 1.0, "{body}");
    let busy: Vec<&Value> = points
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["invocations"].as_u64().unwrap() > 0)
        .collect();
    assert!(!busy.is_empty());
    for p in busy {
        let (p50, p99) = (p["p50_ms"].as_f64().unwrap(), p["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{p}");
    }
    let ts: Vec<i64> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["t"].as_i64().unwrap())
        .collect();
    assert!(
        ts.windows(2).all(|w| w[1] - w[0] == 60_000),
        "gaps in {ts:?}"
    );
}

#[tokio::test]
async fn history_counts_invocations_per_account_and_survives_a_restart() {
    let toml = format!("metrics_flush_s = 0.2\n{AUTH}");
    let app = spawn_app_with(&toml).await;
    let alice = sdk_client(&app.endpoint(), ALICE.0, ALICE.1, "us-east-1");
    alice
        .create_function()
        .function_name("hist")
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        .timeout(10)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", HANDLER)])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create: {}", describe(&e)));
    for fail in [false, true, false, true, false] {
        assert_eq!(invoke(&alice, fail).await.is_some(), fail);
    }
    // Reserved concurrency 0 throttles at once.
    alice
        .put_function_concurrency()
        .function_name("hist")
        .reserved_concurrent_executions(0)
        .send()
        .await
        .unwrap();
    let throttled = alice
        .invoke()
        .function_name("hist")
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await;
    assert_error(throttled, "TooManyRequestsException", "");

    let body = history_with(&app.endpoint(), 5.0, 1.0).await;
    check(&body);

    // The account-wide summary.
    let (status, summary) = get(
        &app.endpoint(),
        ALICE,
        "/_lamina/metrics/history",
        "period=1d",
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let functions = summary["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 1, "{summary}");
    assert_eq!(functions[0]["function"], "hist");
    assert_eq!(functions[0]["invocations"], 5);
    assert_eq!(functions[0]["errors"], 2);
    assert_eq!(functions[0]["throttles"], 1);
    assert!(functions[0]["p99_ms"].as_f64().unwrap() > 0.0);

    // Bob sees nothing of Alice's: not by name, not by her ARN, not in his summary.
    let (status, bobs) = get(
        &app.endpoint(),
        BOB,
        "/_lamina/metrics/history/hist",
        "period=1h",
    )
    .await;
    assert_eq!(status, 200, "{bobs}");
    assert_eq!(sum(&bobs["points"], "invocations"), 0.0, "{bobs}");
    assert_eq!(sum(&bobs["points"], "throttles"), 0.0, "{bobs}");
    let arn =
        lamina_api::sigv4::uri_encode("arn:aws:lambda:us-east-1:111111111111:function:hist", false);
    let (status, denied) = get(
        &app.endpoint(),
        BOB,
        &format!("/_lamina/metrics/history/{arn}"),
        "period=1h",
    )
    .await;
    assert_eq!(status, 403, "{denied}");
    let (_, summary) = get(
        &app.endpoint(),
        BOB,
        "/_lamina/metrics/history",
        "period=14d",
    )
    .await;
    assert_eq!(summary["functions"], serde_json::json!([]), "{summary}");

    // Bad windows are refused.
    let (status, _) = get(
        &app.endpoint(),
        ALICE,
        "/_lamina/metrics/history/hist",
        "period=1y",
    )
    .await;
    assert_eq!(status, 400);

    // Flushed rows are durable: a restarted server shows the same history.
    let dir = app.stop_keeping_data();
    let app = TestApp::start_in(dir, &toml, None);
    let body = history_with(&app.endpoint(), 5.0, 1.0).await;
    check(&body);
    let (_, fourteen) = get(
        &app.endpoint(),
        ALICE,
        "/_lamina/metrics/history/hist",
        "period=14d",
    )
    .await;
    assert_eq!(fourteen["step_s"], 900);
    assert_eq!(fourteen["points"].as_array().unwrap().len(), 14 * 96);
    assert_eq!(sum(&fourteen["points"], "invocations"), 5.0, "{fourteen}");
}
