//! The process-wide recorder behind `/metrics`: counters, gauges and histograms of fixed
//! buckets, kept in a `metrics-util` registry and rendered in Prometheus' text format.
//!
//! Series named by what a tenant makes (a function, a topic, an HTTP API) go with it
//! ([`forget`]), and are not made again by what still runs of it (`gone.rs`): a tenant creating
//! and deleting functions in a loop cannot grow what the server holds for its metrics. A
//! histogram counts its samples into buckets as they come, so it holds a few hundred bytes
//! whether or not anything scrapes it, and no thread has to fold samples in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use lamina_store::FunctionKey;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Label, Metadata, SharedString, Unit,
};
use metrics_util::registry::{Registry, Storage};

/// The upper bounds (in seconds) of every histogram's buckets, past `+Inf`: from half a
/// millisecond (a warm invocation) to Lambda's longest timeout.
pub const BOUNDS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0,
];

/// A histogram: a count per bucket (the last one `+Inf`) and the samples' sum.
#[derive(Debug, Default)]
pub struct Buckets {
    counts: [AtomicU64; BOUNDS.len() + 1],
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        // Counted nowhere, it would make the sum NaN for good.
        if value.is_nan() {
            return;
        }
        // Prometheus' `le` is inclusive: the first bound at least the value.
        let i = BOUNDS.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

/// What the registry makes for a new series.
#[derive(Debug)]
pub struct Store;

impl Storage<Key> for Store {
    type Counter = Arc<AtomicU64>;
    type Gauge = Arc<AtomicU64>;
    type Histogram = Arc<Buckets>;

    fn counter(&self, _: &Key) -> Self::Counter {
        Arc::default()
    }

    fn gauge(&self, _: &Key) -> Self::Gauge {
        Arc::default()
    }

    fn histogram(&self, _: &Key) -> Self::Histogram {
        Arc::default()
    }
}

mod gone;

/// The recorder (see the module's documentation).
pub struct Recorder {
    registry: Registry<Key, Store>,
    gone: RwLock<gone::Tombstones>,
    /// Until when some tombstone may stand, in milliseconds from `born` (0: none stands):
    /// otherwise registering a series takes no lock.
    standing_until: AtomicU64,
    born: Instant,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            registry: Registry::new(Store),
            gone: RwLock::default(),
            standing_until: AtomicU64::new(0),
            born: Instant::now(),
        }
    }
}

static INSTALLED: OnceLock<Arc<Recorder>> = OnceLock::new();

/// The recorder, installed as the process's once: a series made before it records nothing.
pub fn install() -> Arc<Recorder> {
    INSTALLED
        .get_or_init(|| {
            let recorder = Arc::new(Recorder::default());
            if metrics::set_global_recorder(Shared(recorder.clone())).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            recorder
        })
        .clone()
}

/// Forgets every series whose labels include all of `labels` (a deleted function's, topic's or
/// API's), in the installed recorder.
pub fn forget(labels: &[(&str, &str)]) {
    if let Some(r) = INSTALLED.get() {
        r.forget(labels);
    }
}

/// The labels naming a function in its series: its name, account and region (one name may be
/// taken in several accounts and regions of one server).
pub fn function_labels(account: &str, region: &str, name: &str) -> [Label; 3] {
    [
        Label::new("function", name.to_owned()),
        Label::new("account", account.to_owned()),
        Label::new("region", region.to_owned()),
    ]
}

/// A function's labels (see [`function_labels`]), then `extra`.
pub fn labels_of(key: &FunctionKey, extra: &[(&'static str, &'static str)]) -> Vec<Label> {
    let mut l =
        function_labels(key.account.as_str(), key.region.as_str(), key.name.as_str()).to_vec();
    l.extend(extra.iter().map(|(k, v)| Label::from_static_parts(k, v)));
    l
}

/// [`forget`] of a function's series.
pub fn forget_function(account: &str, region: &str, name: &str) {
    forget(&[("function", name), ("account", account), ("region", region)]);
}

/// Lets the series of `labels` be made again, forgotten or not (their name is taken again).
pub fn revive(labels: &[(&str, &str)]) {
    if let Some(r) = INSTALLED.get() {
        r.revive(labels);
    }
}

/// [`revive`] of a function's series.
pub fn revive_function(account: &str, region: &str, name: &str) {
    revive(&[("function", name), ("account", account), ("region", region)]);
}

/// The recorder as `metrics` holds it.
struct Shared(Arc<Recorder>);

impl metrics::Recorder for Shared {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if self.0.buried(key) {
            return Counter::noop();
        }
        self.0
            .registry
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        if self.0.buried(key) {
            return Gauge::noop();
        }
        self.0
            .registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if self.0.buried(key) {
            return Histogram::noop();
        }
        self.0
            .registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

fn has_all<'a>(key: &Key, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    labels
        .into_iter()
        .all(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v))
}

/// A function's name, account and region, as its series label it.
pub type FunctionLabels = (String, String, String);

