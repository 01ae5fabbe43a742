//! The network part of `lamina bench`: cold starts of the native echo function on the main
//! server (egress on: a namespace from the pool, the veth pair, the firewall) next to the same
//! function on a second server with egress off (an empty network namespace, as before), the
//! two interleaved so that both see the same machine.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use crate::bench::{Target, bar, stats};

/// The pause between a create and its cold start, so the pool refills as it would between
/// cold starts of a real workload.
const SETTLE: Duration = Duration::from_millis(300);

/// Whether the main server set up egress: its firewall table exists.
fn egress_on() -> bool {
    ["/usr/sbin/nft", "/sbin/nft"].iter().any(|nft| {
        std::process::Command::new(nft)
            .args(["list", "table", "inet", "lamina"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

pub async fn run(
    http: &reqwest::Client,
    base_with: &str,
    native_zip: &[u8],
    n: usize,
    json_out: bool,
) -> anyhow::Result<Value> {
    if !egress_on() {
        return Ok(json!({ "skipped": "the server has no egress here (needs root and nft)" }));
    }
    let data = tempfile::tempdir()?;
    let raw: lamina_server::FileConfig = toml::from_str("memory_budget_mb = 100000000")?;
    let (addr, stop, server) = crate::bench::serve(raw, data.path(), Some(false)).await?;
    let with = Target {
        http: http.clone(),
        base: base_with.to_owned(),
    };
    let without = Target {
        http: http.clone(),
        base: format!("http://{addr}"),
    };
    let b = bar(2 * n, "cold starts with and without egress", json_out);
    let (mut on, mut off) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let t = Instant::now();
    for i in 0..n {
        for (target, out) in [(&with, &mut on), (&without, &mut off)] {
            let name = format!("net-cold-{i}");
            target
                .create(&name, "provided.al2023", "bootstrap", 128, native_zip)
                .await?;
            tokio::time::sleep(SETTLE).await;
            out.push(target.invoke(&name).await?);
            b.inc(1);
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the network cold-start comparison took over 10 minutes");
        }
    }
    b.finish_and_clear();
    let _ = stop.send(());
    let _ = server.await;
    let (on, off) = (stats(on), stats(off));
    Ok(json!({
        "cold_with_egress": on,
        "cold_without_egress": off,
        "p50_delta_ms": on.p50_ms - off.p50_ms,
    }))
}

/// The table line.
pub fn print(n: &Value) {
    if let Some(why) = n["skipped"].as_str() {
        println!("network: skipped ({why})");
        return;
    }
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "network: native cold start p50 (p99) ms with egress {:.3} ({:.3}), without {:.3} ({:.3}): egress adds {:.3} ms at p50; {} each, interleaved",
        ms(&n["cold_with_egress"]["p50_ms"]),
        ms(&n["cold_with_egress"]["p99_ms"]),
        ms(&n["cold_without_egress"]["p50_ms"]),
        ms(&n["cold_without_egress"]["p99_ms"]),
        ms(&n["p50_delta_ms"]),
        n["cold_with_egress"]["n"],
    );
}
