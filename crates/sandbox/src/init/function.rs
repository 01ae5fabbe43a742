//! The function's process. PID 1 forks it when the sandbox is prepared, before the sandbox knows
//! its function, and it loads the seccomp filter at once: a launch then pays neither the fork
//! nor the filter's loading (the kernel runs a filter for every system call number as it loads
//! it, see `seccomp.rs`). It waits for its [`Launch`]
//! on a pipe, and meanwhile holds nothing of a function: PID 1 builds the root only after it has
//! forked, and `pivot_root` moves this process's root and working directory into the new root
//! with PID 1's, since the two share their mount namespace. On the root's template
//! ([`crate::Spec::template`]) it is forked on the root already, where the function's trees
//! are attached later.
//!
//! Under the filter from the start (and so under `no_new_privs`, which loading it sets), this
//! process still does everything it must before `execve`: rlimits, the uid and gid or the
//! capability bounding set, `chdir`. The filter refuses none of them.
//!
//! A sandbox made for a managed runtime's interpreter ([`crate::Zygote`]) forks this process once
//! its root's base is built instead: it `chroot`s into the base, loads the filter and `execve`s
//! the interpreter at once, with the launch's pipe as descriptor [`crate::ZYGOTE_FD`] (on the
//! template, the base is the root: the `chroot` changes nothing). At launch PID 1 pivots into
//! that same base (so the interpreter's root becomes the sandbox's), or on the template attaches
//! the function's trees, before it writes the function's working directory and variables to the
//! pipe.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::kernel::{Kernel, Rlimit};
use crate::{Launch, ZYGOTE_FD, Zygote};

use super::{MAX_FRAME, parse, step};

/// The function's process, forked and waiting for its launch. Dropped without a launch, its
/// pipe closes and it exits.
pub(super) struct Waiting {
    pid: libc::pid_t,
    /// Where the launch is written; closed after it.
    go: OwnedFd,
    /// Where the process reports why it did not exec (nothing: it did; close-on-exec). `None`
    /// for an interpreter started ahead, which has exec'd already.
    status: Option<OwnedFd>,
}

impl Waiting {
    /// Forks the function's process, which loads `filter` and waits.
    pub(super) fn fork(
        k: &dyn Kernel,
        user_namespace: bool,
        filter: &seccompiler::BpfProgram,
    ) -> io::Result<Self> {
        let (pid, go, status) =
            spawn(|go, status| wait_and_exec(k, user_namespace, filter, go, status))?;
        Ok(Self {
            pid,
            go,
            status: Some(status),
        })
    }

    /// Forks the function's process into the root's base at `root`, where it loads `filter` and
    /// executes `zygote`'s interpreter at once. Returns once it has exec'd, or why it could not.
    pub(super) fn start_zygote(
        k: &dyn Kernel,
        user_namespace: bool,
        filter: &seccompiler::BpfProgram,
        root: &std::path::Path,
        zygote: &Zygote,
    ) -> io::Result<Self> {
        let (pid, go, status) =
            spawn(|go, _| exec_zygote(k, user_namespace, filter, root, zygote, go))?;
        let mut failure = String::new();
        let _ = std::fs::File::from(status).read_to_string(&mut failure);
        if !failure.is_empty() {
            return Err(io::Error::other(failure));
        }
        let started = Self {
            pid,
            go,
            status: None,
        };
        match started.exited() {
            Some(why) => Err(io::Error::other(why)),
            None => Ok(started),
        }
    }

