//! Where the server starts `sandbox-init` processes: a thread with a descriptor table of its
//! own.
//!
//! A process the server starts gets a copy of the server's whole descriptor table when it is
//! forked, and closes it again at `execve`. Every environment holds about seven descriptors,
//! so with a thousand environments each start copied and closed some 7000 of them: about 1 ms
//! of CPU per start, more with every environment (a profile of `lamina bench --scale 1000` put
//! it at 7 % of all CPU). This thread unshares its table once, when it starts, and keeps in it
//! only its standard descriptors and a pidfd of its own process. For each start it copies in
//! the few descriptors the new process needs (`pidfd_getfd`), starts it, and closes them. A
//! start then copies a handful of descriptors, however many the server holds; and a descriptor
//! the server opened without close-on-exec (a library's, say) never reaches a sandbox.
//!
//! Where the thread cannot be had (no `pidfd_getfd`: a kernel before 5.6, or a seccomp policy
//! that refuses it), processes are started from the calling thread as before.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

/// What to start: `exe` (an open descriptor of the executable, `O_PATH` is enough) with
/// `argv0` and `args`, an empty environment, and `stdio` as its descriptors 0, 1 and 2.
pub struct Program<'a> {
    pub exe: BorrowedFd<'a>,
    pub argv0: &'a str,
    pub args: &'a [&'a str],
    pub stdio: [BorrowedFd<'a>; 3],
}

/// Starts `program` from the spawner thread (or, without one, from this thread).
pub fn spawn(program: &Program<'_>) -> io::Result<Child> {
    let Some(spawner) = SPAWNER.get_or_init(Spawner::start) else {
        return start(program);
    };
    let (reply, answer) = mpsc::sync_channel(1);
    let job = Job {
        exe: program.exe.as_raw_fd(),
        argv0: program.argv0.into(),
        args: program.args.iter().map(OsString::from).collect(),
        stdio: program.stdio.map(|fd| fd.as_raw_fd()),
        reply,
    };
    // The descriptors in `program` stay open (borrowed) until the answer: the thread copies
    // them by number. Should the thread have died, this thread starts the program instead.
    match spawner
        .jobs
        .send(job)
        .ok()
        .and_then(|()| answer.recv().ok())
    {
        Some(started) => started,
        None => start(program),
    }
}

static SPAWNER: OnceLock<Option<Spawner>> = OnceLock::new();

struct Spawner {
    jobs: mpsc::Sender<Job>,
}

/// One start. The descriptors are numbers in the server's table, open until `reply`.
struct Job {
    exe: RawFd,
    argv0: OsString,
    args: Vec<OsString>,
    stdio: [RawFd; 3],
    reply: mpsc::SyncSender<io::Result<Child>>,
}

impl Spawner {
    fn start() -> Option<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sandbox-spawner".into())
            .spawn(move || {
                // At the server's own priority: what it starts inherits it.
                // No signal is ever handled here: a handler (tokio's writes to a pipe) would
                // find this thread's descriptor table, where that pipe is not, and the
                // server's SIGTERM would be lost. What it starts gets an empty mask (std
                // resets it).
                // SAFETY: sigfillset and pthread_sigmask on a local set, for this thread.
                unsafe {
                    let mut all: libc::sigset_t = std::mem::zeroed();
                    libc::sigfillset(&mut all);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
                }
                let server = match own_table() {
                    Ok(pidfd) => {
                        let _ = ready_tx.send(Ok(()));
                        pidfd
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    let started = copy_in(&server, &job).and_then(|(exe, stdio)| {
                        start_from(exe.as_fd(), &job.argv0, &job.args, stdio)
                    });
                    let _ = job.reply.send(started);
                }
            });
        if let Err(e) = thread {
            tracing::warn!(error = %e, "cannot start the thread that starts sandboxes; starting them from the server's threads");
            return None;
        }
        match ready.recv() {
            Ok(Ok(())) => Some(Self { jobs }),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "starting sandboxes from the server's threads, which copies the server's descriptors into every start");
                None
            }
            Err(_) => None,
        }
    }
}

