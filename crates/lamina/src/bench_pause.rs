//! The paused part of `lamina bench`: warm invokes of the native 1769 MB function, each after a
//! pause long enough for its environment to be frozen (most functions are not called back to
//! back), next to the echo in the servers' runtime after the same pause, interleaved. Both pay
//! for sleeping CPUs and cold caches; what Lamina pays beyond the echo is the threads an
//! invocation wakes, the thaw, and what runs beside it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::bench::{Target, bar, stats};
use crate::bench_relay::{post, timed};

/// Longer than the 50 ms after which an idle environment is frozen (`pause` in the report, ms:
/// a setting, not a figure, so `--compare` leaves it out).
const PAUSE: Duration = Duration::from_millis(150);

pub async fn run(
    http: &reqwest::Client,
    target: &Target,
    echo_url: &str,
    n: usize,
    json_out: bool,
) -> anyhow::Result<Value> {
    let b = bar(n, "warm invokes after a pause", json_out);
    let (mut lamina, mut echo) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        tokio::time::sleep(PAUSE).await;
        echo.push(timed(post(http, echo_url)).await?);
        tokio::time::sleep(PAUSE).await;
        lamina.push(target.invoke("warm-native-1769").await?);
        b.inc(1);
    }
    b.finish_and_clear();
    let (lamina, echo) = (stats(lamina), stats(echo));
    Ok(json!({
        "pause": PAUSE.as_millis() as u64,
        "lamina": lamina,
        "echo": echo,
        "p50_vs_echo": lamina.p50_ms / echo.p50_ms,
    }))
}

/// The table line.
pub fn print(p: &Value) {
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "after a {} ms pause: native 1769 MB warm p50 (p99) ms {:.3} ({:.3}), the echo {:.3} ({:.3}): {:.1}x the echo; {} each, interleaved",
        p["pause"],
        ms(&p["lamina"]["p50_ms"]),
        ms(&p["lamina"]["p99_ms"]),
        ms(&p["echo"]["p50_ms"]),
        ms(&p["echo"]["p99_ms"]),
        ms(&p["p50_vs_echo"]),
        p["lamina"]["n"],
    );
}
