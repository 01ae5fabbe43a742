//! The scheduler's entries of functions: what they hold, for metrics, and a deleted function's
//! entry forgotten once it holds nothing: no environment (idle, busy or finishing), no caller
//! waiting, no reservation. Otherwise each function ever deleted would keep its entry (its
//! scale-up tokens, its retirements) for the server's life, and a tenant creating and deleting
//! functions in a loop would grow the server's memory without bound. Nothing is lost by it: with
//! no environment left, the retirements guard nothing, and a function made again under the name
//! starts afresh, as a new function does. A function admitted since its deletion (made again) is
//! not deleted any more: its entry stays, with its scale-up tokens.

use std::sync::Arc;

use lamina_model::FunctionRef;

use super::{Account, Function, Scheduler, State};

/// A snapshot for metrics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub environments: usize,
    pub idle: usize,
    pub live_memory_mb: u64,
    pub live_tmp_mb: u64,
    /// In-flight invocations per function ARN.
    pub concurrency: Vec<(String, u32)>,
}

impl Scheduler {
    /// The entries of functions and of accounts (by region) held.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> (usize, usize) {
        let state = self.state();
        (state.functions.len(), state.accounts.len())
    }

    pub fn stats(&self) -> Stats {
        let state = self.state();
        Stats {
            environments: state.live,
            idle: state.functions.values().map(|f| f.idle.len()).sum(),
            live_memory_mb: state.live_memory_mb,
            live_tmp_mb: state.live_tmp_mb,
            concurrency: state
                .functions
                .iter()
                .map(|(k, f)| (k.to_string(), f.in_flight))
                .collect(),
        }
    }
}

/// Versions whose retirement a function remembers apart. Past them, the oldest retirement is
/// folded into the function's (`retired_all_at`): an environment of any version born before it
/// is then not kept, which costs a cold start at worst, where remembering each would let a
/// tenant publishing and deleting versions in a loop grow the entry without bound.
const RETIREMENTS_KEPT: usize = 64;

impl Function {
    /// When `version`'s environments last stopped being kept: its own retirement or the
    /// function's, the later.
    pub(super) fn retired(&self, version: &str) -> Option<std::time::Instant> {
        self.retired_at
            .get(version)
            .max(self.retired_all_at.as_ref())
            .copied()
    }

    /// Notes `version`'s retirement `at`, within [`RETIREMENTS_KEPT`].
    pub(super) fn retire_version(&mut self, version: &str, at: std::time::Instant) {
        self.retired_at.insert(version.into(), at);
        while self.retired_at.len() > RETIREMENTS_KEPT {
            let Some((oldest, when)) = self
                .retired_at
                .iter()
                .min_by_key(|(_, when)| **when)
                .map(|(v, when)| (v.clone(), *when))
            else {
                break;
            };
            self.retired_at.remove(&oldest);
            self.retired_all_at = self.retired_all_at.max(Some(when));
        }
    }

    fn holds_nothing(&self) -> bool {
        self.deleted
            && self.in_flight == 0
            && self.idle.is_empty()
            && self.reserved.is_none()
            && self.finishing.is_empty()
    }
}

impl Account {
    fn holds_nothing(&self) -> bool {
        let Account {
            reserved_total,
            finishing,
            unreserved_in_flight,
            unreserved_in_flight_async,
        } = self;
        *reserved_total == 0
            && *finishing == 0
            && *unreserved_in_flight == 0
            && *unreserved_in_flight_async == 0
    }
}

impl State {
    /// Forgets `function_arn`'s entry if its function was deleted and it holds nothing, and
    /// then its account's if that holds nothing either (as a missing entry would).
    pub(super) fn prune(&mut self, function_arn: &str) {
        if self
            .functions
            .get(function_arn)
            .is_some_and(Function::holds_nothing)
        {
            self.functions.remove(function_arn);
            if let Some(tell) = &self.forgotten {
                tell(function_arn);
            }
            if let Ok(FunctionRef {
                account: Some(account),
                region: Some(region),
                ..
            }) = FunctionRef::parse(function_arn)
            {
                let key: (Arc<str>, Arc<str>) = (account.as_str().into(), region.as_str().into());
                if self.accounts.get(&key).is_some_and(Account::holds_nothing) {
                    self.accounts.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A function whose versions are published and deleted a thousand times remembers a bounded
    /// number of retirements, and an environment of any version born before one it forgot is
    /// still not kept.
    #[test]
    fn retirements_are_bounded_and_none_is_lost() {
        let mut f = Function::default();
        let start = Instant::now();
        let at = |i: u64| start + Duration::from_millis(i);
        for i in 0..1000 {
            f.retire_version(&i.to_string(), at(i));
        }
        assert_eq!(f.retired_at.len(), RETIREMENTS_KEPT);
        for i in 0..1000 {
            let retired = f.retired(&i.to_string()).expect("retired");
            assert!(retired >= at(i), "version {i}'s retirement was lost");
        }
        // The latest are remembered apart: an environment of another version born since the
        // oldest of them is kept.
        assert_eq!(f.retired("999"), Some(at(999)));
        assert_eq!(
            f.retired("$LATEST"),
            Some(at(1000 - RETIREMENTS_KEPT as u64 - 1))
        );
    }
}