    /// Hands the process its launch (`frame`, as PID 1 received it) and waits until it has
    /// exec'd. Returns its pid, why it did not exec (empty if it did) and what it reported of
    /// its companions.
    pub(super) fn launch(
        self,
        frame: &[u8],
        launch: &Launch,
    ) -> (libc::pid_t, String, super::companions::Reported) {
        let Some(status) = self.status else {
            return (self.pid, self.hand_over(launch), Default::default());
        };
        // A process that failed before it read this is gone: the write fails, and its status
        // says why.
        let _ = std::fs::File::from(self.go).write_all(frame);
        // The first read takes the companions' output with their pids, if they came (a few
        // dozen bytes); the rest of a failure's text follows.
        let mut said = vec![0u8; 4096];
        let received = loop {
            match crate::fdpass::recv_fd(&status, &mut said) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        let (n, output) = match received {
            Ok(r) => r,
            Err(e) => {
                let why = format!("reading the function's status: {e}");
                return (self.pid, why, Default::default());
            }
        };
        said.truncate(n);
        if n > 0 {
            let _ = std::fs::File::from(status)
                .take((MAX_FRAME - n) as u64)
                .read_to_end(&mut said);
        }
        let (pids, failure) = super::companions::reported(&said);
        let failure = String::from_utf8_lossy(failure).into_owned();
        let reported = super::companions::Reported { pids, output };
        (self.pid, failure, reported)
    }

    /// Why an interpreter started ahead is gone, if it is (it is reaped).
    fn exited(&self) -> Option<String> {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer, without blocking.
        (unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } == self.pid).then(|| {
            format!(
                "the runtime's interpreter, started ahead, exited with status {}",
                super::idle::status_code(status)
            )
        })
    }

    /// Waits until `ctl` has something to read (the launch, or the server's hang-up). An
    /// interpreter started ahead that exits meanwhile ends the wait with an error, and with it
    /// the sandbox: the pool then finds it dead instead of handing it to a function.
    pub(super) fn wait_for_launch(&self, ctl: &std::os::unix::net::UnixStream) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) } as i32;
        if pidfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor this process owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: ctl.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            if fds[0].revents != 0 {
                return Ok(());
            }
            if fds[1].revents != 0 {
                let why = self.exited();
                return Err(io::Error::other(why.unwrap_or_else(|| {
                    "the runtime's interpreter, started ahead, exited".into()
                })));
            }
        }
    }

    /// Gives a waiting interpreter its function's working directory and variables. Returns why
    /// it could not (empty if it could).
    fn hand_over(self, launch: &Launch) -> String {
        if let Some(why) = self.exited() {
            return why;
        }
        let message = serde_json::json!({ "cwd": launch.cwd, "env": launch.env });
        match std::fs::File::from(self.go).write_all(message.to_string().as_bytes()) {
            Ok(()) => String::new(),
            Err(e) => format!("handing the launch to the runtime's interpreter: {e}"),
        }
    }
}

/// Forks the function's process, which runs `run` with the read end of the launch's pipe and
/// the status's write end (close-on-exec), a socket. `run` returns only on failure, which the
/// process writes to the status socket before it exits. Returns the pid, the launch's write end and the
/// status's read end.
fn spawn(
    run: impl FnOnce(OwnedFd, RawFd) -> io::Error,
) -> io::Result<(libc::pid_t, OwnedFd, OwnedFd)> {
    let (go_r, go_w) = pipe()?;
    // A socket, not a pipe: the companions' output comes on it (see `companions::report`).
    let (status_r, status_w) = std::os::unix::net::UnixStream::pair()?;
    let (status_r, status_w) = (OwnedFd::from(status_r), OwnedFd::from(status_w));
    // SAFETY: PID 1 is single-threaded; see `run`.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop((go_w, status_r));
            // Out of the way of ZYGOTE_FD, which an interpreter started ahead reads.
            let (status_w, err) = match clear_of(status_w, ZYGOTE_FD) {
                Ok(fd) => {
                    let raw = fd.as_raw_fd();
                    (fd, run(go_r, raw))
                }
                Err((fd, e)) => (fd, e),
            };
            let _ = std::fs::File::from(status_w).write_all(err.to_string().as_bytes());
            // SAFETY: leaving a failed child.
            unsafe { libc::_exit(127) }
        }
        pid => Ok((pid, go_w, status_r)),
    }
}

