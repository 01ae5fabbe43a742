//! A function's Prometheus series, as handles made once with its runtime: an invocation records
//! through them without building a key, allocating its labels or looking it up in the registry.

use metrics::{Counter, Gauge, Histogram};

/// The series every invocation of one function updates (all labelled with its name).
pub(crate) struct Meters {
    pub(crate) duration: Histogram,
    pub(crate) cold_starts: Counter,
    pub(crate) init_duration: Histogram,
    /// `lamina_requests_total` by outcome, in the order of [`OUTCOMES`].
    requests: [Counter; 4],
    /// A float that only grows: exported as a gauge, read as a counter.
    pub(crate) billed_gb_s: Gauge,
}

/// The outcomes `lamina_requests_total` counts.
const OUTCOMES: [&str; 4] = ["success", "timeout", "init_error", "error"];

impl Meters {
    /// The handles of `function`'s series, registered with the process's recorder.
    pub(crate) fn of(function: &str) -> Self {
        let name = function.to_owned();
        Self {
            duration: metrics::histogram!("lamina_invoke_duration_seconds", "function" => name.clone()),
            cold_starts: metrics::counter!("lamina_cold_starts_total", "function" => name.clone()),
            init_duration: metrics::histogram!("lamina_init_duration_seconds", "function" => name.clone()),
            requests: OUTCOMES.map(|outcome| {
                metrics::counter!("lamina_requests_total", "function" => name.clone(), "outcome" => outcome)
            }),
            billed_gb_s: metrics::gauge!("lamina_billed_gb_seconds_total", "function" => name),
        }
    }

    /// The request counter for `outcome`, one of [`OUTCOMES`].
    pub(crate) fn requests(&self, outcome: &str) -> &Counter {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(3);
        &self.requests[i]
    }
}
