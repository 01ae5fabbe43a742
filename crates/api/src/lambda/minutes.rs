//! The in-memory side of the metric history: what each function did in the current minute,
//! counted on the invoke path and taken out by the server's flusher every few seconds.
//!
//! One owner of the state: a mutex over a map from function to its open minutes. An invocation
//! takes the lock twice (when it starts, to count itself in flight, and when it ends, to add its
//! outcome to its minute), each time for an O(1) update with no allocation once the function
//! has a slot for the minute, and never awaits while holding it. What was counted but not yet
//! flushed (at most one flush interval) is lost if the process is killed: these are not
//! acknowledged writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lamina_store::{FunctionKey, MINUTE_MS, MetricSlot};

/// The open minutes of every function with traffic since the last flush.
#[derive(Default)]
pub struct Minutes {
    live: Mutex<HashMap<FunctionKey, Live>>,
}

/// One function's state: invocations in flight, and counts per minute since the last flush
/// (one minute, or two across a minute's turn).
#[derive(Default)]
struct Live {
    in_flight: u64,
    slots: Vec<(i64, MetricSlot)>,
}

/// How one request ended, as the history counts it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// It ran (a success or an error); throttles did not.
    pub invoked: bool,
    pub error: bool,
    pub throttled: bool,
    pub cold_start: bool,
    /// The invoke phase's duration, if it ran.
    pub duration_ms: Option<f64>,
    /// Memory MB × billed ms.
    pub mb_ms: u64,
}

/// An invocation counted in flight; [`InFlight::finish`] adds its outcome, dropping it
/// unfinished (a cancelled request) only ends it.
pub(crate) struct InFlight {
    minutes: Arc<Minutes>,
    key: FunctionKey,
    /// Invocations of the function in flight when this one started, itself included.
    level: u64,
    done: bool,
}

impl Minutes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FunctionKey, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once every invocation counted in flight has ended (its usage handed on to the
    /// usage sink): at a graceful stop, after the last requests were answered. A synchronous
    /// invocation ends after its caller has its answer, when its runtime asks for the next event.
    pub async fn all_ended(&self) {
        while self.lock().values().any(|l| l.in_flight > 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Counts an invocation of `key` in flight.
    pub(crate) fn start(self: &Arc<Self>, key: &FunctionKey) -> InFlight {
        let mut live = self.lock();
        let entry = match live.get_mut(key) {
            Some(e) => e,
            None => live.entry(key.clone()).or_default(),
        };
        entry.in_flight += 1;
        InFlight {
            minutes: Arc::clone(self),
            key: key.clone(),
            level: entry.in_flight,
            done: false,
        }
    }

    /// Takes every count since the last flush: `(function, minute start, counts)`. Functions
    /// with nothing in flight are forgotten.
    pub fn drain(&self) -> Vec<(FunctionKey, i64, MetricSlot)> {
        let mut live = self.lock();
        let mut out = Vec::new();
        for (key, l) in live.iter_mut() {
            out.extend(l.slots.drain(..).map(|(t, s)| (key.clone(), t, s)));
        }
        live.retain(|_, l| l.in_flight > 0);
        out
    }

    /// Invocations in flight now, per function of one account and region (those with none are
    /// left out).
    pub fn in_flight(&self, account: &str, region: &str) -> Vec<(String, u64)> {
        self.lock()
            .iter()
            .filter(|(k, l)| {
                l.in_flight > 0 && k.account.as_str() == account && k.region.as_str() == region
            })
            .map(|(k, l)| (k.name.as_str().to_owned(), l.in_flight))
            .collect()
    }

    /// Puts back counts a flush could not write, to go with the next one.
    pub fn restore(&self, rows: Vec<(FunctionKey, i64, MetricSlot)>) {
        let mut live = self.lock();
        for (key, t, slot) in rows {
            live.entry(key).or_default().add(t, &slot);
        }
    }
}

/// What the history counts of an invocation's result and its usage record (the same outcome
/// `lamina_requests_total` counts: anything but `success` is an error).
/// `ran`: whether it was a cold start, and its duration, if it ran.
pub(crate) fn sample_of(
    ran: Option<(bool, f64)>,
    throttled: bool,
    usage: Option<&lamina_store::UsageRecord>,
) -> Sample {
    let mut s = Sample {
        throttled,
        ..Sample::default()
    };
    if let Some((cold, duration_ms)) = ran {
        s.cold_start = cold;
        s.duration_ms = Some(duration_ms);
    }
    if let Some(u) = usage {
        s.invoked = true;
        s.error = u.outcome != "success";
        s.mb_ms = u.memory_mb as u64 * u.billed_ms;
    }
    s
}

impl Live {
    /// The counts of the minute starting at `t`.
    fn slot(&mut self, t: i64) -> &mut MetricSlot {
        let i = match self.slots.iter().position(|(m, _)| *m == t) {
            Some(i) => i,
            None => {
                self.slots.push((t, MetricSlot::default()));
                self.slots.len() - 1
            }
        };
        &mut self.slots[i].1
    }

    fn add(&mut self, t: i64, other: &MetricSlot) {
        self.slot(t).merge(other);
    }
}

impl InFlight {
    /// Ends the invocation and adds `sample` to the current minute.
    pub(crate) fn finish(mut self, sample: Sample) {
        self.done = true;
        let minute = lamina_model::now_millis().div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut live = self.minutes.lock();
        let Some(l) = live.get_mut(&self.key) else {
            return;
        };
        l.in_flight = l.in_flight.saturating_sub(1);
        let s = l.slot(minute);
        if sample.invoked {
            s.invocations += 1;
            s.concurrency_max = s.concurrency_max.max(self.level);
        }
        s.errors += sample.error as u64;
        s.throttles += sample.throttled as u64;
        s.cold_starts += sample.cold_start as u64;
        s.mb_ms += sample.mb_ms;
        if let Some(ms) = sample.duration_ms {
            s.durations.record(ms);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done
            && let Some(l) = self.minutes.lock().get_mut(&self.key)
        {
            l.in_flight = l.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> FunctionKey {
        FunctionKey::parse("123456789012", "us-east-1", name).unwrap()
    }

    #[test]
    fn counts_outcomes_and_concurrency() {
        let m = Arc::new(Minutes::default());
        let k = key("f");
        let a = m.start(&k);
        let b = m.start(&k);
        a.finish(Sample {
            invoked: true,
            cold_start: true,
            duration_ms: Some(12.0),
            mb_ms: 128 * 12,
            ..Default::default()
        });
        b.finish(Sample {
            invoked: true,
            error: true,
            duration_ms: Some(3.0),
            mb_ms: 128 * 3,
            ..Default::default()
        });
        m.start(&k).finish(Sample {
            throttled: true,
            ..Default::default()
        });
        drop(m.start(&k));
        let rows = m.drain();
        let total = rows.iter().fold(MetricSlot::default(), |mut t, r| {
            t.merge(&r.2);
            t
        });
        assert_eq!(
            (
                total.invocations,
                total.errors,
                total.throttles,
                total.cold_starts
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(total.concurrency_max, 2);
        assert_eq!(total.mb_ms, 128 * 15);
        assert_eq!(total.durations.total(), 2);
        assert!(m.drain().is_empty());
        let n = rows.len();
        m.restore(rows);
        assert_eq!(m.drain().len(), n);
    }
}