/// `fd`, moved to another number if it is `n`.
/// Fails with `fd` as it was.
fn clear_of(fd: OwnedFd, n: i32) -> Result<OwnedFd, (OwnedFd, io::Error)> {
    if fd.as_raw_fd() != n {
        return Ok(fd);
    }
    // SAFETY: duplicating a descriptor we own to a free number above `n`.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, n + 1) };
    if moved == -1 {
        return Err((fd, io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets every signal's action to its default. An ignored signal stays ignored across `execve`,
/// and this process ignores `SIGPIPE` (as Rust programs do), a few signals glibc keeps for itself,
/// and whatever the server's own parent had it ignore: the function starts with none ignored, as
/// on Lambda. Made with the system call itself, since glibc refuses to touch its own signals.
fn default_signals() -> io::Result<()> {
    /// The kernel's `struct sigaction` on x86-64 and aarch64: handler, flags, restorer, mask.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid action, no old action, and the kernel's mask size.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                std::mem::size_of::<u64>(),
            )
        };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The forked process: takes every signal's default action, loads the filter, reads the launch,
/// execs. Returns only on failure; exits quietly if the sandbox is never launched.
fn wait_and_exec(
    k: &dyn Kernel,
    user_namespace: bool,
    filter: &seccompiler::BpfProgram,
    go: OwnedFd,
    status: RawFd,
) -> io::Error {
    // At the root, which pivot_root moves into the new root with PID 1's: a working directory
    // elsewhere (the server's) would stay in the host's tree until the launch's chdir.
    if let Err(e) = k.chdir(std::path::Path::new("/")) {
        return io::Error::new(e.kind(), format!("chdir /: {e}"));
    }
    if let Err(e) = default_signals() {
        return io::Error::new(e.kind(), format!("resetting signals: {e}"));
    }
    if let Err(e) = seccompiler::apply_filter(filter) {
        return io::Error::other(format!("seccomp: {e}"));
    }
    let mut frame = Vec::new();
    let read = std::fs::File::from(go)
        .take(MAX_FRAME as u64)
        .read_to_end(&mut frame);
    if read.is_ok() && frame.is_empty() {
        // SAFETY: never launched: leaving without a word.
        unsafe { libc::_exit(125) }
    }
    match read.and_then(|_| parse::<Launch>(&frame)) {
        Ok(launch) => exec_function(
            k,
            user_namespace,
            &Exec {
                uid: launch.uid,
                gid: launch.gid,
                nofile: launch.nofile,
                nproc: launch.nproc,
                cwd: &launch.cwd,
                argv: &launch.argv,
                env: &launch.env,
                companions: &launch.companions,
                status,
            },
        ),
        Err(e) => io::Error::new(e.kind(), format!("reading the launch: {e}")),
    }
}

/// The forked process of a sandbox made for an interpreter: into the base, filtered, executes
/// the interpreter with `go` as [`ZYGOTE_FD`]. Returns only on failure.
fn exec_zygote(
    k: &dyn Kernel,
    user_namespace: bool,
    filter: &seccompiler::BpfProgram,
    root: &std::path::Path,
    zygote: &Zygote,
    go: OwnedFd,
) -> io::Error {
    let setup = || -> io::Result<()> {
        // Before the filter, which refuses chroot. PID 1 pivots into this same tree later, which
        // leaves this root as it is: it is the new root.
        step("chroot into the root's base", k.chroot(root))?;
        step("chdir /", k.chdir(std::path::Path::new("/")))?;
        step("resetting signals", default_signals())?;
        seccompiler::apply_filter(filter).map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
        Ok(())
    };
    if let Err(e) = setup() {
        return e;
    }
    // The launch's pipe, kept open across execve as ZYGOTE_FD.
    let kept = if go.as_raw_fd() == ZYGOTE_FD {
        // SAFETY: clearing close-on-exec on a descriptor we own, which then stays open.
        unsafe { libc::fcntl(std::os::fd::IntoRawFd::into_raw_fd(go), libc::F_SETFD, 0) }
    } else {
        // SAFETY: dup2 of a descriptor we own onto a fixed number (the copy has no
        // close-on-exec); the original then closes.
        unsafe { libc::dup2(go.as_raw_fd(), ZYGOTE_FD) }
    };
    if kept == -1 {
        return io::Error::last_os_error();
    }
    exec_function(
        k,
        user_namespace,
        &Exec {
            uid: zygote.uid,
            gid: zygote.gid,
            nofile: zygote.nofile,
            nproc: zygote.nproc,
            cwd: std::path::Path::new("/"),
            argv: &zygote.argv,
            env: &zygote.env,
            companions: &crate::Companions::default(),
            status: -1,
        },
    )
}

/// What the function's process becomes.
struct Exec<'a> {
    uid: u32,
    gid: u32,
    nofile: u64,
    nproc: u64,
    cwd: &'a std::path::Path,
    argv: &'a [String],
    env: &'a [(String, String)],
    companions: &'a crate::Companions,
    /// Where the companions' pids are reported (see `companions::report`).
    status: RawFd,
}

/// Becomes the function's process. Returns only on failure.
fn exec_function(k: &dyn Kernel, user_namespace: bool, spec: &Exec<'_>) -> io::Error {
    let go = || -> io::Result<std::convert::Infallible> {
        // The control socket is close-on-exec: it stays open only until exec succeeds.
        let null = std::fs::File::open("/dev/null")?.into_raw_fd();
        // Fd 0 is free here (see `init::sandbox`), so /dev/null may land on it: then dup2 onto
        // itself would leave its close-on-exec flag, and the function would start without a
        // standard input; the flag is cleared instead.
        // SAFETY: fcntl, dup2 and close of a descriptor this process just opened.
        let done = unsafe {
            if null == 0 {
                libc::fcntl(0, libc::F_SETFD, 0)
            } else {
                let done = libc::dup2(null, 0);
                libc::close(null);
                done
            }
        };
        if done == -1 {
            return Err(io::Error::last_os_error());
        }
        step("rlimit nofile", k.setrlimit(Rlimit::NoFile, spec.nofile))?;
        step("rlimit nproc", k.setrlimit(Rlimit::NProc, spec.nproc))?;
        step("rlimit core", k.setrlimit(Rlimit::Core, 0))?;
        if user_namespace {
            step("dropping capabilities", k.drop_capabilities())?;
        } else {
            step("dropping privileges", k.become_user(spec.uid, spec.gid))?;
        }
        step("no_new_privs", k.no_new_privs())?;
        step("chdir", k.chdir(spec.cwd))?;
        let argv: Vec<std::ffi::CString> = spec
            .argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<_>>()?;
        let env: Vec<std::ffi::CString> = spec
            .env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}")))
            .collect::<io::Result<_>>()?;
        let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut env_p: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
        env_p.push(std::ptr::null());
        if argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty argv"));
        }
        // execve does not search PATH: a bare name (an image's `CMD ["python3", …]`) is looked
        // up in the function's PATH here, inside its root and as its own user.
        let program = cstring(&find_program(&spec.argv[0], spec.env))?;
        // Last before the exec, which lets them run; should this process return instead, they
        // are told to leave as the guard drops.
        let _companions = super::companions::start(spec.companions, spec.env, spec.status)?;
        // SAFETY: argv and env are NUL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(program.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
        Err(io::Error::new(
            io::Error::last_os_error().kind(),
            format!("{}: {}", spec.argv[0], io::Error::last_os_error()),
        ))
    };
    match go() {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

pub(super) fn cstring(s: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUL byte in argv or environment",
        )
    })
}

/// `name` itself if it holds a `/`; otherwise the first executable `dir/name` along the `PATH`
/// of `env` (or the usual default), or `name` unchanged for execve to report.
fn find_program(name: &str, env: &[(String, String)]) -> String {
    if name.contains('/') {
        return name.to_owned();
    }
    let path = env.iter().find(|(k, _)| k == "PATH").map_or(
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        |(_, v)| v,
    );
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        let Ok(c) = std::ffi::CString::new(candidate.clone()) else {
            continue;
        };
        if !std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            continue;
        }
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            return candidate;
        }
    }
    name.to_owned()
}
