//! Where the server starts `sandbox-init` processes: forked by a fork server.
//!
//! Executing `lamina-init` for every sandbox cost about 0.35 ms of CPU before its first
//! instruction of ours: the `execve`, and glibc's start-up, whose detection of the CPU's features
//! and caches runs about a hundred `cpuid` instructions. On a virtual machine each is an exit to
//! the hypervisor (3.7 µs on the machine of BENCHMARKS.md). The fork server is `lamina-init` executed
//! once, marked by [`crate::init::FORK_SERVER_ENV`]; it forks every later `sandbox-init` (about
//! 0.12 ms), already past that start-up (see `init/fork_server.rs`). Each is forked with
//! `CLONE_PARENT`, so it is the server's child as an executed one was, and comes back with a
//! pidfd, through which the server waits for it and kills it ([`Process`]).
//!
//! The fork server has nothing of the server's but its socket. A start sends it the new process's
//! three standard descriptors (`SCM_RIGHTS`), and the child keeps nothing else: a descriptor the
//! server opened without close-on-exec (a library's, say) never reaches a sandbox, and a start
//! copies a handful of descriptors however many the server holds (a fork of the server copied
//! its whole table, about seven descriptors per environment: 1 ms per start with a thousand).
//!
//! The fork server also watches for this process's death: told the parents of the server's
//! groups ([`guard_groups`], replayed to every fork server started later), it kills what runs in
//! them once its socket hangs up or fails and this process has exited (stopping it kills it
//! first), holding a lock on them meanwhile that a server starting on the same groups waits for
//! ([`wait_for_sweep`]). It runs in a process group of its own, and every `sandbox-init` in a
//! session of its own. With that, a sandbox hands its PID 1 over to the server and keeps no
//! watcher process; the [`Process`] a start returns becomes PID 1's in [`crate::prepare`].
//!
//! Where the fork server cannot be had (it did not start, or died, or its kernel refuses `clone3`
//! with `CLONE_PARENT | CLONE_PIDFD`), the process is executed from the calling thread, and
//! `sandbox-init` closes what it inherited beyond its standard descriptors itself.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};

use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

use crate::fdpass;

/// A started `sandbox-init`, a child of this process, held by a pidfd: what it is signalled and
/// waited through cannot be another process that reused its pid. Once reaped, its status is kept
/// and it is never signalled again.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    /// `None` on kernels without pidfds (before 5.4): signalled and waited for by pid.
    pidfd: Option<OwnedFd>,
    status: OnceLock<ExitStatus>,
}

