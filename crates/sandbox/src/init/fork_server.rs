//! The fork server: `sandbox-init` started once per server, which forks every later `sandbox-init`
//! rather than the server executing a new one (see `spawner.rs` for why).
//!
//! Its descriptor 0 is a `SOCK_SEQPACKET` socket to the server, and it holds nothing else of the
//! server's. Each message from the server carries the three standard descriptors of a sandbox to
//! start: its control socket, and its output twice. The fork server forks a child with them as its
//! descriptors 0, 1 and 2 and nothing else, which goes on as a freshly executed `sandbox-init`
//! would. The child is the server's, not the fork server's (`CLONE_PARENT`): the server waits for it
//! as it did for one it executed. The answer is the child's pid (negative: an `errno`) with a
//! pidfd of it. The fork server exits when the server hangs up.
//!
//! The fork server stays single-threaded, so a fork of it is as sound as a fork of a fresh process.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::CloneArgs;
use crate::fdpass;

/// Set (to anything) in the environment of the `sandbox-init` that is to be the fork server.
pub const ENV: &str = "LAMINA_FORK_SERVER";

/// Serves the server on descriptor 0 until it hangs up.
pub(super) fn serve() -> ! {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"sandbox-forker".as_ptr()) };
    // At the server's own priority, which every sandbox inherits: the thread of the server that
    // started this process may have run at another.
    let server_pid = rustix::process::getppid();
    if let Ok(nice) = rustix::process::getpriority_process(server_pid) {
        let _ = rustix::process::setpriority_process(None, nice);
    }
    // Nothing of the server's but the socket (and its standard output and error, /dev/null).
    super::close_from(3);
    // SAFETY: descriptor 0 is the socket the server passed as standard input, owned by nobody
    // else in this process.
    let server = unsafe { OwnedFd::from_raw_fd(0) };
    loop {
        let mut byte = [0u8; 1];
        let fds = match fdpass::recv_fds(&server, &mut byte) {
            Ok((0, fds)) if fds.is_empty() => std::process::exit(0),
            Ok((_, fds)) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => std::process::exit(0),
        };
        let answer = match <[OwnedFd; 3]>::try_from(fds) {
            Ok(stdio) => fork(stdio),
            Err(_) => Err(libc::EINVAL),
        };
        let sent = match &answer {
            Ok((pid, pidfd)) => {
                fdpass::send_fds(server.as_raw_fd(), &pid.to_le_bytes(), &[pidfd.as_raw_fd()])
            }
            Err(errno) => fdpass::send_fds(server.as_raw_fd(), &(-errno).to_le_bytes(), &[]),
        };
        if sent.is_err() {
            // The server cannot be told of the child: it must not run unnamed.
            if let Ok((_, pidfd)) = &answer {
                let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
            }
            std::process::exit(0);
        }
    }
}

/// Forks a `sandbox-init` with `stdio` as its standard descriptors, a child of the server.
/// Returns its pid and a pidfd in the fork server; never returns in the child.
fn fork(stdio: [OwnedFd; 3]) -> Result<(i32, OwnedFd), i32> {
    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags: (libc::CLONE_PARENT | libc::CLONE_PIDFD) as u64,
        pidfd: &raw mut pidfd as u64,
        // With CLONE_PARENT the child's exit signal is the fork server's own (SIGCHLD), and clone3
        // wants none given.
        exit_signal: 0,
        ..CloneArgs::default()
    };
    let pid = super::clone3(&args);
    match pid {
        0 => child(stdio),
        p if p < 0 => Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)),
        // SAFETY: the kernel filled `pidfd` with a new descriptor, ours.
        p => Ok((p as i32, unsafe { OwnedFd::from_raw_fd(pidfd) })),
    }
}

/// The forked child: `stdio` becomes 0, 1 and 2, the fork server's socket and everything else goes,
/// and it runs as `sandbox-init`.
fn child(stdio: [OwnedFd; 3]) -> ! {
    for (target, fd) in stdio.iter().enumerate() {
        // SAFETY: dup2 onto a standard descriptor (over the fork server's socket, for 0); the
        // received descriptors are all above 2, so none is overwritten before it is copied.
        if unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) } < 0 {
            // SAFETY: leaving the child at once.
            unsafe { libc::_exit(125) }
        }
    }
    drop(stdio);
    super::sandbox()
}
