//! The fork server: `sandbox-init` started once per server, which forks every later `sandbox-init`
//! rather than the server executing a new one (see `spawner.rs` for why).
//!
//! Its descriptor 0 is a `SOCK_SEQPACKET` socket to the server, and it holds nothing else of the
//! server's. Each message from the server carries the three standard descriptors of a sandbox to
//! start: its control socket, and its output twice. The fork server forks a child with them as its
//! descriptors 0, 1 and 2 and nothing else, which goes on as a freshly executed `sandbox-init`
//! would. The child is the server's, not the fork server's (`CLONE_PARENT`): the server waits for it
//! as it did for one it executed. The answer is the child's pid (negative: an `errno`) with a
//! pidfd of it.
//!
//! It also watches for the server's death. The server names the parents of its sandboxes' groups
//! (a message without descriptors, see [`guard_message`]); from then on, the sandboxes it forks
//! hand their PID 1 to the server and keep no watcher of their own (see `init.rs`). When the
//! socket hangs up or fails, the server has died (a server that stops the fork server kills it),
//! and once it has exited, the fork server kills what runs in those groups, frozen or not, and
//! removes them ([`crate::cgroup::sweep`]), as the next server would at its start; then it exits.
//! It holds a lock per parent meanwhile ([`groups_lock`]), which a new server on the same groups
//! waits for before it makes any.
//!
//! The fork server stays single-threaded, so a fork of it is as sound as a fork of a fresh process.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::CloneArgs;
use crate::cgroup::Layout;
use crate::fdpass;
use crate::kernel::LinuxKernel;

/// Whether this process is, or was forked by, a fork server that watches its server's groups:
/// such a `sandbox-init` hands PID 1 over to the server.
static GUARDING: AtomicBool = AtomicBool::new(false);

/// Whether a server's death is watched for this `sandbox-init` (see [`GUARDING`]).
pub(super) fn guarded() -> bool {
    GUARDING.load(Ordering::Relaxed)
}

/// The message that asks the fork server to watch the groups under `parent` in `layout`.
pub(crate) fn guard_message(layout: &Layout, parent: &str) -> Vec<u8> {
    let (kind, root) = match layout {
        Layout::V1 { root } => (b'1', root),
        Layout::V2 { root, subtree } => (if *subtree { b'3' } else { b'2' }, root),
    };
    let mut m = vec![b'g', kind];
    m.extend_from_slice(root.as_os_str().as_encoded_bytes());
    m.push(0);
    m.extend_from_slice(parent.as_bytes());
    m
}

/// The layout and parent of a [`guard_message`].
fn parse_guard(m: &[u8]) -> Option<(Layout, String)> {
    let (&kind, rest) = m.strip_prefix(b"g")?.split_first()?;
    let at = rest.iter().position(|&b| b == 0)?;
    let root = PathBuf::from(std::str::from_utf8(&rest[..at]).ok()?);
    let parent = std::str::from_utf8(&rest[at + 1..]).ok()?.to_owned();
    let layout = match kind {
        b'1' => Layout::V1 { root },
        b'2' | b'3' => Layout::V2 {
            root,
            subtree: kind == b'3',
        },
        _ => return None,
    };
    Some((layout, parent))
}

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
    // Readable once the server has exited: every descriptor it held is closed by then.
    let server_pidfd = server_pid
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let mut guard = Guard {
        groups: Vec::new(),
        locks: Vec::new(),
        server: server_pidfd,
    };
    loop {
        let mut msg = [0u8; 4096];
        let fds = match fdpass::recv_fds(&server, &mut msg) {
            // Hung up: the server is dead (one that stops this process kills it first).
            Ok((0, fds)) if fds.is_empty() => guard.server_gone(true),
            Ok((n, fds)) if fds.is_empty() => {
                guard.add(&msg[..n]);
                continue;
            }
            Ok((_, fds)) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A server that died with an answer unread resets the socket.
            Err(_) => guard.server_gone(false),
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
            guard.server_gone(false);
        }
    }
}

/// The groups this fork server watches, and what it holds while it does.
struct Guard {
    groups: Vec<(Layout, String)>,
    /// One lock per parent, held for this process's life, so that a new server on the same
    /// groups waits until this process has swept them (see [`groups_lock`]).
    locks: Vec<std::fs::File>,
    /// The server's pidfd, readable once it has exited.
    server: Option<OwnedFd>,
}

impl Guard {
    /// Takes a [`guard_message`].
    fn add(&mut self, m: &[u8]) {
        let Some(g) = parse_guard(m) else { return };
        if self.groups.contains(&g) {
            return;
        }
        // Not shared with the sandboxes forked from here: each closes it at once
        // (`close_from`), and the lock stays with this process's descriptor. One per parent; not
        // waited for (the server waited before it named the groups), so that a sweep still
        // running elsewhere never holds up a start.
        if !self.groups.iter().any(|(_, p)| *p == g.1)
            && let Ok(lock) = groups_lock(&g.1)
            && rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_ok()
        {
            self.locks.push(lock);
        }
        self.groups.push(g);
        GUARDING.store(true, Ordering::Relaxed);
    }

    /// The server cannot be talked to any more. Once it has exited (`hung_up`: it has; else wait
    /// a little, and leave a server that lives alone), kills what runs in its groups and
    /// removes them. Its descriptors are all closed by then, so that a PID 1 which found its
    /// control socket open was in its groups before the sweep. Exits.
    fn server_gone(&self, hung_up: bool) -> ! {
        let exited = hung_up || self.server.as_ref().is_some_and(|fd| readable(fd, 2000));
        if exited {
            if let Some(fd) = &self.server {
                readable(fd, 5000);
            }
            for (layout, parent) in &self.groups {
                crate::cgroup::sweep(&LinuxKernel, layout, parent);
            }
        }
        std::process::exit(0)
    }
}

/// Whether `fd` becomes readable within `ms` milliseconds.
fn readable(fd: &OwnedFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// The lock of the groups under `parent`: held by the fork server that watches them, taken by a
/// server before it sweeps and prepares them (see `lamina_runtime_api`'s `clean_start`).
pub fn groups_lock(parent: &str) -> std::io::Result<std::fs::File> {
    let path = groups_lock_path(parent);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Where [`groups_lock`] is.
pub fn groups_lock_path(parent: &str) -> PathBuf {
    PathBuf::from(format!("/run/lamina/groups-{parent}.lock"))
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
