//! The scheduler's entries of functions: what they hold, for metrics, and a deleted function's
//! entry forgotten once it holds nothing: no environment (idle, busy or finishing), no caller
//! waiting, no reservation. Otherwise each function ever deleted would keep its entry (its
//! scale-up tokens, its retirements) for the server's life, and a tenant creating and deleting
//! functions in a loop would grow the server's memory without bound. Nothing is lost by it: with
//! no environment left, the retirements guard nothing, and a function made again under the name
//! starts afresh, as a new function does. A function admitted since its deletion (made again) is
//! not deleted any more: its entry stays, with its scale-up tokens.

use super::{Function, Scheduler, State};

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

impl Function {
    fn holds_nothing(&self) -> bool {
        self.deleted
            && self.in_flight == 0
            && self.idle.is_empty()
            && self.reserved.is_none()
            && self.finishing.is_empty()
    }
}

impl State {
    /// Forgets `function_arn`'s entry if its function was deleted and it holds nothing.
    pub(super) fn prune(&mut self, function_arn: &str) {
        if self
            .functions
            .get(function_arn)
            .is_some_and(Function::holds_nothing)
        {
            self.functions.remove(function_arn);
        }
    }
}
