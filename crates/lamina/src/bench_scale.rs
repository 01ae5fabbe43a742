//! Scale-out from zero, and what idle environments hold: `n` concurrent invocations of a native
//! function that sleeps 1 s (the `lambda_runtime` bootstrap when the run has one, else `lamina`
//! itself), then, with every environment idle, the host memory they take.
//!
//! The memory is split in two: what the environments' own cgroups hold (the function's
//! processes, and PID 1's pages made after it joined them) and the rest, which is what the
//! platform holds per environment: its two `sandbox-init` processes, the server's share, and the
//! kernel's (namespaces, the `/tmp` filesystem, sockets, the cgroups themselves). The first two
//! are also measured on their own (this process's anonymous memory, the processes' PSS).
//!
//! What idle environments cost while nothing runs is measured too: this process's CPU time and
//! its threads' context switches over [`IDLE_SPAN`], before the scale-out and once its
//! environments are idle, each time once the process has become quiet: no environment is still
//! being frozen and the CPU use is steady (what a burst leaves behind, such as pools made up
//! again, is done). The process holds the servers of the run and the bench's own client,
//! all idle then.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::{Target, bar};

/// How long the idle server is watched, before the scale-out and after it.
const IDLE_SPAN: Duration = Duration::from_secs(3);

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
    let idle_before = idle_cost(cgroup_parent, Instant::now()).await;
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
    let done = Instant::now();
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
    let idle_after = idle_cost(cgroup_parent, done).await;
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
        "idle_cpu_ms_per_idle_s_before": idle_before.cpu_ms_per_s,
        "idle_cpu_ms_per_idle_s": idle_after.cpu_ms_per_s,
        "idle_switches_per_idle_s_before": idle_before.switches_per_s,
        "idle_switches_per_idle_s": idle_after.switches_per_s,
        "quiet_after_scale_out_s": idle_after.settled_s,
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
    println!(
        "idle server: {:.1} ms of CPU and {:.0} context switches a second with them all idle (quiet {:.0} s after the scale-out), {:.1} ms and {:.0} before it",
        f("idle_cpu_ms_per_idle_s"),
        f("idle_switches_per_idle_s"),
        f("quiet_after_scale_out_s"),
        f("idle_cpu_ms_per_idle_s_before"),
        f("idle_switches_per_idle_s_before"),
    );
}

/// What this process costs over [`IDLE_SPAN`] of doing nothing, per second, once it is quiet.
struct Idle {
    cpu_ms_per_s: f64,
    switches_per_s: f64,
    /// How long after `since` it was quiet (the work a burst leaves behind: freezing, pools
    /// made up again, logs written).
    settled_s: f64,
}

/// `since`: when the work the process may still be finishing ended.
async fn idle_cost(cgroup_parent: &str, since: Instant) -> Idle {
    settle(cgroup_parent).await;
    let settled_s = since.elapsed().as_secs_f64();
    // The walks over the threads stay outside the CPU time measured.
    let switches_before = context_switches();
    let cpu_before = cpu_ms();
    tokio::time::sleep(IDLE_SPAN).await;
    let cpu_after = cpu_ms();
    let switches_after = context_switches();
    // Counted over the threads alive at both ends (the runtime's blocking threads come and go).
    let switches: u64 = switches_after
        .iter()
        .filter_map(|(tid, n)| Some(n.saturating_sub(*switches_before.get(tid)?)))
        .sum();
    let span = IDLE_SPAN.as_secs_f64();
    Idle {
        cpu_ms_per_s: (cpu_after - cpu_before) / span,
        switches_per_s: switches as f64 / span,
        settled_s,
    }
}

/// Waits, a second at a time, until no more environments are being frozen and this process's
/// CPU use is steady (the same as the second before within 20 %, or 2 ms), for at most 60 s.
async fn settle(cgroup_parent: &str) {
    let start = Instant::now();
    let second = || async {
        let before = cpu_ms();
        tokio::time::sleep(Duration::from_secs(1)).await;
        (cpu_ms() - before, frozen_groups(cgroup_parent))
    };
    let (mut cpu, mut frozen) = second().await;
    while start.elapsed() < Duration::from_secs(60) {
        let (cpu_now, frozen_now) = second().await;
        if frozen_now == frozen && (cpu_now - cpu).abs() < (0.2 * cpu).max(2.0) {
            break;
        }
        (cpu, frozen) = (cpu_now, frozen_now);
    }
}

