//! The process-wide Prometheus recorder behind `/metrics`, and its upkeep.
//!
//! A histogram's samples (one per invocation for `lamina_invoke_duration_seconds`) wait in the
//! recorder until they are folded into its summary, which `render` (a scrape) or `run_upkeep`
//! does. A recorder made with `build_recorder`, as here, runs no upkeep of its own: without a
//! scrape the samples would pile up for as long as the server runs. A thread of its own folds
//! them in every [`UPKEEP_EVERY`], so what the server holds for its metrics stays bounded
//! whether or not anything scrapes it.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How often the histograms' waiting samples are folded in: at a few thousand invocations a
/// second (about 16 bytes each while they wait), a few hundred kilobytes wait at most.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder, installed once and shared by every server in the process, with its upkeep
/// thread started.
pub fn handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            keep_up(handle.clone(), UPKEEP_EVERY);
            handle
        })
        .clone()
}

/// Runs the recorder's upkeep every `every`, on a thread of its own, for as long as the process
/// lives (as the recorder does). The thread sleeps between rounds: an idle server pays one
/// wake-up per round.
fn keep_up(handle: PrometheusHandle, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms grow until scraped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of [`histogram_samples_do_not_pile_up_without_a_scrape`].
    const CHILD: &str = "LAMINA_SERVER_TEST_UPKEEP";

    /// Bytes the allocator has handed out and not had back, over all arenas.
    fn heap_in_use() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        unsafe { libc::mallinfo2() }.uordblks
    }

    /// A server that is never scraped records a histogram sample per invocation: with the
    /// upkeep thread they are folded in as they come, and the heap stays flat. Run as a child
    /// process, alone, so that no other test's allocations count.
    #[test]
    fn histogram_samples_do_not_pile_up_without_a_scrape() {
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "prometheus::tests::histogram_samples_do_not_pile_up_without_a_scrape",
                ])
                .args(["--test-threads", "1", "--nocapture"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        // Without upkeep: two million samples wait, at least 8 bytes each (about 33 MB here).
        let idle = PrometheusBuilder::new().build_recorder();
        let before = heap_in_use();
        metrics::with_local_recorder(&idle, || {
            for _ in 0..2_000_000 {
                metrics::histogram!("lamina_test_seconds").record(0.001);
            }
        });
        let piled = heap_in_use().saturating_sub(before);
        assert!(
            piled >= 16 << 20,
            "samples should wait without upkeep, the heap grew {piled} bytes"
        );
        drop(idle);
        // With the upkeep thread: the same samples, recorded over about ten of its rounds (at
        // most about 2 MB waited here).
        let kept = PrometheusBuilder::new().build_recorder();
        keep_up(kept.handle(), Duration::from_millis(20));
        let before = heap_in_use();
        let mut most = 0;
        metrics::with_local_recorder(&kept, || {
            for _ in 0..20 {
                for _ in 0..100_000 {
                    metrics::histogram!("lamina_test_seconds").record(0.001);
                }
                std::thread::sleep(Duration::from_millis(10));
                most = most.max(heap_in_use().saturating_sub(before));
            }
        });
        assert!(
            most < 8 << 20,
            "the upkeep thread should fold samples in as they come, the heap grew {most} bytes"
        );
    }
}
