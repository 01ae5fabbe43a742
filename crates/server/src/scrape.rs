//! `/metrics`: the recorder's series (`lamina_api::prometheus`), then the gauges read from their
//! owners at each scrape: environments, queue depths, concurrency and network bytes.
//!
//! A function's gauges are shown for every function some series names (0 when it has nothing
//! queued or running), and for any other with something to show. A deleted function's series
//! went with it, so its gauges go too, once it has nothing running.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lamina_api::AppState;
use lamina_api::prometheus::{FunctionLabels, Recorder, function_labels, gauge, labels};
use lamina_model::FunctionRef;
use lamina_runtime_api::Executor;

/// The text `/metrics` answers.
pub async fn render(recorder: &Recorder, ex: &Executor, st: &Arc<AppState>) -> String {
    let stats = ex.stats();
    metrics::gauge!("lamina_async_queue_events").set(st.queue.depth() as f64);
    metrics::gauge!("lamina_environments").set(stats.environments as f64);
    metrics::gauge!("lamina_environments_idle").set(stats.idle as f64);
    metrics::gauge!("lamina_environments_memory_mb").set(stats.live_memory_mb as f64);
    let depths = lamina_api::lambda::queue::depths(st).await;
    // Functions' network bytes since start (Lambda does not bill them).
    let traffic = {
        let ex = ex.clone();
        tokio::task::spawn_blocking(move || ex.traffic())
            .await
            .unwrap_or_default()
    };
    let mut out = recorder.render();
    let known = recorder.functions();
    let depths = depths.into_iter().map(|(k, n)| {
        let f = (
            k.name.to_string(),
            k.account.to_string(),
            k.region.to_string(),
        );
        (f, n as f64)
    });
    per_function(&mut out, "lamina_async_queue_depth", &known, depths);
    let running = stats
        .concurrency
        .iter()
        .filter_map(|(arn, n)| Some((of_arn(arn)?, f64::from(*n))));
    per_function(&mut out, "lamina_concurrent_executions", &known, running);
    let names = [
        ("lamina_function_network_sent_bytes_total", true),
        ("lamina_function_network_received_bytes_total", false),
    ];
    for (name, sent) in names {
        let values = traffic.iter().filter_map(|t| {
            let bytes = if sent { t.sent } else { t.received };
            Some((of_arn(&t.owner)?, bytes as f64))
        });
        per_function(&mut out, name, &known, values);
    }
    out
}

/// Writes the gauge `name` of each `known` function (0 unless in `values`) and of every other
/// function in `values` with a value other than 0.
fn per_function(
    out: &mut String,
    name: &str,
    known: &BTreeSet<FunctionLabels>,
    values: impl Iterator<Item = (FunctionLabels, f64)>,
) {
    let mut all: BTreeMap<FunctionLabels, f64> = known.iter().map(|f| (f.clone(), 0.0)).collect();
    for (f, v) in values {
        if v != 0.0 || all.contains_key(&f) {
            all.insert(f, v);
        }
    }
    let series = all
        .into_iter()
        .map(|((function, account, region), v)| {
            (
                labels(function_labels(&account, &region, &function).iter()),
                v,
            )
        })
        .collect::<Vec<_>>();
    if !series.is_empty() {
        gauge(out, name, series);
    }
}

/// A function's name, account and region from its ARN.
fn of_arn(arn: &str) -> Option<FunctionLabels> {
    let f = FunctionRef::parse(arn).ok()?;
    Some((
        f.name.to_string(),
        f.account?.to_string(),
        f.region?.to_string(),
    ))
}
