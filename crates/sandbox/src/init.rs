//! `sandbox-init`: the first process of every sandbox, run by re-executing our own binary.
//!
//! It is a fresh single-threaded process, so it may fork freely. Its standard input is a Unix
//! control socket to the server. The sequence:
//!
//! 1. read the [`Spec`] (length-prefixed JSON) from the control socket;
//! 2. join the sandbox's cgroups, then unshare mount, PID, IPC, UTS, network and cgroup namespaces;
//! 3. bring up loopback, bind the Runtime API listener on `127.0.0.1:<port>` inside the new
//!    network namespace, and send it to the server (`SCM_RIGHTS`);
//! 4. fork PID 1 of the new PID namespace, which builds the root filesystem, then forks the
//!    function's process: rlimits, unprivileged uid/gid, no capabilities, `no_new_privs`, seccomp,
//!    `execve`;
//! 5. PID 1 reaps orphans and exits with the function process's status; this process exits with
//!    PID 1's, which the server reads as the environment's exit status.
//!
//! Any failure before `execve` is reported on the control socket as `error: <what>`.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;

use crate::kernel::{Kernel, LinuxKernel, Namespaces, Rlimit};
use crate::{Spec, fdpass, rootfs, seccomp};

/// Runs `sandbox-init`. Never returns.
pub fn main() -> ! {
    // Fd 0 is the control socket the server passed as standard input. Move it to a
    // close-on-exec descriptor of its own, so that fd 0 can become /dev/null for the function.
    // SAFETY: fcntl and close on descriptors this process owns.
    let fd = unsafe {
        let fd = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        libc::close(0);
        fd
    };
    if fd < 0 {
        std::process::exit(125);
    }
    // SAFETY: `fd` is the control socket, owned by nobody else in this process.
    let ctl = unsafe { UnixStream::from_raw_fd(fd) };
    let code = match run(&ctl) {
        Ok(code) => code,
        Err(e) => {
            let _ = (&ctl).write_all(format!("error: {e}\n").as_bytes());
            125
        }
    };
    std::process::exit(code)
}

fn step<T>(what: &str, r: io::Result<T>) -> io::Result<T> {
    r.map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

fn read_spec(mut ctl: &UnixStream) -> io::Result<Spec> {
    let mut len = [0u8; 4];
    ctl.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    ctl.read_exact(&mut buf)?;
    serde_json::from_slice(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn run(ctl: &UnixStream) -> io::Result<i32> {
    let k = LinuxKernel;
    let spec = step("reading the sandbox spec", read_spec(ctl))?;
    let pid = std::process::id().to_string();
    for procs in &spec.cgroup_procs {
        step(
            &format!("joining {}", procs.display()),
            k.write(procs, &pid),
        )?;
    }
    if spec.user_namespace {
        step("entering a user namespace", enter_user_namespace(&k))?;
    }
    step("unsharing namespaces", k.unshare(Namespaces::SANDBOX))?;
    step("bringing up loopback", loopback_up())?;
    let listener = step(
        "binding the Runtime API listener",
        std::net::TcpListener::bind(("127.0.0.1", spec.runtime_api_port)),
    )?;
    step(
        "sending the listener",
        fdpass::send_fd(ctl.as_raw_fd(), b"ready", listener.as_raw_fd()),
    )?;
    drop(listener);

    // SAFETY: this process is single-threaded (a fresh exec of our binary), so fork is safe.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let code = match pid_one(&k, &spec, ctl) {
                Ok(code) => code,
                Err(e) => {
                    let mut w = ctl;
                    let _ = w.write_all(format!("error: {e}\n").as_bytes());
                    125
                }
            };
            // SAFETY: leaving the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        child => {
            // Only PID 1 and the function keep the control socket; the server sees EOF once the
            // function has exec'd (its copy is close-on-exec) or everything has failed.
            // SAFETY: closing our copy of the control socket; `ctl` is not used again here.
            unsafe { libc::close(ctl.as_raw_fd()) };
            Ok(wait_exit_code(child))
        }
    }
}

/// PID 1 of the sandbox: builds the root, starts the function, reaps until the function exits.
fn pid_one(k: &dyn Kernel, spec: &Spec, ctl: &UnixStream) -> io::Result<i32> {
    step("building the root filesystem", rootfs::build(k, &spec.root))?;
    step("setting the hostname", k.sethostname(&spec.hostname))?;
    let filter = step(
        "compiling the seccomp filter",
        seccomp::filter().map_err(io::Error::other),
    )?;
    // SAFETY: single-threaded process; see `run`.
    let child = match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {
            let err = exec_function(k, spec, &filter);
            let mut w = ctl;
            let _ = w.write_all(format!("exec: {err}\n").as_bytes());
            // SAFETY: leaving a failed child.
            unsafe { libc::_exit(127) }
        }
        pid => pid,
    };
    // SAFETY: closing PID 1's copy of the control socket.
    unsafe { libc::close(ctl.as_raw_fd()) };
    // Reap everything; exit with the function's status.
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == -1 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Ok(125);
        }
        if pid == child {
            return Ok(status_code(status));
        }
    }
}

/// Becomes the function's process. Returns only on failure.
fn exec_function(k: &dyn Kernel, spec: &Spec, filter: &seccompiler::BpfProgram) -> io::Error {
    let go = || -> io::Result<std::convert::Infallible> {
        // The control socket is close-on-exec: it stays open only until exec succeeds.
        let null = std::fs::File::open("/dev/null")?;
        // SAFETY: dup2 of valid descriptors onto standard input.
        if unsafe { libc::dup2(null.as_raw_fd(), 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        step("rlimit nofile", k.setrlimit(Rlimit::NoFile, spec.nofile))?;
        step("rlimit nproc", k.setrlimit(Rlimit::NProc, spec.nproc))?;
        step("rlimit core", k.setrlimit(Rlimit::Core, 0))?;
        if spec.user_namespace {
            step("dropping capabilities", k.drop_capabilities())?;
        } else {
            step("dropping privileges", k.become_user(spec.uid, spec.gid))?;
        }
        step("no_new_privs", k.no_new_privs())?;
        step("chdir", k.chdir(&spec.cwd))?;
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
        step(
            "seccomp",
            seccompiler::apply_filter(filter).map_err(io::Error::other),
        )?;
        // SAFETY: argv and env are NUL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(argv_p[0], argv_p.as_ptr(), env_p.as_ptr()) };
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

/// Unshares a user namespace in which our own uid and gid are root.
fn enter_user_namespace(k: &dyn Kernel) -> io::Result<()> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    k.unshare(crate::kernel::Namespaces(libc::CLONE_NEWUSER))?;
    k.write(std::path::Path::new("/proc/self/setgroups"), "deny")?;
    k.write(
        std::path::Path::new("/proc/self/uid_map"),
        &format!("0 {uid} 1"),
    )?;
    k.write(
        std::path::Path::new("/proc/self/gid_map"),
        &format!("0 {gid} 1"),
    )?;
    Ok(())
}

fn cstring(s: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUL byte in argv or environment",
        )
    })
}

fn wait_exit_code(pid: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status_code(status);
        }
        if r == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 125;
        }
    }
}

/// Exit status as a shell reports it: the code, or 128 + the signal.
fn status_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}

/// Sets `lo` up in the current network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket used only for the interface ioctls below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: we own `sock`.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; the name "lo" fits in IFNAMSIZ.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req`, which lives across both calls.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
