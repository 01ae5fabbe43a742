//! PID 1 handed over to the server: the outer `sandbox-init` forks it as the server's child
//! (`CLONE_PARENT`), sends the server its pid and a pidfd, and exits, so that an idle sandbox holds
//! one process of ours instead of two (each costs about 90 KiB of page tables, kernel stack and
//! pages, see BENCHMARKS.md). Only where the fork server watches the sandbox's groups for the
//! server's death (see `fork_server.rs`), which the outer process watched for otherwise.
//!
//! After the listener, the outer process always sends one 8-byte message on the control socket:
//! `pid1` and PID 1's pid (with its pidfd) once handed over, or `kept` when it stays the watcher.
//! PID 1 says nothing before the outer process has sent it and closed its end of `alive`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::{CLONE_INTO_CGROUP, CloneArgs};
use crate::fdpass;

/// Forks PID 1 as the server's child: born in `group` when the kernel can, else to join its groups
/// itself. Returns as [`super::fork_pid_one`] does, with the pidfd in this process; `None` when the
/// kernel refuses (before 5.7, or `clone3` filtered), and PID 1 is to be forked the usual way.
pub(super) fn fork(
    group: Option<&std::fs::File>,
) -> Option<(libc::pid_t, bool, bool, Option<OwnedFd>)> {
    let tries = [group, None];
    let n = if group.is_some() { 2 } else { 1 };
    for &g in &tries[..n] {
        let mut pidfd: RawFd = -1;
        let args = CloneArgs {
            flags: (libc::CLONE_PARENT | libc::CLONE_PIDFD) as u64
                | if g.is_some() { CLONE_INTO_CGROUP } else { 0 },
            pidfd: &raw mut pidfd as u64,
            // With CLONE_PARENT the exit signal is this process's own, and clone3 wants none.
            exit_signal: 0,
            cgroup: g.map_or(0, |g| g.as_raw_fd() as u64),
            ..CloneArgs::default()
        };
        match super::clone3(&args) {
            0 => return Some((0, g.is_some(), true, None)),
            p if p > 0 => {
                // SAFETY: the kernel filled `pidfd` with a new descriptor, ours.
                let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
                return Some((p as libc::pid_t, g.is_some(), true, Some(pidfd)));
            }
            _ => {}
        }
    }
    None
}

/// Tells the server that PID 1 stays this process's child, and this process its watcher.
pub(super) fn keep(ctl: &UnixStream) -> io::Result<()> {
    fdpass::send_fds(ctl.as_raw_fd(), b"kept\0\0\0\0", &[])
}

/// Tells the server that PID 1 (`pid`, held by `pidfd`) is its child now.
pub(super) fn tell(ctl: &UnixStream, pid: libc::pid_t, pidfd: &OwnedFd) -> io::Result<()> {
    let mut m = *b"pid1\0\0\0\0";
    m[4..].copy_from_slice(&(pid as u32).to_le_bytes());
    fdpass::send_fd(ctl.as_raw_fd(), &m, pidfd.as_raw_fd())
}

/// In PID 1: waits until the outer process has closed its end of `alive` (it has told the server,
/// or failed to and killed this process).
pub(super) fn wait_closed(alive: &OwnedFd) {
    let mut byte = [0u8; 1];
    // SAFETY: a read into a local buffer from a descriptor this process owns.
    while unsafe { libc::read(alive.as_raw_fd(), byte.as_mut_ptr().cast(), 1) } < 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// Whether the server's end of the control socket has closed (the server died).
pub(super) fn hung_up(ctl: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: ctl.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let ready = unsafe { libc::poll(&mut p, 1, 0) } > 0;
    ready && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}
