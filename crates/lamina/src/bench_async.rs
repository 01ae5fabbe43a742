//! The asynchronous part of `lamina bench`: events accepted at concurrency 8 and drained by a
//! function whose reserved concurrency is 8, next to the synchronous throughput at the same
//! concurrency; then a backlog, queued while the function may run one event at a time, drained
//! by 8 at once with nothing else to do.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::bench::{Target, bar};

/// The function's memory: the same as the synchronous throughput's function, so that the
/// drain is compared with the same environments doing the same work.
const MEMORY_MB: u32 = 1769;

/// Asynchronous events of a native echo function (1769 MB, as the synchronous throughput's)
/// whose reserved concurrency is 8, the concurrency of the synchronous figure it is compared
/// with: how fast `202`s come back at concurrency 8 and how fast the queue drains meanwhile;
/// then how fast a backlog of events drains once the function may run 8 at once again.
pub async fn run(
    target: &Target,
    zip: &[u8],
    n: usize,
    quiet: bool,
) -> anyhow::Result<serde_json::Value> {
    let name = "async-echo";
    target
        .create(name, "provided.al2023", "bootstrap", MEMORY_MB, zip)
        .await?;
    reserve(target, name, 8).await?;
    // Eight warm environments, as the synchronous figure has.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let t = target.clone();
        set.spawn(async move { t.invoke(name).await });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let started = Instant::now();
    let sent = accept(target, name, n, "async: accept", quiet).await?;
    let accepted_s = started.elapsed().as_secs_f64();
    drained(target, started, Duration::from_millis(100)).await?;
    let drained_s = started.elapsed().as_secs_f64();

    // A backlog: the same number of events accepted while the function may run only one at a
    // time (as a throttled function would), then drained at its full reserved concurrency
    // with no acceptance beside it. Counted from the queue's length when the concurrency is
    // raised, to the first look that finds it empty: every 20 ms (a scrape counts the queue in
    // the store, under the lock the dispatcher needs too), so the rate is a lower bound.
    reserve(target, name, 1).await?;
    accept(target, name, n, "async: backlog", quiet).await?;
    let backlog = queued(target).await?;
    let raised = Instant::now();
    reserve(target, name, 8).await?;
    drained(target, raised, Duration::from_millis(20)).await?;
    let backlog_s = raised.elapsed().as_secs_f64();
    Ok(json!({
        "events": sent,
        "memory_mb": MEMORY_MB,
        "accepted_per_s": sent as f64 / accepted_s,
        "drained_per_s": sent as f64 / drained_s,
        "backlog_events": backlog as u64,
        "backlog_drained_per_s": backlog / backlog_s,
    }))
}

/// Sets the function's reserved concurrency.
async fn reserve(target: &Target, name: &str, n: u32) -> anyhow::Result<()> {
    target
        .http
        .put(format!(
            "{}/2017-10-31/functions/{name}/concurrency",
            target.base
        ))
        .json(&json!({ "ReservedConcurrentExecutions": n }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Sends `n` events (rounded down to a multiple of 8) at concurrency 8; returns how many.
async fn accept(
    target: &Target,
    name: &str,
    n: usize,
    what: &str,
    quiet: bool,
) -> anyhow::Result<usize> {
    let b = bar(n, what, quiet);
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
    b.finish_and_clear();
    Ok(n / 8 * 8)
}

/// Events in the queue, from `/metrics`.
async fn queued(target: &Target) -> anyhow::Result<f64> {
    let text = target
        .http
        .get(format!("{}/metrics", target.base))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| {
            l.strip_prefix("lamina_async_queue_events ")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0))
}

/// Waits until the queue is empty, looking every `every` (a scrape of `/metrics` has its own
/// cost); at most 10 minutes from `since`.
async fn drained(target: &Target, since: Instant, every: Duration) -> anyhow::Result<()> {
    loop {
        let left = queued(target).await?;
        if left == 0.0 {
            return Ok(());
        }
        if since.elapsed() > Duration::from_secs(600) {
            bail!("the queue did not drain within 10 minutes ({left} left)");
        }
        tokio::time::sleep(every).await;
    }
}

/// The table lines; `sync_c8` is the synchronous throughput at concurrency 8 of the same run,
/// which the drains are set against.
pub fn print(a: &serde_json::Value, sync_c8: Option<f64>) {
    let of_sync = |rate: f64| match sync_c8 {
        Some(s) if s > 0.0 => format!(" ({:.2}x the synchronous rate at concurrency 8)", rate / s),
        _ => String::new(),
    };
    let drained = a["drained_per_s"].as_f64().unwrap_or(0.0);
    println!(
        "async ({} MB): {} events accepted at concurrency 8 at {:.0}/s; drained (run) at {:.0}/s by at most 8 at once{}",
        a["memory_mb"],
        a["events"],
        a["accepted_per_s"].as_f64().unwrap_or(0.0),
        drained,
        of_sync(drained),
    );
    let backlog = a["backlog_drained_per_s"].as_f64().unwrap_or(0.0);
    println!(
        "async backlog: {} events queued while one ran at a time, drained at {:.0}/s by 8 at once{}",
        a["backlog_events"],
        backlog,
        of_sync(backlog),
    );
}
