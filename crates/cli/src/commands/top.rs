//! `lamina top`: the functions of the caller's account and region over the last hour
//! (invocations, errors, throttles, cold starts, p50/p99 duration, peak concurrency, GB-seconds)
//! and the invocations in flight now, read every interval from
//! `/_lamina/metrics/history?period=1h`, the numbers the web console shows.
//!
//! The history is kept per account, so two accounts on one server see only their own functions.
//! The asynchronous queue's depth is not shown: the server counts it per function name only,
//! across accounts.

use std::io::IsTerminal;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::Client;
use crate::output::table;

/// One function's figures.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
struct Row {
    function: String,
    /// Invocations in flight now.
    concurrency_now: u64,
    invocations: u64,
    errors: u64,
    throttles: u64,
    cold_starts: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// The most invocations in flight at once.
    concurrency_max: u64,
    gb_seconds: f64,
}

/// The summary of one window.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
struct View {
    /// The window, epoch ms: `[start, end)`.
    start: i64,
    end: i64,
    functions: Vec<Row>,
}

/// The server's summary, by name; figures it leaves out (or null) count as 0 (`concurrency_now`
/// is new, so older servers lack it).
fn view(v: &Value) -> View {
    let n = |f: &Value, k: &str| f[k].as_u64().unwrap_or(0);
    let mut functions: Vec<Row> = v["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| Row {
            function: f["function"].as_str().unwrap_or_default().to_owned(),
            concurrency_now: n(f, "concurrency_now"),
            invocations: n(f, "invocations"),
            errors: n(f, "errors"),
            throttles: n(f, "throttles"),
            cold_starts: n(f, "cold_starts"),
            p50_ms: f["p50_ms"].as_f64(),
            p99_ms: f["p99_ms"].as_f64(),
            concurrency_max: n(f, "concurrency_max"),
            gb_seconds: f["gb_seconds"].as_f64().unwrap_or(0.0),
        })
        .collect();
    functions.sort_by(|a, b| a.function.cmp(&b.function));
    View {
        start: v["start"].as_i64().unwrap_or(0),
        end: v["end"].as_i64().unwrap_or(0),
        functions,
    }
}

/// `HH:MM` (UTC) of an epoch-ms instant.
fn clock(ms: i64) -> String {
    let fmt = time::macros::format_description!("[hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "?".into())
}

/// The table's rows.
fn lines(v: &View) -> Vec<Vec<String>> {
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    v.functions
        .iter()
        .map(|r| {
            vec![
                r.function.clone(),
                r.concurrency_now.to_string(),
                r.invocations.to_string(),
                r.errors.to_string(),
                r.throttles.to_string(),
                r.cold_starts.to_string(),
                ms(r.p50_ms),
                ms(r.p99_ms),
                r.concurrency_max.to_string(),
                format!("{:.3}", r.gb_seconds),
            ]
        })
        .collect()
}

pub async fn run(client: &Client, interval_s: f64, once: bool, json: bool) -> anyhow::Result<()> {
    loop {
        let reply = client
            .send(
                Method::GET,
                "/_lamina/metrics/history",
                "period=1h",
                Vec::new(),
            )
            .await?;
        let v = view(&reply.json()?);
        if json {
            println!("{}", serde_json::to_string(&v)?);
        } else {
            if std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "Last hour, {}-{} UTC (NOW: in flight now; P50, P99 in ms; PEAK: most at once)",
                clock(v.start),
                clock(v.end)
            );
            table(
                &[
                    "FUNCTION",
                    "NOW",
                    "INVOCATIONS",
                    "ERRORS",
                    "THROTTLES",
                    "COLD",
                    "P50",
                    "P99",
                    "PEAK",
                    "GB-S",
                ],
                &lines(&v),
            );
        }
        if once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(interval_s.max(0.1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_history_summary() {
        let v = view(&json!({
            "start": 1_700_000_040_000_i64,
            "end": 1_700_003_640_000_i64,
            "functions": [
                {"function": "z", "invocations": 3, "errors": 1, "throttles": 2, "cold_starts": 1,
                 "p50_ms": 2.5, "p99_ms": null, "concurrency_max": 2, "gb_seconds": 0.0126,
                 "concurrency_now": 1},
                {"function": "a", "invocations": 1, "p50_ms": null, "concurrency_now": null}
            ]
        }));
        assert_eq!(
            v.functions
                .iter()
                .map(|r| r.function.as_str())
                .collect::<Vec<_>>(),
            ["a", "z"]
        );
        let z = &v.functions[1];
        assert_eq!(
            (
                z.concurrency_now,
                z.invocations,
                z.errors,
                z.throttles,
                z.cold_starts
            ),
            (1, 3, 1, 2, 1)
        );
        assert_eq!(
            (z.p50_ms, z.p99_ms, z.concurrency_max),
            (Some(2.5), None, 2)
        );
        let a = &v.functions[0];
        assert_eq!((a.concurrency_now, a.errors, a.gb_seconds), (0, 0, 0.0));
        assert_eq!(
            lines(&v)[1],
            ["z", "1", "3", "1", "2", "1", "2.50", "-", "2", "0.013"]
        );
        assert_eq!(
            (clock(v.start), clock(v.end)),
            ("22:14".into(), "23:14".into())
        );
    }
}
