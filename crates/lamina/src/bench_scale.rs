//! Scale-out from zero, and what idle environments hold: `n` concurrent invocations of a native
//! function that sleeps 1 s (the `lambda_runtime` bootstrap when the run has one, else `lamina`
//! itself), then, with every environment idle, the host memory they take.
//!
//! The memory is split in two: what the environments' own cgroups hold (the function's
//! processes, and PID 1's pages made after it joined them) and the rest, which is what the
//! platform holds per environment: its two `sandbox-init` processes, the server's share, and the
//! kernel's (namespaces, the `/tmp` filesystem, sockets, the cgroups themselves). The first two
//! are also measured on their own (this process's anonymous memory, the processes' PSS).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::{Target, bar};

pub(crate) async fn run(
    target: &Target,
    (bootstrap, zip): (&str, &[u8]),
    n: usize,
    cgroup_parent: &str,
    quiet: bool,
) -> anyhow::Result<serde_json::Value> {
    let name = "scale";
    target
        .create(name, "provided.al2023", "bootstrap", 128, zip)
        .await?;
    let available_before = mem_available_kb();
    let groups_before = groups_memory_kb(cgroup_parent);
    let (server_before, inits_before) = (rss_anon_kb(), inits_pss_kb());
    let b = bar(n, "scale-out", quiet);
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let http = target.http.clone();
        let url = format!("{}/2015-03-31/functions/{name}/invocations", target.base);
        set.spawn(async move {
            let r = http.post(url).body(r#"{"sleep_ms":1000}"#).send().await?;
            let ok = r.status().is_success() && !r.headers().contains_key("x-amz-function-error");
            r.bytes().await?;
            Ok::<_, reqwest::Error>(ok)
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        if r?? {
            ok += 1;
        }
        b.inc(1);
    }
    b.finish_and_clear();
    let all_done_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_env = |before: u64, after: u64| after.saturating_sub(before) as f64 / n as f64;
    let host_kb = per_env(mem_available_kb(), available_before);
    let own_kb = match (groups_before, groups_memory_kb(cgroup_parent)) {
        (Some(before), Some(after)) => Some(per_env(before, after)),
        _ => None,
    };
    let server_kb = per_env(server_before, rss_anon_kb());
    let inits_kb = per_env(inits_before, inits_pss_kb());
    Ok(json!({
        "environments": n,
        "bootstrap": bootstrap,
        "succeeded": ok,
        "all_done_s": all_done_s,
        "all_running_s": (all_done_s - 1.0).max(0.0),
        "creation_rate_per_s": n as f64 / (all_done_s - 1.0).max(1e-3),
        "host_memory_per_idle_environment_kib": host_kb,
        "own_cgroup_memory_per_idle_environment_kib": own_kb,
        "platform_memory_per_idle_environment_kib": own_kb.map(|own| host_kb - own),
        "server_memory_per_idle_environment_kib": server_kb,
        "sandbox_init_memory_per_idle_environment_kib": inits_kb,
    }))
}

pub(crate) fn print(s: &serde_json::Value) {
    let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
    println!(
        "scale-out: {} of {} invocations (1 s each, {}) done in {:.2} s: all running after {:.2} s, {:.0} environments/s",
        s["succeeded"],
        s["environments"],
        s["bootstrap"].as_str().unwrap_or("lamina (native)"),
        f("all_done_s"),
        f("all_running_s"),
        f("creation_rate_per_s"),
    );
    match s["platform_memory_per_idle_environment_kib"].as_f64() {
        Some(platform) => println!(
            "idle environment: {:.0} KiB of host memory, of which {:.0} KiB in its own cgroup (the function) and {platform:.0} KiB the platform's",
            f("host_memory_per_idle_environment_kib"),
            f("own_cgroup_memory_per_idle_environment_kib"),
        ),
        None => println!(
            "idle environment: {:.0} KiB of host memory (its cgroup's share unknown: no memory controller found)",
            f("host_memory_per_idle_environment_kib"),
        ),
    }
    println!(
        "  of the platform's: {:.0} KiB in the server's heap, {:.0} KiB in the sandbox-init processes (PSS), the rest the kernel's",
        f("server_memory_per_idle_environment_kib"),
        f("sandbox_init_memory_per_idle_environment_kib"),
    );
}

/// This process's anonymous memory, KiB: the server's (the bench's own client is idle by then,
/// though what it freed may still be counted).
fn rss_anon_kb() -> u64 {
    status_kb("/proc/self/status", "RssAnon:")
}

/// The figure after `key` in a `/proc` file of `key: value kB` lines.
fn status_kb(path: impl AsRef<std::path::Path>, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The proportional set size of every `sandbox-init` process (two per sandbox), KiB.
fn inits_pss_kb() -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|p| {
            std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim() == "sandbox-init")
        })
        .map(|p| status_kb(p.path().join("smaps_rollup"), "Pss:"))
        .sum()
}

fn mem_available_kb() -> u64 {
    status_kb("/proc/meminfo", "MemAvailable:")
}

/// What the server's environment groups hold together, KiB: cgroup v1's memory hierarchy, or
/// v2's group of the server (`parent` under the root, or under this process's own group).
fn groups_memory_kb(parent: &str) -> Option<u64> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let v1 = root.join("memory").join(parent);
    let (dir, file) = if v1.is_dir() {
        (v1, "memory.usage_in_bytes")
    } else {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_owned))?;
        let own = own.trim().trim_matches('/');
        let own = own
            .strip_suffix(lamina_sandbox::cgroup::SERVER_LEAF)
            .unwrap_or(own)
            .trim_end_matches('/');
        let dir = [root.join(own).join(parent), root.join(parent)]
            .into_iter()
            .find(|d| d.is_dir())?;
        (dir, "memory.current")
    };
    let mut bytes = 0u64;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("env-") {
            bytes += std::fs::read_to_string(entry.path().join(file))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(bytes / 1024)
}
