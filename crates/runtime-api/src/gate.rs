//! The freezer gate of one environment: idle environments are frozen by the executor's sweeper
//! and thawed by the next invocation that takes them.

use lamina_sandbox::cgroup::Freezer;
use lamina_sandbox::kernel::Kernel;

const RUNNING: u8 = 0;
const IDLE: u8 = 1;
const FREEZING: u8 = 2;
const FROZEN: u8 = 3;
/// Being destroyed: never frozen again.
const CLOSED: u8 = 4;

/// Coordinates freezing an idle environment with taking it for an invocation.
///
/// Back-to-back invocations never touch the freezer: an environment is frozen only once it has
/// been idle for a while (by the executor's sweeper), and thawed only if it was.
#[derive(Debug)]
pub struct Gate {
    state: std::sync::atomic::AtomicU8,
    idle_since_ms: std::sync::atomic::AtomicI64,
    freezer: Option<Freezer>,
}

impl Gate {
    pub(crate) fn new(freezer: Option<Freezer>) -> Self {
        Self {
            state: std::sync::atomic::AtomicU8::new(RUNNING),
            idle_since_ms: std::sync::atomic::AtomicI64::new(0),
            freezer,
        }
    }

    /// When the environment last became idle, epoch ms.
    pub fn idle_since(&self) -> i64 {
        self.idle_since_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the environment idle (it is back in the pool).
    pub fn idle(&self) {
        self.idle_since_ms.store(
            lamina_model::now_millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.state.store(IDLE, std::sync::atomic::Ordering::Release);
    }

    /// Whether [`freeze_if_idle`](Self::freeze_if_idle) would freeze it now: idle, not yet
    /// frozen, since before `cutoff_ms`.
    pub fn wants_freezing(&self, cutoff_ms: i64) -> bool {
        use std::sync::atomic::Ordering;
        self.state.load(Ordering::Acquire) == IDLE
            && self.idle_since_ms.load(Ordering::Relaxed) <= cutoff_ms
    }

    /// Freezes the environment if it is still idle since before `cutoff_ms`. Blocking.
    pub fn freeze_if_idle(&self, k: &dyn Kernel, cutoff_ms: i64) {
        use std::sync::atomic::Ordering;
        if self.idle_since_ms.load(Ordering::Relaxed) > cutoff_ms {
            return;
        }
        if self
            .state
            .compare_exchange(IDLE, FREEZING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        // Its cgroup gone: the environment was destroyed since the sweeper took its gate.
        if let Some(f) = &self.freezer
            && let Err(e) = f.freeze(k)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "freezing an idle environment failed");
        }
        if self
            .state
            .compare_exchange(FREEZING, FROZEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
            && let Some(f) = &self.freezer
        {
            // Closed meanwhile: its destruction may have killed and thawed it before this
            // freeze, and frozen processes cannot die (cgroup v1), so it is thawed again.
            let _ = f.thaw(k);
        }
    }

    /// The environment is being destroyed: a freeze queued for it does nothing, and one under
    /// way thaws it again when done.
    pub(crate) fn close(&self) {
        self.state
            .store(CLOSED, std::sync::atomic::Ordering::Release);
    }

    /// Takes the environment for an invocation, thawing it if it was frozen.
    pub(crate) async fn claim(&self, k: &dyn Kernel) {
        use std::sync::atomic::Ordering;
        let mut tries = 0u32;
        loop {
            match self
                .state
                .compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) | Err(RUNNING) | Err(CLOSED) => return,
                Err(FROZEN) => {
                    if let Some(f) = &self.freezer
                        && let Err(e) = f.thaw(k)
                    {
                        tracing::warn!(error = %e, "thawing an environment failed");
                    }
                    self.state.store(RUNNING, Ordering::Release);
                    return;
                }
                // The sweeper is freezing it right now; this usually lasts well under a
                // millisecond, but the kernel may take up to the freezer's limit (a process in
                // uninterruptible sleep), so the worker is not kept spinning.
                Err(_) => {
                    tries += 1;
                    if tries < 64 {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_sandbox::kernel::RecordingKernel;

    #[test]
    fn only_an_idle_environment_past_the_cutoff_wants_freezing() {
        let k = RecordingKernel::default();
        let gate = Gate::new(None);
        let far = i64::MAX;
        assert!(!gate.wants_freezing(far), "running");
        gate.idle();
        let since = gate.idle_since();
        assert!(
            !gate.wants_freezing(since - 1),
            "idle, but not for long enough"
        );
        assert!(gate.wants_freezing(since));
        gate.freeze_if_idle(&k, since);
        assert!(!gate.wants_freezing(far), "already frozen");
    }

    #[test]
    fn a_closed_gate_is_never_frozen() {
        let k = RecordingKernel::default();
        let gate = Gate::new(None);
        gate.idle();
        let since = gate.idle_since();
        gate.close();
        assert!(!gate.wants_freezing(i64::MAX));
        gate.freeze_if_idle(&k, since);
        assert_eq!(
            gate.state.load(std::sync::atomic::Ordering::Relaxed),
            CLOSED
        );
    }
}
