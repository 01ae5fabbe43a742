//! How an environment's process ends: its exit, waited for without a thread, and whether the
//! kernel's OOM killer ended it.

use std::sync::Arc;

use lamina_sandbox::cgroup::Cgroup;
use lamina_sandbox::kernel::Kernel;
use tokio::sync::watch;

/// Waits for a process to exit without a thread: its pidfd becomes readable when it does.
pub(super) fn watch_exit(child: Arc<lamina_sandbox::Process>) -> watch::Receiver<Option<i32>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let polled = match child.pidfd() {
            Some(fd) => fd.try_clone_to_owned().and_then(|fd| {
                // SAFETY: `fd` is an owned copy of the pidfd, kept open by the AsyncFd until it
                // is dropped.
                unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)
            }),
            None => Err(std::io::Error::from(std::io::ErrorKind::Unsupported)),
        };
        let status = match polled {
            // It has exited: reaping it does not block.
            Ok(afd) if afd.readable().await.is_ok() => child.wait(),
            _ => tokio::task::spawn_blocking(move || child.wait())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
        };
        // As a shell reports it (a watcher did so too): the code, or 128 + the signal.
        let code = status.ok().and_then(|s| {
            use std::os::unix::process::ExitStatusExt as _;
            s.code().or_else(|| s.signal().map(|n| 128 + n))
        });
        let _ = tx.send(Some(code.unwrap_or(125)));
    });
    rx
}

/// Whether the kernel's OOM killer has struck in the environment's group.
pub(super) fn oom_killed(cgroup: Option<&Cgroup>, k: &dyn Kernel) -> bool {
    cgroup.is_some_and(|cg| cg.oom_kills(k).unwrap_or(0) > 0)
}
