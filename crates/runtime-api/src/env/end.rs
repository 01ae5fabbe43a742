//! An environment's end: with extensions, a graceful one first (the runtime's `SIGTERM`, their
//! `SHUTDOWN`), then every process killed and its cgroups removed.

use std::time::Duration;

use super::Environment;

/// The time the runtime has to leave after its `SIGTERM`, unless every process has left before:
/// what Lambda keeps for a runtime with an internal extension.
const RUNTIME_GRACE: Duration = Duration::from_millis(500);

impl Environment {
    /// Whether its destruction begins gracefully (its extensions registered), for which it runs
    /// up to [`crate::extensions::SHUTDOWN_BUDGET`] more.
    pub fn ends_gracefully(&self) -> bool {
        self.shutdown_due().is_some()
    }

    /// Why its extensions are told it ends, if it ends gracefully.
    fn shutdown_due(&self) -> Option<&'static str> {
        self.shutdown_reason
            .filter(|_| self.shared.extensions.graceful() && self.exit.borrow().is_none())
    }

    /// Destroys it without its extensions' `SHUTDOWN`.
    pub fn skip_shutdown(&mut self) {
        self.shutdown_reason = None;
    }

    /// Ends it gracefully, thawed, if extensions registered, as Lambda does: the runtime gets
    /// `SIGTERM` (through PID 1, which then reaps until every process has left, so that the
    /// runtime's exit does not end the extensions' time) and at least [`RUNTIME_GRACE`] to
    /// leave, and the extensions registered for it `SHUTDOWN` and their time. Then kills every
    /// process of the environment (lifting its CPU quota first, so that they die at once) and
    /// removes its cgroups.
    pub async fn destroy(mut self) {
        if let Some(reason) = self.shutdown_due() {
            self.gate.claim(self.kernel.as_ref()).await;
            // A watcher, where PID 1 was not handed over, would take the signal as its end.
            let drained = self.ctl.is_none() && self.process.drain().is_ok();
            // The sandbox's exit (every process gone, once drained) ends either wait.
            let grace = if drained {
                RUNTIME_GRACE
            } else {
                Duration::ZERO
            };
            // What the extensions' subscriptions hold goes out before their `SHUTDOWN`.
            self.shared
                .telemetry
                .flush(crate::telemetry::FLUSH_LIMIT)
                .await;
            let extensions = self.shared.extensions.shut_down(reason);
            let graceful = async { tokio::join!(extensions, tokio::time::sleep(grace)) };
            let mut exit = self.exit.clone();
            tokio::select! {
                _ = graceful => {}
                _ = exit.wait_for(|e| e.is_some()) => {}
            }
        }
        self.gate.close();
        self.server.abort();
        let cg = self.cgroup.take();
        let k = self.kernel.clone();
        let process = self.process.clone();
        let (k2, cg2) = (k.clone(), cg.clone());
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(cg) = &cg2 {
                let _ = cg.kill_all(k2.as_ref());
            }
            let _ = process.kill();
        })
        .await;
        let exited =
            tokio::time::timeout(Duration::from_secs(5), self.exit.wait_for(|e| e.is_some()))
                .await
                .is_ok();
        let mut removed = true;
        if let Some(cg) = cg {
            removed = tokio::task::spawn_blocking(move || match cg.destroy(k.as_ref()) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "removing an environment's cgroups failed");
                    false
                }
            })
            .await
            .unwrap_or(false);
        }
        // The uid is free again only once nothing runs under it.
        if exited
            && removed
            && let (Some(range), Some(uid)) = (&self.executor.uids, self.uid.take())
        {
            range.give(uid);
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        // An environment dropped without `destroy` (an error while starting, a runtime shutting
        // down) must not outlive its owner. Without cgroups, closing the control socket makes
        // its watcher kill the sandbox; with them (PID 1 handed over, no watcher), the groups
        // are killed and removed, and the uid given back, off this thread.
        self.gate.close();
        self.server.abort();
        let cg = self.cgroup.take();
        let uid = self.uid.take();
        if cg.is_none() && uid.is_none() {
            return;
        }
        let k = self.kernel.clone();
        let process = self.process.clone();
        let executor = self.executor.clone();
        let _ = std::thread::Builder::new()
            .name("env-teardown".into())
            .spawn(move || {
                if let Some(cg) = &cg {
                    let _ = cg.kill_all(k.as_ref());
                }
                let _ = process.kill();
                // Only an empty (removed) group proves nothing runs under the uid any more.
                if let Some(cg) = &cg
                    && cg.destroy(k.as_ref()).is_ok()
                    && let (Some(range), Some(uid)) = (&executor.uids, uid)
                {
                    range.give(uid);
                }
            });
    }
}
