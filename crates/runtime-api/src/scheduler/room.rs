//! An environment torn down after its invocation (a timeout, a crash, a runtime that exited):
//! Lambda counts concurrency as requests in flight, so the invocation's concurrency goes back
//! as soon as it has ended; the environment's memory and `/tmp` stay counted until it is gone.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, mpsc};

use super::{Scheduler, Slot, State, lock};
use crate::Environment;

/// Destroys each environment the scheduler discards, in a task of its own. One sent with its
/// room still counted (it ends gracefully first, running meanwhile) gives it back once gone, and
/// wakes the callers waiting for room.
pub(super) fn destroy_doomed(
    mut doomed: mpsc::UnboundedReceiver<(Environment, bool)>,
    state: Weak<Mutex<State>>,
    released: Arc<Notify>,
) {
    tokio::spawn(async move {
        while let Some((env, counted)) = doomed.recv().await {
            let (state, released) = (state.clone(), released.clone());
            // Given back however the destruction ends (a panic, a runtime shutting down).
            let counted = counted.then(|| Counted {
                state,
                released,
                memory_mb: env.memory_mb(),
                tmp_mb: env.tmp_mb(),
            });
            tokio::spawn(async move {
                env.destroy().await;
                drop(counted);
            });
        }
    });
}

/// The memory and `/tmp` of an environment being destroyed: given back when dropped.
pub struct Room {
    sched: Scheduler,
    memory_mb: u32,
    tmp_mb: u32,
}

/// The room of an environment being destroyed by [`destroy_doomed`], given back when dropped.
struct Counted {
    state: Weak<Mutex<State>>,
    released: Arc<Notify>,
    memory_mb: u32,
    tmp_mb: u32,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            give_back(
                &mut lock(&state),
                &self.released,
                self.memory_mb,
                self.tmp_mb,
            );
        }
    }
}

impl Scheduler {
    /// Gives back the concurrency of an invocation whose environment will not serve again; the
    /// environment's room goes back when the [`Room`] drops, once it is destroyed. `init_ok`
    /// and `finishing` are as for [`Scheduler::release`].
    pub fn release_discarding(
        &self,
        slot: Slot,
        reserved: bool,
        init_ok: Option<bool>,
        finishing: bool,
    ) -> Room {
        let mut state = self.state();
        self.ending(&mut state, &slot, reserved, init_ok, finishing);
        if let Some(f) = state.functions.get_mut(&slot.function_arn) {
            f.finishing.settle(&slot);
        }
        state.end_in_flight(&slot, reserved);
        state.prune(&slot.function_arn);
        Room {
            sched: self.clone(),
            memory_mb: slot.memory_mb,
            tmp_mb: slot.tmp_mb,
        }
    }
}

impl Scheduler {
    /// What every end of an invocation settles first: its mark as finishing, the callers
    /// waiting for room (woken once the state is unlocked), and its INIT's outcome.
    pub(super) fn ending(
        &self,
        state: &mut super::State,
        slot: &Slot,
        reserved: bool,
        init_ok: Option<bool>,
        finishing: bool,
    ) {
        if finishing {
            state.unmark(slot, reserved);
        }
        if state.waiting_for_room > 0 {
            self.released.notify_waiters();
        }
        if let Some(ok) = init_ok
            && let Some(f) = state.functions.get_mut(&slot.function_arn)
        {
            f.init_failed = !ok;
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        give_back(
            &mut self.sched.state(),
            &self.sched.released,
            self.memory_mb,
            self.tmp_mb,
        );
    }
}

/// Gives back an environment's room, and wakes the callers waiting for room.
fn give_back(state: &mut State, released: &Notify, memory_mb: u32, tmp_mb: u32) {
    state.forget(memory_mb, tmp_mb);
    if state.waiting_for_room > 0 {
        released.notify_waiters();
    }
}