impl Recorder {
    /// Forgets every series whose labels include all of `labels`; for [`gone::KEPT`], none is
    /// made again unless [`Recorder::revive`]d.
    pub fn forget(&self, labels: &[(&str, &str)]) {
        {
            let mut gone = self.tombstones();
            let now = Instant::now();
            gone.bury(labels, now);
            let until = self.ms(now + gone::KEPT);
            self.standing_until.fetch_max(until, Ordering::AcqRel);
        }
        let covered = |k: &Key| has_all(k, labels.iter().copied());
        self.registry.retain_counters(|k, _| !covered(k));
        self.registry.retain_gauges(|k, _| !covered(k));
        self.registry.retain_histograms(|k, _| !covered(k));
    }

    /// Lets the series of `labels` be made again.
    pub fn revive(&self, labels: &[(&str, &str)]) {
        let mut gone = self.tombstones();
        gone.revive(labels);
        if gone.is_empty() {
            self.standing_until.store(0, Ordering::Release);
        }
    }

    /// Whether a tombstone covers `key`: without a lock while none stands, under a read lock
    /// while some do.
    fn buried(&self, key: &Key) -> bool {
        let until = self.standing_until.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        let now = Instant::now();
        if self.ms(now) >= until {
            // Every tombstone has fallen: the next registrations take no lock.
            let mut gone = self.tombstones();
            gone.prune(now);
            if gone.is_empty() {
                self.standing_until.store(0, Ordering::Release);
                return false;
            }
            // One stood since.
            return gone.covers(key, now);
        }
        let gone = self.gone.read().unwrap_or_else(|e| e.into_inner());
        gone.covers(key, now)
    }

    fn tombstones(&self) -> std::sync::RwLockWriteGuard<'_, gone::Tombstones> {
        self.gone.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `t` in milliseconds from the recorder's birth, at least 1.
    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.born).as_millis() as u64 + 1
    }

    /// The functions some series names.
    pub fn functions(&self) -> std::collections::BTreeSet<FunctionLabels> {
        let mut out = std::collections::BTreeSet::new();
        let mut add = |k: &Key| {
            let get = |name: &str| {
                k.labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_owned())
            };
            if let (Some(f), Some(a), Some(r)) = (get("function"), get("account"), get("region")) {
                out.insert((f, a, r));
            }
        };
        self.registry.visit_counters(|k, _| add(k));
        self.registry.visit_histograms(|k, _| add(k));
        out
    }

    /// Every series, in Prometheus' text format, sorted by name and labels.
    pub fn render(&self) -> String {
        let mut counters = BTreeMap::<String, Vec<(String, u64)>>::new();
        self.registry.visit_counters(|k, c| {
            let v = c.load(Ordering::Relaxed);
            counters
                .entry(k.name().to_owned())
                .or_default()
                .push((labels(k.labels()), v));
        });
        let mut gauges = BTreeMap::<String, Vec<(String, f64)>>::new();
        self.registry.visit_gauges(|k, g| {
            let v = f64::from_bits(g.load(Ordering::Relaxed));
            gauges
                .entry(k.name().to_owned())
                .or_default()
                .push((labels(k.labels()), v));
        });
        let mut histograms = BTreeMap::<String, Vec<(Vec<Label>, Arc<Buckets>)>>::new();
        self.registry.visit_histograms(|k, h| {
            let l = k.labels().cloned().collect();
            histograms
                .entry(k.name().to_owned())
                .or_default()
                .push((l, h.clone()));
        });
        let mut out = String::new();
        for (name, mut series) in counters {
            series.sort();
            let _ = writeln!(out, "# TYPE {name} counter");
            for (l, v) in series {
                let _ = writeln!(out, "{name}{l} {v}");
            }
        }
        for (name, mut series) in gauges {
            series.sort_by(|a, b| a.0.cmp(&b.0));
            gauge(&mut out, &name, series);
        }
        for (name, mut series) in histograms {
            series.sort_by_cached_key(|(l, _)| labels(l.iter()));
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (l, h) in series {
                histogram(&mut out, &name, &l, &h);
            }
        }
        out
    }
}

/// Writes a gauge's series, `(rendered labels, value)`, with its type line.
pub fn gauge(out: &mut String, name: &str, series: impl IntoIterator<Item = (String, f64)>) {
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (l, v) in series {
        let _ = writeln!(out, "{name}{l} {}", number(v));
    }
}

/// Writes a histogram's series: its cumulative buckets, sum and count.
fn histogram(out: &mut String, name: &str, l: &[Label], h: &Buckets) {
    let mut total = 0;
    for (i, c) in h.counts.iter().enumerate() {
        total += c.load(Ordering::Relaxed);
        let le = Label::new(
            "le",
            BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| number(*b)),
        );
        let _ = writeln!(
            out,
            "{name}_bucket{} {total}",
            labels(l.iter().chain([&le]))
        );
    }
    let plain = labels(l.iter());
    let sum = f64::from_bits(h.sum.load(Ordering::Relaxed));
    let _ = writeln!(out, "{name}_sum{plain} {}", number(sum));
    let _ = writeln!(out, "{name}_count{plain} {total}");
}

/// `{k="v",...}` with Prometheus' escapes, or nothing for no labels.
pub fn labels<'a>(labels: impl Iterator<Item = &'a Label>) -> String {
    let mut out = String::new();
    for l in labels {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push_str(l.key());
        out.push_str("=\"");
        for c in l.value().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !out.is_empty() {
        out.push('}');
    }
    out
}

/// A sample value as Prometheus reads it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests;
