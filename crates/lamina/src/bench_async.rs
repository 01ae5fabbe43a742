//! The asynchronous part of `lamina bench`: events accepted at concurrency 8 and drained by a
//! function whose reserved concurrency is 8, next to the synchronous throughput at the same
//! concurrency.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::bench::{Target, bar};

/// Asynchronous events of a native echo function whose reserved concurrency is 8 (the
/// concurrency of the synchronous throughput figure it is compared with): how fast `202`s come
/// back at concurrency 8, and how fast the queue drains.
pub async fn run(
    target: &Target,
    zip: &[u8],
    n: usize,
    quiet: bool,
) -> anyhow::Result<serde_json::Value> {
    let name = "async-echo";
    target
        .create(name, "provided.al2023", "bootstrap", 128, zip)
        .await?;
    target
        .http
        .put(format!(
            "{}/2017-10-31/functions/{name}/concurrency",
            target.base
        ))
        .json(&json!({ "ReservedConcurrentExecutions": 8 }))
        .send()
        .await?
        .error_for_status()?;
    // Eight warm environments, as the synchronous figure has.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let t = target.clone();
        set.spawn(async move { t.invoke(name).await });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let b = bar(n, "async: accept", quiet);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let http = target.http.clone();
        let url = format!("{}/2015-03-31/functions/{name}/invocations", target.base);
        let b = b.clone();
        set.spawn(async move {
            for _ in 0..n / 8 {
                let r = http
                    .post(&url)
                    .header("x-amz-invocation-type", "Event")
                    .body(r#"{"bench":true}"#)
                    .send()
                    .await?;
                if r.status() != 202 {
                    anyhow::bail!("an event was refused: {}", r.text().await?);
                }
                b.inc(1);
            }
            Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let accepted_s = started.elapsed().as_secs_f64();
    b.finish_and_clear();
    let sent = n / 8 * 8;
    // Drained when the queue is empty again.
    loop {
        let text = target
            .http
            .get(format!("{}/metrics", target.base))
            .send()
            .await?
            .text()
            .await?;
        let queued = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("lamina_async_queue_events ")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        if queued == 0.0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the queue did not drain within 10 minutes ({queued} left)");
        }
        // Rarely: a scrape of /metrics has its own cost.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_s = started.elapsed().as_secs_f64();
    Ok(json!({
        "events": sent,
        "accepted_per_s": sent as f64 / accepted_s,
        "drained_per_s": sent as f64 / drained_s,
    }))
}

/// The table line.
pub fn print(a: &serde_json::Value) {
    println!(
        "async: {} events accepted at concurrency 8 at {:.0}/s; drained (run) at {:.0}/s by at most 8 at once",
        a["events"],
        a["accepted_per_s"].as_f64().unwrap_or(0.0),
        a["drained_per_s"].as_f64().unwrap_or(0.0),
    );
}