/// How many of the server's environment groups are frozen.
fn frozen_groups(parent: &str) -> usize {
    let Some((dir, v1)) = groups_dir(parent, "freezer") else {
        return 0;
    };
    let frozen = |env: &std::path::Path| {
        if v1 {
            std::fs::read_to_string(env.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        } else {
            std::fs::read_to_string(env.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
        }
    };
    env_groups(&dir).filter(|env| frozen(env)).count()
}

/// The environments' groups (`env-*`) in `dir`.
fn env_groups(dir: &std::path::Path) -> impl Iterator<Item = std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("env-"))
        .map(|e| e.path())
}

/// The CPU time of this process (every thread, those gone too), ms.
fn cpu_ms() -> f64 {
    clock_ms(rustix::time::ClockId::ProcessCPUTime)
}

fn clock_ms(clock: rustix::time::ClockId) -> f64 {
    let t = rustix::time::clock_gettime(clock);
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

/// The context switches of each of this process's threads, voluntary or not, by thread id.
fn context_switches() -> std::collections::HashMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Default::default();
    };
    tasks
        .flatten()
        .map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let n = value_in(&status, "voluntary_ctxt_switches:")
                + value_in(&status, "nonvoluntary_ctxt_switches:");
            (t.file_name().to_string_lossy().into_owned(), n)
        })
        .collect()
}

/// This process's anonymous memory, KiB: the server's (the bench's own client is idle by then,
/// though what it freed may still be counted).
fn rss_anon_kb() -> u64 {
    status_value("/proc/self/status", "RssAnon:")
}

/// The figure after `key` in a `/proc` file of `key: value` or `key: value kB` lines.
fn status_value(path: impl AsRef<std::path::Path>, key: &str) -> u64 {
    std::fs::read_to_string(path).map_or(0, |text| value_in(&text, key))
}

/// The figure after `key` in `text`, lines of `key: value` or `key: value kB`; 0 if absent.
fn value_in(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
        .map(|p| status_value(p.path().join("smaps_rollup"), "Pss:"))
        .sum()
}

fn mem_available_kb() -> u64 {
    status_value("/proc/meminfo", "MemAvailable:")
}

/// What the server's environment groups hold together, KiB: cgroup v1's memory hierarchy, or
/// v2's group of the server (`parent` under the root, or under this process's own group).
fn groups_memory_kb(parent: &str) -> Option<u64> {
    let (dir, v1) = groups_dir(parent, "memory")?;
    let file = if v1 {
        "memory.usage_in_bytes"
    } else {
        "memory.current"
    };
    let bytes: u64 = env_groups(&dir)
        .map(|env| {
            std::fs::read_to_string(env.join(file))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    Some(bytes / 1024)
}

/// The directory of the server's groups: in v1's hierarchy of `controller` (`true`), or in the
/// v2 hierarchy (`false`), under this process's own group or at the root.
fn groups_dir(parent: &str, controller: &str) -> Option<(std::path::PathBuf, bool)> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let v1 = root.join(controller).join(parent);
    if v1.is_dir() {
        return Some((v1, true));
    }
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
    Some((dir, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_clock_counts_work_done() {
        // Spun until this thread has had 30 ms of CPU, however loaded the machine.
        let thread_ms = || clock_ms(rustix::time::ClockId::ThreadCPUTime);
        let (process, thread) = (cpu_ms(), thread_ms());
        let mut x = 0u64;
        while thread_ms() - thread < 30.0 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(
            cpu_ms() - process >= 30.0,
            "the process had this thread's 30 ms"
        );
    }

    #[test]
    fn a_thread_that_sleeps_switches_out() {
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        let tid = me.file_name().unwrap().to_string_lossy().into_owned();
        let before = context_switches()[&tid];
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(context_switches()[&tid] >= before + 3);
    }
}
