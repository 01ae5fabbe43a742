//! `lamina top`: a live view of functions: concurrency, invocation and throttle rates, cold
//! starts, queued asynchronous events, and invoke latency p50/p99, read from the server's
//! `/metrics` every interval.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::Client;
use crate::output::table;

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Row {
    concurrency: f64,
    invocations: f64,
    errors: f64,
    throttles: f64,
    cold_starts: f64,
    queued: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

/// `name{function="f",k="v"} value` → (name, labels, value).
fn parse(line: &str) -> Option<(&str, BTreeMap<&str, &str>, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => {
            let mut m = BTreeMap::new();
            for kv in rest.trim_end_matches('}').split("\",") {
                if let Some((k, v)) = kv.split_once("=\"") {
                    m.insert(k, v.trim_end_matches('"'));
                }
            }
            (n, m)
        }
        None => (head, BTreeMap::new()),
    };
    Some((name, labels, value))
}

fn collect(text: &str) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for line in text.lines() {
        let Some((name, labels, value)) = parse(line) else {
            continue;
        };
        let Some(function) = labels.get("function") else {
            continue;
        };
        let function = function.rsplit(':').next().unwrap_or(function).to_owned();
        let row = rows.entry(function).or_default();
        match name {
            "lamina_concurrent_executions" => row.concurrency += value,
            "lamina_requests_total" => {
                row.invocations += value;
                if labels.get("outcome") != Some(&"success") {
                    row.errors += value;
                }
            }
            "lamina_throttles_total" => row.throttles += value,
            "lamina_cold_starts_total" => row.cold_starts += value,
            "lamina_async_queue_depth" => row.queued += value,
            "lamina_invoke_duration_seconds" => match labels.get("quantile") {
                Some(&"0.5") => row.p50_ms = Some(value * 1000.0),
                Some(&"0.99") => row.p99_ms = Some(value * 1000.0),
                _ => {}
            },
            _ => {}
        }
    }
    rows
}

pub async fn run(client: &Client, interval_s: f64, once: bool, json: bool) -> anyhow::Result<()> {
    let mut previous: Option<(Instant, BTreeMap<String, Row>)> = None;
    loop {
        let text = client.send(Method::GET, "/metrics", "", Vec::new()).await?;
        let now = Instant::now();
        let rows = collect(&String::from_utf8_lossy(&text.body));
        let rate = |name: &str, f: fn(&Row) -> f64, row: &Row| -> f64 {
            match &previous {
                Some((t, prev)) => {
                    let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
                    (f(row) - prev.get(name).map_or(0.0, f)).max(0.0) / secs
                }
                None => 0.0,
            }
        };
        if json {
            println!("{}", serde_json::to_string(&rows)?);
        } else {
            if std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            let fmt_ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
            let lines: Vec<Vec<String>> = rows
                .iter()
                .map(|(name, r)| {
                    vec![
                        name.clone(),
                        format!("{:.0}", r.concurrency),
                        format!("{:.1}", rate(name, |r| r.invocations, r)),
                        format!("{:.1}", rate(name, |r| r.errors, r)),
                        format!("{:.1}", rate(name, |r| r.throttles, r)),
                        format!("{:.0}", r.cold_starts),
                        format!("{:.0}", r.queued),
                        fmt_ms(r.p50_ms),
                        fmt_ms(r.p99_ms),
                    ]
                })
                .collect();
            table(
                &[
                    "FUNCTION",
                    "CONCURRENT",
                    "INVOKES/S",
                    "ERRORS/S",
                    "THROTTLES/S",
                    "COLD STARTS",
                    "QUEUED",
                    "P50 MS",
                    "P99 MS",
                ],
                &lines,
            );
        }
        if once {
            return Ok(());
        }
        previous = Some((now, rows));
        tokio::time::sleep(Duration::from_secs_f64(interval_s.max(0.1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_text() {
        let text = "# TYPE x counter\nlamina_requests_total{function=\"f\",outcome=\"success\"} 3\nlamina_requests_total{function=\"f\",outcome=\"error\"} 1\nlamina_invoke_duration_seconds{function=\"f\",quantile=\"0.5\"} 0.002\nlamina_concurrent_executions{function=\"arn:aws:lambda:us-east-1:000000000000:function:f\"} 2\nlamina_async_queue_depth{function=\"f\"} 7\n";
        let rows = collect(text);
        let f = &rows["f"];
        assert_eq!((f.invocations, f.errors, f.concurrency), (4.0, 1.0, 2.0));
        assert_eq!(f.p50_ms, Some(2.0));
        assert_eq!(f.queued, 7.0);
    }
}