impl Process {
    pub(crate) fn new(pid: u32, pidfd: Option<OwnedFd>) -> Self {
        Self {
            pid,
            pidfd,
            status: OnceLock::new(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The pidfd, readable once the process has exited (`None` on kernels without pidfds).
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(AsFd::as_fd)
    }

    /// Sends it `SIGKILL` (nothing, once it has been reaped).
    pub fn kill(&self) -> io::Result<()> {
        self.send(Signal::KILL)
    }

    /// Tells it, a handed-over PID 1, that its environment ends ([`crate::DRAIN_SIGNAL`]):
    /// nothing, once it has been reaped.
    pub fn drain(&self) -> io::Result<()> {
        const _: () = assert!(crate::DRAIN_SIGNAL == libc::SIGUSR1);
        self.send(Signal::USR1)
    }

    /// Sends it `signal`, unless it has been reaped (its pid may be another's by then).
    fn send(&self, signal: Signal) -> io::Result<()> {
        if self.status.get().is_some() {
            return Ok(());
        }
        let sent = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            None => rustix::process::kill_process(self.rustix_pid(), signal),
        };
        match sent {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Kills it and reaps it, whatever either says: for a process given up on.
    pub fn kill_and_reap(&self) {
        let _ = self.kill();
        let _ = self.wait();
    }

    /// Waits for it to exit and reaps it.
    pub fn wait(&self) -> io::Result<ExitStatus> {
        self.waitid(WaitIdOptions::EXITED)?
            .ok_or_else(|| io::Error::other("waitid returned no status"))
    }

    /// Reaps it if it has exited.
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.waitid(WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
    }

    fn waitid(&self, options: WaitIdOptions) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status.get() {
            return Ok(Some(*status));
        }
        let id = match &self.pidfd {
            Some(fd) => WaitId::PidFd(fd.as_fd()),
            None => WaitId::Pid(self.rustix_pid()),
        };
        let status = loop {
            match rustix::process::waitid(id.clone(), options) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r?,
            }
        };
        // As `wait` encodes it: the exit code in the second byte, or the signal.
        let status = status.map(|s| match (s.exit_status(), s.terminating_signal()) {
            (Some(code), _) => ExitStatus::from_raw((code & 0xff) << 8),
            (None, Some(signal)) => {
                ExitStatus::from_raw(signal | if s.dumped() { 0x80 } else { 0 })
            }
            (None, None) => ExitStatus::from_raw(0x7f),
        });
        Ok(status.map(|s| *self.status.get_or_init(|| s)))
    }

    fn rustix_pid(&self) -> Pid {
        Pid::from_raw(self.pid as i32).expect("a child's pid is positive")
    }

    /// Holds an executed child by a pidfd instead (by its pid where the kernel has none).
    fn from_child(child: std::process::Child) -> io::Result<Self> {
        let pid = child.id();
        let raw = Pid::from_raw(pid as i32).expect("a child's pid is positive");
        match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
            Ok(pidfd) => Ok(Self::new(pid, Some(pidfd))),
            Err(rustix::io::Errno::NOSYS) => Ok(Self::new(pid, None)),
            Err(e) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                Err(e.into())
            }
        }
    }
}

/// Starts `init_exe sandbox-init` with `stdio` as its descriptors 0, 1 and 2: forked by the
/// fork server, or executed from this thread without one.
pub fn spawn(init_exe: &Path, stdio: [BorrowedFd<'_>; 3]) -> io::Result<Process> {
    let mut server = FORK_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*server, ForkServer::NotStarted) {
        *server = match Conn::start(init_exe) {
            Ok(conn) => ForkServer::Running(conn),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the sandboxes' fork server; executing every sandbox-init instead");
                ForkServer::Unavailable
            }
        };
    }
    if let ForkServer::Running(conn) = &*server
        && conn.exe == init_exe
    {
        match conn.fork(stdio) {
            Ok(process) => return Ok(process),
            // Out of processes or memory, say: the start fails, as an `execve` would.
            Err(Failure::Failed(e)) => return Err(e),
            Err(Failure::Refused(e)) => {
                tracing::warn!(error = %e, "the kernel refuses the fork server's fork; executing every sandbox-init instead");
                *server = ForkServer::Unavailable;
            }
            // Gone before it had the start: started again at the next start.
            Err(Failure::Gone(e)) => {
                tracing::warn!(error = %e, "the sandboxes' fork server is gone; starting another");
                *server = ForkServer::NotStarted;
            }
            // Gone after: it may have forked a child that cannot be named, which another
            // `sandbox-init` on the same descriptors would compete with. The start fails; the
            // child, if any, exits when its control socket closes.
            Err(Failure::Lost(e)) => {
                tracing::warn!(error = %e, "the sandboxes' fork server did not answer; starting another");
                *server = ForkServer::NotStarted;
                return Err(e);
            }
        }
    }
    drop(server);
    execute(init_exe, stdio, false).and_then(Process::from_child)
}

