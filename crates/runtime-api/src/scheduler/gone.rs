//! A deleted function's entry, forgotten once it holds nothing: no environment (idle, busy or
//! finishing), no caller waiting, no reservation. Otherwise each function ever deleted would
//! keep its entry (its scale-up tokens, its retirements) for the server's life, and a tenant
//! creating and deleting functions in a loop would grow the server's memory without bound.
//! Nothing is lost by it: with no environment left, the retirements guard nothing, and a
//! function made again under the name starts afresh, as a new function does.

use super::{Function, State};

impl Function {
    fn holds_nothing(&self) -> bool {
        self.retired_all_at.is_some()
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