/// Gives this thread a descriptor table of its own, closes everything in it but 0, 1 and 2,
/// and returns a pidfd of this process (through which the server's descriptors are copied).
fn own_table() -> io::Result<OwnedFd> {
    // SAFETY: unshare with a flag; it changes only this thread's descriptor table.
    if unsafe { libc::unshare(libc::CLONE_FILES) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: close_range on this thread's own table, which nothing else uses.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open of our own process; the result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned to us.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // Checked now, so that a kernel without it falls back at once rather than at every start.
    copy(&pidfd, 0).map(drop)?;
    Ok(pidfd)
}

/// The job's descriptors, copied from the server's table into this thread's.
fn copy_in(server: &OwnedFd, job: &Job) -> io::Result<(OwnedFd, [OwnedFd; 3])> {
    let exe = copy(server, job.exe)?;
    let [a, b, c] = job.stdio;
    Ok((exe, [copy(server, a)?, copy(server, b)?, copy(server, c)?]))
}

/// A copy of descriptor `fd` of the server's table (close-on-exec, as `pidfd_getfd` makes it).
fn copy(server: &OwnedFd, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd with a valid pidfd; the result is a new descriptor we own.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, server.as_raw_fd(), fd, 0u32) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `got` was just returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(got as RawFd) })
}

/// Starts `program` from this thread.
fn start(program: &Program<'_>) -> io::Result<Child> {
    let [i, o, e] = program.stdio;
    let stdio = [
        i.try_clone_to_owned()?,
        o.try_clone_to_owned()?,
        e.try_clone_to_owned()?,
    ];
    start_from(program.exe, program.argv0, program.args, stdio)
}

/// Starts `exe` with `stdio` (descriptors of this thread's table, given to the new process).
fn start_from(
    exe: BorrowedFd<'_>,
    argv0: impl AsRef<std::ffi::OsStr>,
    args: &[impl AsRef<std::ffi::OsStr>],
    stdio: [OwnedFd; 3],
) -> io::Result<Child> {
    let [i, o, e] = stdio;
    // The executable through its descriptor in the new process's table: `execve` resolves it
    // before close-on-exec closes it.
    Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()))
        .arg0(argv0)
        .args(args)
        .stdin(Stdio::from(i))
        .stdout(Stdio::from(o))
        .stderr(Stdio::from(e))
        .env_clear()
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The descriptors a shell started by `how` has, as `ls /proc/self/fd` lists them.
    fn descriptors(how: fn(&Program<'_>) -> io::Result<Child>) -> Vec<i32> {
        let exe = std::fs::File::open("/bin/sh").unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let (mut out, out_w) = std::io::pipe().unwrap();
        let err_w = out_w.try_clone().unwrap();
        let mut child = how(&Program {
            exe: exe.as_fd(),
            argv0: "sh",
            args: &["-c", "ls /proc/self/fd"],
            stdio: [null.as_fd(), out_w.as_fd(), err_w.as_fd()],
        })
        .unwrap();
        drop((out_w, err_w));
        let mut listing = String::new();
        out.read_to_string(&mut listing).unwrap();
        assert!(child.wait().unwrap().success(), "{listing}");
        listing
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect()
    }

    #[test]
    fn a_descriptor_left_open_by_the_server_never_reaches_a_started_process() {
        assert!(
            SPAWNER.get_or_init(Spawner::start).is_some(),
            "pidfd_getfd is available on every kernel Lamina supports"
        );
        // Opened without close-on-exec, after the spawner's table was made.
        // SAFETY: open with a valid C string; the result is owned below.
        let raw = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
        assert!(raw > 2);
        // SAFETY: `raw` was just returned to us.
        let leaky = unsafe { OwnedFd::from_raw_fd(raw) };
        let fds = descriptors(spawn);
        // 0, 1, 2 and the directory `ls` reads.
        assert!(fds.starts_with(&[0, 1, 2]) && fds.len() <= 4, "{fds:?}");
        // Started from this thread, the same program gets it: the check above can fail.
        assert!(descriptors(start).contains(&raw));
        drop(leaky);
    }
}