/// Has the fork server kill what runs in the groups under `parent` (and remove them) should this
/// process die; every fork server started later is told too. From then on, the sandboxes it forks
/// hand their PID 1 over to this process and keep no watcher of their own.
pub fn guard_groups(layout: &crate::cgroup::Layout, parent: &str) {
    {
        let mut guarded = GUARDED.lock().unwrap_or_else(|e| e.into_inner());
        if guarded.iter().any(|(l, p)| l == layout && p == parent) {
            return;
        }
        guarded.push((layout.clone(), parent.to_owned()));
    }
    let server = FORK_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let ForkServer::Running(conn) = &*server {
        conn.guard(layout, parent);
    }
}

/// Forgets the groups under `parent` (their server has stopped and swept them): no later fork
/// server watches them. Their lock file goes if nobody holds it (a fork server that locked it
/// just before, another executor's in this process, still guards them, and keeps it).
pub fn unguard_groups(parent: &str) {
    GUARDED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(_, p)| p != parent);
    if let Ok(lock) = crate::init::groups_lock(parent)
        && rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
    {
        // Removed while locked: whoever opens the path next makes a new file, and no holder
        // of this one remains.
        let _ = std::fs::remove_file(crate::init::groups_lock_path(parent));
    }
}

/// Waits (at most `limit`) until no fork server of another process holds the lock of the groups
/// under `parent`: one whose server died may still be sweeping them, which would kill what a new
/// server makes there meanwhile (a live server's, on the same data directory, holds it too).
/// False when one still does.
pub fn wait_for_sweep(parent: &str, limit: std::time::Duration) -> bool {
    // This process's own fork server holds the lock for as long as it runs.
    if GUARDED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(_, p)| p == parent)
    {
        return true;
    }
    let Ok(lock) = crate::init::groups_lock(parent) else {
        return true;
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            // Released with the file.
            Ok(()) => return true,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(_) => return false,
        }
    }
}

/// What [`guard_groups`] was given, for every fork server.
static GUARDED: Mutex<Vec<(crate::cgroup::Layout, String)>> = Mutex::new(Vec::new());

/// Stops the fork server, if one runs (the next start starts another). Called as a server shuts
/// down: the fork server would otherwise outlive it in the server's cgroup, which a server on
/// cgroup v2 removes last.
pub fn stop_fork_server() {
    let mut server = FORK_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*server, ForkServer::Running(_)) {
        *server = ForkServer::NotStarted;
    }
}

static FORK_SERVER: Mutex<ForkServer> = Mutex::new(ForkServer::NotStarted);

enum ForkServer {
    NotStarted,
    Running(Conn),
    Unavailable,
}

/// The server's end of a running fork server.
struct Conn {
    /// What it runs, and so what it forks.
    exe: PathBuf,
    sock: OwnedFd,
    /// Reaped when the fork server goes.
    process: Process,
}

/// Why the fork server did not fork.
enum Failure {
    /// The kernel does not do the fork (`clone3`, `CLONE_PIDFD`, or `CLONE_PARENT` here): it
    /// will refuse again.
    Refused(io::Error),
    /// The fork failed for now (no process or memory left, say).
    Failed(io::Error),
    /// The fork server was gone before it had the start.
    Gone(io::Error),
    /// The fork server had the start, and its answer did not come.
    Lost(io::Error),
}

impl Conn {
    fn start(init_exe: &Path) -> io::Result<Self> {
        // Sequenced packets: every message and its descriptors arrive whole, or not at all.
        let (ours, theirs) = socketpair_seqpacket()?;
        // A fork server that stops answering (stopped, say) is replaced rather than waited for.
        let limit = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: setsockopt reads a `timeval` for SO_RCVTIMEO, which `limit` is.
        let rc = unsafe {
            libc::setsockopt(
                ours.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const limit).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let null = std::fs::File::options().write(true).open("/dev/null")?;
        let child = execute(init_exe, [theirs.as_fd(), null.as_fd(), null.as_fd()], true)?;
        let process = Process::from_child(child)?;
        let conn = Self {
            exe: init_exe.to_owned(),
            sock: ours,
            process,
        };
        for (layout, parent) in GUARDED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            conn.guard(layout, parent);
        }
        Ok(conn)
    }

