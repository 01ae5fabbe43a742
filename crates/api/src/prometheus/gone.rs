//! Series forgotten lately, as tombstones: a series one covers is not registered again for
//! [`KEPT`], unless its name is taken again first ([`Tombstones::revive`]). An invocation, an
//! asynchronous attempt, a delivery or a request still running when its function, topic or API
//! was deleted would otherwise bring its series back when it ends, for good. [`KEPT`] outlasts
//! the longest of them (Lambda's 900 s timeout, with its INIT), so tombstones are bounded by
//! the deletions of the last [`KEPT`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use metrics::Key;

/// How long a tombstone stands.
pub(super) const KEPT: Duration = Duration::from_secs(20 * 60);

/// A set of labels forgotten, and until when it stays so.
type Tombstone = (Vec<(String, String)>, Instant);

#[derive(Default)]
pub(super) struct Tombstones {
    /// By the value of their first label (a function's name, a topic's ARN, an API's id).
    by_value: HashMap<String, Vec<Tombstone>>,
}

impl Tombstones {
    /// Stands a tombstone for the series whose labels include all of `labels`, and lets those
    /// past their time go.
    pub(super) fn bury(&mut self, labels: &[(&str, &str)], now: Instant) {
        self.prune(now);
        let Some((_, first)) = labels.first() else {
            return;
        };
        let owned = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let stones = self.by_value.entry(first.to_string()).or_default();
        stones.push((owned, now + KEPT));
    }

    /// Lets the tombstones past their time go.
    pub(super) fn prune(&mut self, now: Instant) {
        self.by_value.retain(|_, t| {
            t.retain(|(_, until)| *until > now);
            !t.is_empty()
        });
    }

    /// Takes down the tombstone of `labels` (their name is taken again).
    pub(super) fn revive(&mut self, labels: &[(&str, &str)]) {
        let Some((_, first)) = labels.first() else {
            return;
        };
        if let Some(stones) = self.by_value.get_mut(*first) {
            stones.retain(|(l, _)| {
                l.len() != labels.len() || !l.iter().zip(labels).all(|(a, b)| (&*a.0, &*a.1) == *b)
            });
            if stones.is_empty() {
                self.by_value.remove(*first);
            }
        }
    }

    /// Whether a tombstone standing at `now` covers the series `key`.
    pub(super) fn covers(&self, key: &Key, now: Instant) -> bool {
        key.labels().any(|label| {
            self.by_value.get(label.value()).is_some_and(|stones| {
                stones.iter().any(|(l, until)| {
                    *until > now && super::has_all(key, l.iter().map(|(k, v)| (&**k, &**v)))
                })
            })
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }
}
