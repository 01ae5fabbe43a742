//! A function's Prometheus series, as handles made once with its runtime: an invocation records
//! through them without building a key, allocating its labels or looking it up in the registry.
//! A series is registered at its first sample, as the `metrics` macros would, so `/metrics`
//! shows no series a function never produced (no `error` count of a function that never
//! failed).

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Label};

use crate::prometheus::function_labels;

/// The series an invocation of one function updates (all labelled with its name, account and
/// region). They go with the function (`prometheus::forget_function`).
pub(crate) struct Meters {
    function: [Label; 3],
    duration: OnceLock<Histogram>,
    cold_starts: OnceLock<Counter>,
    init_duration: OnceLock<Histogram>,
    /// `lamina_requests_total` by outcome, in the order of [`OUTCOMES`].
    requests: [OnceLock<Counter>; 4],
    /// A float that only grows: exported as a gauge, read as a counter.
    billed_gb_s: OnceLock<Gauge>,
}

/// The outcomes `lamina_requests_total` counts.
const OUTCOMES: [&str; 4] = ["success", "timeout", "init_error", "error"];

impl Meters {
    /// The series of a function, none registered yet.
    pub(crate) fn of(account: &str, region: &str, name: &str) -> Self {
        Self {
            function: function_labels(account, region, name),
            duration: OnceLock::new(),
            cold_starts: OnceLock::new(),
            init_duration: OnceLock::new(),
            requests: Default::default(),
            billed_gb_s: OnceLock::new(),
        }
    }

    pub(crate) fn duration(&self) -> &Histogram {
        self.duration.get_or_init(|| {
            metrics::histogram!("lamina_invoke_duration_seconds", self.function.iter())
        })
    }

    pub(crate) fn cold_starts(&self) -> &Counter {
        self.cold_starts
            .get_or_init(|| metrics::counter!("lamina_cold_starts_total", self.function.iter()))
    }

    pub(crate) fn init_duration(&self) -> &Histogram {
        self.init_duration.get_or_init(|| {
            metrics::histogram!("lamina_init_duration_seconds", self.function.iter())
        })
    }

    /// The request counter for `outcome`, one of [`OUTCOMES`].
    pub(crate) fn requests(&self, outcome: &'static str) -> &Counter {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(3);
        self.requests[i].get_or_init(|| {
            let mut labels = self.function.to_vec();
            labels.push(Label::from_static_parts("outcome", OUTCOMES[i]));
            metrics::counter!("lamina_requests_total", labels)
        })
    }

    pub(crate) fn billed_gb_s(&self) -> &Gauge {
        self.billed_gb_s
            .get_or_init(|| metrics::gauge!("lamina_billed_gb_seconds_total", self.function.iter()))
    }
}