    /// Tells the fork server to watch the groups under `parent` (no answer comes). A message it
    /// does not get leaves those sandboxes with a watcher each, as before.
    fn guard(&self, layout: &crate::cgroup::Layout, parent: &str) {
        let m = crate::init::guard_message(layout, parent);
        if let Err(e) = fdpass::send_fds(self.sock.as_raw_fd(), &m, &[]) {
            tracing::debug!(error = %e, "cannot tell the fork server which groups to watch");
        }
    }

    fn fork(&self, stdio: [BorrowedFd<'_>; 3]) -> Result<Process, Failure> {
        let fds = stdio.map(|fd| fd.as_raw_fd());
        fdpass::send_fds(self.sock.as_raw_fd(), b"s", &fds).map_err(Failure::Gone)?;
        let mut answer = [0u8; 4];
        let (n, fds) = loop {
            match fdpass::recv_fds(&self.sock, &mut answer) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(Failure::Lost)?,
            }
        };
        let pid = i32::from_le_bytes(answer);
        match (n, fds.into_iter().next()) {
            (4, Some(pidfd)) if pid > 0 => Ok(Process::new(pid as u32, Some(pidfd))),
            (4, None) if pid < 0 => {
                let e = io::Error::from_raw_os_error(-pid);
                match -pid {
                    libc::ENOSYS | libc::EINVAL | libc::EPERM => Err(Failure::Refused(e)),
                    _ => Err(Failure::Failed(e)),
                }
            }
            _ => Err(Failure::Lost(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the fork server hung up",
            ))),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closing the socket would make it exit; killed, it cannot linger.
        self.process.kill_and_reap();
    }
}

/// Executes `init_exe sandbox-init` (as the fork server when `fork_server`) with `stdio`, shown as
/// `lamina sandbox-init` whichever binary it is (and matched so, e.g. by `pgrep -f`).
fn execute(
    init_exe: &Path,
    stdio: [BorrowedFd<'_>; 3],
    fork_server: bool,
) -> io::Result<std::process::Child> {
    let [i, o, e] = stdio.map(|fd| fd.try_clone_to_owned());
    let mut command = Command::new(init_exe);
    command
        .arg0("lamina")
        .arg("sandbox-init")
        .stdin(Stdio::from(i?))
        .stdout(Stdio::from(o?))
        .stderr(Stdio::from(e?))
        .env_clear()
        // Without glibc's per-thread cache of freed chunks, which would keep PID 1's heap from
        // going back to the kernel once its function runs (see `init/idle.rs`). Only this
        // process's own allocator reads it: a function gets the environment its launch gives.
        .env("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0");
    if fork_server {
        // A process group of its own: a signal to the server's group (a terminal's Ctrl-C or
        // hang-up, `kill -- -PGID`) must not end the process that sweeps up after a server that
        // dies of it. The server stops it itself.
        command
            .env(crate::init::FORK_SERVER_ENV, "1")
            .process_group(0);
    }
    command.spawn()
}

fn socketpair_seqpacket() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: socketpair fills the two-element array it is given.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made, and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(script: &str) -> Process {
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .spawn()
            .unwrap();
        Process::from_child(child).unwrap()
    }

    #[test]
    fn a_process_is_waited_for_and_killed_through_its_pidfd() {
        let p = started("exit 7");
        assert_eq!(p.wait().unwrap().code(), Some(7));
        // Reaped: its status is kept, and it is never signalled again.
        assert_eq!(p.try_wait().unwrap().and_then(|s| s.code()), Some(7));
        p.kill().unwrap();

        let p = started("sleep 30");
        assert_eq!(p.try_wait().unwrap(), None);
        p.kill().unwrap();
        let status = p.wait().unwrap();
        assert_eq!(
            (status.code(), status.signal()),
            (None, Some(libc::SIGKILL))
        );
    }
}
