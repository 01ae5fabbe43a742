//! `sandbox-init`: the first process of every sandbox, run as `lamina-init` (a small static
//! binary the server carries, see crates/init) or as `lamina sandbox-init`.
//!
//! It is a fresh single-threaded process, so it may fork freely. Its standard input is a Unix
//! control socket to the server. The sequence:
//!
//! 1. read the [`Spec`] (length-prefixed JSON) from the control socket, and the network
//!    namespace when the spec has one (`SCM_RIGHTS`);
//! 2. unshare mount, PID, IPC, UTS and network namespaces; or, when the server prepared a network
//!    namespace (an interface with egress, see `lamina-net`), join that one (`setns`) and unshare
//!    the others. With the root's template ([`Spec::template`], also received over
//!    `SCM_RIGHTS`), enter it first, so that the new mount namespace is a copy of it, whose root
//!    is the base already; the host's cgroup files this process and PID 1 need are opened before;
//! 3. bring up loopback, bind the Runtime API listener on `127.0.0.1:<port>` inside the new
//!    network namespace, and send it to the server (`SCM_RIGHTS`);
//! 4. fork PID 1 of the new PID namespace. Where the fork server watches for the server's death
//!    and the sandbox has cgroups, PID 1 is the server's child and this process hands it over
//!    and exits (see `init/hand_over.rs`); otherwise PID 1 dies with this process
//!    (`PR_SET_PDEATHSIG`), which stays as its watcher. PID 1
//!    is born in (v2) or joins the sandbox's cgroups and unshares a cgroup namespace rooted
//!    there (a watcher stays outside the cgroups, so that freezing an idle sandbox never
//!    stops it),
//!    compiles the seccomp filter, forks the function's process (which loads it and waits,
//!    see `init/function.rs`), builds the part of the root every function shares (the spec's
//!    base: the system tree, `/proc`, `/dev`; on the template, only `/proc`) and reports
//!    `joined`. Up to here nothing depends on
//!    the function, so the server may do this ahead of time. PID 1 then waits for the [`Launch`]
//!    (and the detached mount for `/tmp` when it has one; on the template, one detached mount per
//!    tree before it), adds the function's trees to the root (or lets the base go and builds an
//!    image's root whole), pivots into it (on the template, only into an image's root), hands the
//!    launch to the function's process: rlimits, unprivileged uid/gid, no capabilities,
//!    `execve` (`no_new_privs` holds since the filter was loaded). PID 1 reports `started` (or
//!    why exec failed) on the control socket, then any companions' pidfds. A sandbox made for a
//!    managed runtime's interpreter ([`crate::Zygote`]) builds the base and starts it there
//!    before `joined`; at launch it gets the function's directory and variables once the root
//!    is pivoted (see `init/function.rs`);
//! 5. PID 1 gives the memory its setup used back to the kernel (`init/idle.rs`), reaps orphans
//!    and exits with the function process's status (after every process, once told to drain),
//!    which the server reads as the environment's exit status (a watcher exits with PID 1's);
//! 6. meanwhile a watcher watches the control socket: when the server goes away (even killed
//!    with SIGKILL, its end of the socket closes), it kills PID 1, and with it the whole PID
//!    namespace (thawing the cgroups, should the sandbox be frozen). A handed-over sandbox is
//!    the fork server's to kill then (`init/fork_server.rs`). No sandbox outlives its server.
//!
//! Any failure before `execve` is reported on the control socket as `error: <what>`.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::kernel::{Kernel, LinuxKernel, Namespaces};
use crate::rootfs::Tmp;
use crate::{Launch, Spec, fdpass, rootfs, seccomp};

mod companions;
mod fork_server;
mod function;
mod hand_over;
mod idle;

pub(crate) use fork_server::{
    ENV as FORK_SERVER_ENV, groups_lock, groups_lock_path, guard_message,
};

/// Runs `sandbox-init`, or the fork server that forks it when [`fork_server::ENV`] is set.
/// Never returns.
pub fn main() -> ! {
    if std::env::var_os(fork_server::ENV).is_some() {
        fork_server::serve()
    }
    sandbox()
}

/// `sandbox-init` itself, executed or forked by the fork server, with its control socket as
/// descriptor 0.
fn sandbox() -> ! {
    // Named for `ps` and `top`: executed from a memfd, the name would be a descriptor's number.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"sandbox-init".as_ptr()) };
    // A session and process group of its own, which PID 1 and the function inherit: a signal to
    // its group (`kill(0, …)` from the function) reaches this sandbox alone, and no signal to
    // the server's or the fork server's group (a terminal's, or the kernel's to a group that a
    // dead server left orphaned) reaches the sandbox.
    // SAFETY: setsid takes no argument; this process leads no group, so it succeeds.
    unsafe { libc::setsid() };
    // Nothing but the standard descriptors: one the server left open without close-on-exec
    // never reaches a sandbox.
    close_from(3);
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
        Ok(Next::Exit(code)) => code,
        Ok(Next::Reap(function)) => {
            // PID 1, its function started: what set the sandbox up is dropped with `run`'s
            // frames, and their memory goes back to the kernel before the environment idles.
            drop(ctl);
            idle::unmap_unused();
            idle::release();
            // `_exit`, never `std::process::exit`, from here on (see `idle::unmap_unused`).
            // SAFETY: leaving the child without running the parent's atexit handlers.
            unsafe { libc::_exit(idle::reap(function)) }
        }
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

/// One length-prefixed message from the server.
fn read_frame(mut ctl: &UnixStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    ctl.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "spec too large"));
    }
    let mut buf = vec![0u8; len];
    ctl.read_exact(&mut buf)?;
    Ok(buf)
}

/// The largest message the server sends (a spec or a launch).
const MAX_FRAME: usize = 1 << 20;

fn parse<T: serde::de::DeserializeOwned>(frame: &[u8]) -> io::Result<T> {
    serde_json::from_slice(frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Receives a one-byte message, `tag`, that carries a descriptor (`what` names it in errors).
fn read_fd(ctl: &UnixStream, tag: u8, what: &str) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    match fdpass::recv_fd(ctl, &mut byte)? {
        (1, Some(fd)) if byte[0] == tag => Ok(fd),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected {what}"),
        )),
    }
}

/// Joins the namespace `ns` of type `kind` (`CLONE_NEWNET`, `CLONE_NEWNS`).
fn join(ns: &OwnedFd, kind: libc::c_int) -> io::Result<()> {
    // SAFETY: setns with a namespace descriptor we own; this process is single-threaded.
    if unsafe { libc::setns(ns.as_raw_fd(), kind) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Enters the template's mount namespace and its root: `setns` leaves this process at the
/// namespace's own root, below the template's when the server runs in a `chroot`.
fn enter_template(ns: &OwnedFd, root: &OwnedFd) -> io::Result<()> {
    join(ns, libc::CLONE_NEWNS)?;
    rustix::process::fchdir(root)?;
    rustix::process::chroot(".")?;
    Ok(())
}

/// How [`run`] ends in this process.
enum Next {
    /// Exit with this status: the outer process, or PID 1 before its function started.
    Exit(i32),
    /// PID 1 with its function started: reap until that process exits, and exit with its status.
    Reap(libc::pid_t),
}

/// Sets the sandbox up. Never inlined: its frames, with everything the setup held, are left
/// behind before PID 1 idles (see [`idle`]).
#[inline(never)]
fn run(ctl: &UnixStream) -> io::Result<Next> {
    let k = LinuxKernel;
    let spec: Spec = step(
        "reading the sandbox spec",
        read_frame(ctl).and_then(|f| parse(&f)),
    )?;
    let netns = match spec.netns {
        true => Some(step(
            "receiving the network namespace",
            read_fd(ctl, b'n', "a network namespace"),
        )?),
        false => None,
    };
    if spec.template && spec.base.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a sandbox on the root's template needs the base it was made of",
        ));
    }
    let template = match spec.template {
        true => Some(step(
            "receiving the root's template",
            read_fd(ctl, b'm', "a mount namespace")
                .and_then(|ns| Ok((ns, read_fd(ctl, b'r', "the template's root")?))),
        )?),
        false => None,
    };
    if spec.user_namespace {
        step("entering a user namespace", enter_user_namespace(&k))?;
    }
    // Opened now: the host's cgroup files are out of reach by path once this process is in the
    // template's mount namespace, or once PID 1's pivot_root has changed this process's root too
    // (they share a mount namespace).
    let thaw = spec
        .thaw
        .iter()
        .map(|(path, value)| {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map(|f| (f, value.clone()))
        })
        .collect::<io::Result<Vec<_>>>();
    let thaw = step("opening the freezer", thaw)?;
    // Opened now, like the freezer: a group this process cannot open is joined through its
    // `cgroup.procs` instead (`Spec::cgroup_join`), whose failure says why.
    let group = spec.cgroup_dir.as_deref().and_then(|dir| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .ok()
    });
    // The groups PID 1 joins unless born in one, opened now for the same reason.
    let joins = spec
        .cgroup_join
        .iter()
        .map(|path| {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))
        })
        .collect::<io::Result<Vec<_>>>()?;
    if let Some(ns) = netns {
        step(
            "joining the network namespace",
            join(&ns, libc::CLONE_NEWNET),
        )?;
    }
    // Into the template, whose copy the unshare below makes this sandbox's mount namespace: its
    // root is the base already.
    if let Some((ns, root)) = template {
        step("entering the root's template", enter_template(&ns, &root))?;
    }
    let namespaces = match spec.netns {
        true => Namespaces::SANDBOX_JOINED_NET,
        false => Namespaces::SANDBOX,
    };
    step("unsharing namespaces", k.unshare(namespaces))?;
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

    // PID 1 cannot ask for its parent (getppid is 0 across a PID namespace): a pipe whose write
    // end only this process holds tells it whether this process is still alive, or, handed
    // over, when this process has told the server and gone.
    let mut alive = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `alive`.
    if unsafe { libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and ours.
    let (alive_r, alive_w) = unsafe {
        (
            OwnedFd::from_raw_fd(alive[0]),
            OwnedFd::from_raw_fd(alive[1]),
        )
    };
    // With a fork server watching for the server's death, and groups that it can find the
    // sandbox by, PID 1 becomes the server's child and this process exits once it has said so.
    let handed = match fork_server::guarded() && !spec.thaw.is_empty() {
        true => hand_over::fork(group.as_ref()),
        false => None,
    };
    if handed.is_none() {
        step("telling the server", hand_over::keep(ctl))?;
    }
    let forked = match handed {
        Some(forked) => forked,
        None => fork_pid_one(group.as_ref())?,
    };
    match forked {
        (0, born_in_group, handed, _) => {
            // A session of its own, which the function inherits: a signal to the function's
            // group (`kill(0, SIGSTOP)`) reaches no process outside the namespace, such as
            // this one while it watches for the server (without root, it has the function's
            // uid, and a stopped watcher would let the sandbox outlive its server).
            // SAFETY: setsid takes no argument; a forked child leads no group, so it succeeds.
            unsafe { libc::setsid() };
            // Used by the clone: PID 1 keeps no descriptor of the host's cgroup tree.
            drop(group);
            drop(alive_w);
            let orphaned = match handed {
                // Handed over: on once this process has told the server and is gone (never
                // orphaned: the server is its parent).
                true => {
                    hand_over::wait_closed(&alive_r);
                    false
                }
                false => {
                    // PID 1 dies with this process, and the kernel then kills the whole
                    // namespace.
                    // SAFETY: prctl with integers.
                    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
                    let mut p = libc::pollfd {
                        fd: alive_r.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd; a zero timeout never blocks.
                    unsafe { libc::poll(&mut p, 1, 0) != 0 }
                }
            };
            drop(alive_r);
            let next = if orphaned {
                Next::Exit(125)
            } else {
                let joined = if born_in_group {
                    drop(joins);
                    Ok(())
                } else {
                    join_groups(&spec, joins)
                };
                // In its groups now, where the fork server finds it should the server die from
                // here on; one that died before is seen here.
                let joined = joined.and_then(|()| match handed && hand_over::hung_up(ctl) {
                    true => Err(io::Error::other("the server is gone")),
                    false => Ok(()),
                });
                match joined.and_then(|()| pid_one(&k, &spec, ctl)) {
                    Ok(next) => next,
                    Err(e) => {
                        let mut w = ctl;
                        let _ = w.write_all(format!("error: {e}\n").as_bytes());
                        Next::Exit(125)
                    }
                }
            };
            match next {
                Next::Reap(function) => Ok(Next::Reap(function)),
                // SAFETY: leaving the child without running the parent's atexit handlers.
                Next::Exit(code) => unsafe { libc::_exit(code) },
            }
        }
        (child, .., Some(pidfd)) => {
            drop((group, joins, alive_r));
            let told = hand_over::tell(ctl, child, &pidfd);
            if told.is_err() {
                let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
            }
            drop(alive_w);
            told.map(|()| Next::Exit(0))
        }
        (child, ..) => {
            drop((group, joins));
            drop(alive_r);
            let code = watch(ctl, child, &thaw);
            drop(alive_w);
            Ok(Next::Exit(code))
        }
    }
}

/// The kernel's `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3` with `args` and no stack: a fork. Returns the child's pid (0 in the child), or -1
/// with `errno` set. Sound in a single-threaded process only, as `sandbox-init` and the fork
/// server are: the child goes on with a copy of it, where no other thread held a lock.
fn clone3(args: &CloneArgs) -> libc::c_long {
    // SAFETY: `args` is a valid `struct clone_args` of the size given, and with no stack the child
    // runs on a copy of this thread's. The C library's cached thread id is stale in the child;
    // only `raise` reads it, and glibc's asks the kernel when signalling itself.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    }
}

/// Closes every descriptor from `first` on.
fn close_from(first: u32) {
    // SAFETY: close_range on this process's own table; nothing below `first` is touched.
    if unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) } == 0 {
        return;
    }
    // Before Linux 5.9: what /proc lists (the listing's own descriptor is closed by then).
    let Ok(listing) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<RawFd> = listing
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first as RawFd)
        .collect();
    for fd in open {
        // SAFETY: closing a descriptor of this single-threaded process that nothing here holds.
        unsafe { libc::close(fd) };
    }
}

/// `CLONE_INTO_CGROUP`, from linux/sched.h.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks PID 1: with `group` (cgroup v2), born in that group when the kernel can, since a
/// process moved into a group later (a write to `cgroup.procs`) waits for an RCU grace period
/// unless another move just did: about 6 ms, against 0.3–0.4 ms for the whole clone, on an idle
/// 2-core host (BENCHMARKS.md). Returns the child's pid, 0 in the child, and whether it was born in
/// the group (when not, PID 1 joins its groups itself); PID 1 stays this process's child (not
/// handed over, no pidfd; see `init/hand_over.rs` for the other way).
fn fork_pid_one(
    group: Option<&std::fs::File>,
) -> io::Result<(libc::pid_t, bool, bool, Option<OwnedFd>)> {
    if let Some(group) = group {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: group.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        let pid = clone3(&args);
        if pid >= 0 {
            return Ok((pid as libc::pid_t, true, false, None));
        }
        // Before 5.7 (ENOSYS, E2BIG), or clone3 filtered (a container's seccomp profile):
        // fork, and join by path.
    }
    // SAFETY: this process is single-threaded (a fresh exec of our binary), so fork is safe.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        pid => Ok((pid, false, false, None)),
    }
}

/// Waits for PID 1 to exit, killing it if the server goes away first (and thawing its cgroups,
/// so that frozen processes can die). Returns its status. Never reads the control socket: what
/// the server sends there is PID 1's.
fn watch(ctl: &UnixStream, child: libc::pid_t, thaw: &[(std::fs::File, String)]) -> i32 {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) } as RawFd;
    if pidfd < 0 {
        return idle::wait_exit_code(child);
    }
    // SAFETY: a fresh descriptor this process owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: ctl.as_raw_fd(),
                events: libc::POLLRDHUP,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return idle::wait_exit_code(child);
        }
        if fds[0].revents != 0 {
            return idle::wait_exit_code(child);
        }
        // Hung up (or broken): the server's end has closed.
        if fds[1].revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: kill takes integers only.
            unsafe { libc::kill(child, libc::SIGKILL) };
            for (file, value) in thaw {
                let _ = (&*file).write_all(value.as_bytes());
            }
            return idle::wait_exit_code(child);
        }
    }
}

/// PID 1, not born in its cgroups and still single-threaded: joins them ("0": this thread)
/// through `joins`, the files of [`Spec::cgroup_join`], opened before the root changed. Closes
/// them.
fn join_groups(spec: &Spec, joins: Vec<std::fs::File>) -> io::Result<()> {
    for (file, path) in joins.iter().zip(&spec.cgroup_join) {
        step(
            &format!("joining {}", path.display()),
            (&*file).write_all(b"0"),
        )?;
    }
    Ok(())
}

/// PID 1 of the sandbox, in its cgroups: waits for its function, builds the root, starts the
/// function; then [`Next::Reap`], or [`Next::Exit`] when the server went away first.
fn pid_one(k: &dyn Kernel, spec: &Spec, ctl: &UnixStream) -> io::Result<Next> {
    // The sandbox's cgroups become the root of its own cgroup namespace.
    step(
        "unsharing the cgroup namespace",
        k.unshare(Namespaces::CGROUP),
    )?;
    let filter = step("compiling the seccomp filter", seccomp::filter())?;
    let function = match (&spec.base, &spec.zygote) {
        (Some(base), Some(zygote)) => {
            let root = step("building the root's base", base_root(k, spec, base))?;
            step(
                "starting the runtime's interpreter",
                function::Waiting::start_zygote(k, spec.user_namespace, &filter, root, zygote),
            )?
        }
        (None, Some(_)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an interpreter started ahead needs the root's base",
            ));
        }
        (base, None) => {
            let function = step(
                "forking the function's process",
                function::Waiting::fork(k, spec.user_namespace, &filter),
            )?;
            if let Some(base) = base {
                step("building the root's base", base_root(k, spec, base))?;
            }
            function
        }
    };
    drop(filter);
    step("reporting ready", (&*ctl).write_all(b"joined\n"))?;
    function.wait_for_launch(ctl)?;
    // The server may keep this sandbox waiting here; if it goes away instead, the read fails.
    let frame = match read_frame(ctl) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::Exit(125)),
        Err(e) => return Err(io::Error::new(e.kind(), format!("reading the launch: {e}"))),
    };
    let launch: Launch = step("reading the launch", parse(&frame))?;
    if spec.zygote.as_ref().is_some_and(|z| !z.fits(&launch)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the launch is not for the interpreter this sandbox started",
        ));
    }
    match (&spec.base, launch.root.on_base) {
        // On the template, the base is the root itself; an image's root is built beside it.
        (Some(_), _) if spec.template => {}
        (Some(base), false) => step("letting the root's base go", rootfs::drop_base(k, base))?,
        (Some(base), true) if base.mountpoint != launch.root.mountpoint => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the launch's root is not where this sandbox built its base",
            ));
        }
        (None, true) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the launch extends a root base this sandbox did not build",
            ));
        }
        _ => {}
    }
    // On the template, the function's trees come as detached mounts, one per bind.
    let trees = match spec.template {
        true => (0..launch.root.binds.len())
            .map(|_| step("receiving a tree", read_fd(ctl, b'b', "a tree's mount")))
            .collect::<io::Result<Vec<_>>>()?,
        false => Vec::new(),
    };
    let tmp_mount = match launch.root.tmp {
        Tmp::Mount => Some(step(
            "receiving /tmp",
            read_fd(ctl, b't', "the /tmp mount"),
        )?),
        Tmp::Tmpfs { .. } => None,
    };
    let tmp_fd = tmp_mount.as_ref().map(AsRawFd::as_raw_fd);
    let built = match spec.template {
        true => {
            let fds: Vec<RawFd> = trees.iter().map(AsRawFd::as_raw_fd).collect();
            rootfs::build_in_template(k, &launch.root, &fds, tmp_fd)
        }
        false => rootfs::build(k, &launch.root, tmp_fd),
    };
    step("building the root filesystem", built)?;
    // PID 1's copies of the mount descriptors, attached by now.
    drop((trees, tmp_mount));
    step("setting the hostname", k.sethostname(&launch.hostname))?;
    // The function's process shares this mount namespace: forked on the template's root (now
    // the function's), or moved into the new root by pivot_root with PID 1's (or, for an
    // interpreter started ahead, in the base it was chrooted in, now the root).
    let (child, failure, companions) = function.launch(&frame, &launch);
    if !failure.is_empty() {
        let _ = (&*ctl).write_all(format!("exec: {failure}\n").as_bytes());
        return Ok(Next::Reap(child));
    }
    let _ = idle::block_reaped(); // From `started` on, the server may drain PID 1.
    let _ = (&*ctl).write_all(b"started\n");
    let _ = companions::tell(ctl, &companions, launch.companions.programs.len());
    Ok(Next::Reap(child))
}

/// Makes the root's base ready and returns where it is: on the template, the root itself, which
/// needs only this PID namespace's `/proc`; otherwise built at its mountpoint, to pivot into at
/// launch.
fn base_root<'a>(k: &dyn Kernel, spec: &Spec, base: &'a rootfs::Base) -> io::Result<&'a Path> {
    if spec.template {
        rootfs::mount_proc(k, Path::new("/proc"))?;
        return Ok(Path::new("/"));
    }
    rootfs::build_base(k, base)?;
    Ok(&base.mountpoint)
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

/// Sets `lo` up in the current network namespace, unless it is up already (as in a namespace the
/// server prepared): setting the flags takes the kernel's `rtnl_lock`, which the network thread
/// holds while it makes the next namespaces' veth pairs, and reading them does not.
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
        if req.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A cgroup v2 hierarchy mounted for one test, and a group in it; both gone on drop.
    struct Group {
        mount: tempfile::TempDir,
        dir: PathBuf,
    }

    impl Group {
        fn new() -> Self {
            // SAFETY: geteuid has no preconditions.
            let euid = unsafe { libc::geteuid() };
            assert_eq!(
                euid, 0,
                "this test mounts a cgroup v2 hierarchy: run it as root"
            );
            let mount = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "cgroup2", "none"])
                .arg(mount.path())
                .status()
                .unwrap();
            assert!(status.success(), "cannot mount cgroup2 on this host");
            let dir = mount
                .path()
                .join(format!("lamina-test-{}", std::process::id()));
            let group = Group { mount, dir };
            std::fs::create_dir(&group.dir).unwrap();
            group
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.dir);
            let _ = std::process::Command::new("umount")
                .arg(self.mount.path())
                .status();
        }
    }

    /// Forks a child that waits until killed; returns its pid and whether it was born in the
    /// group, after checking the kernel's own view of where it is.
    fn fork_waiting(group: Option<&std::fs::File>) -> (libc::pid_t, bool) {
        match fork_pid_one(group).unwrap() {
            (0, ..) => loop {
                // SAFETY: async-signal-safe; the parent kills this child.
                unsafe { libc::pause() };
            },
            (child, born, ..) => (child, born),
        }
    }

    fn kill_and_reap(pid: libc::pid_t) {
        // SAFETY: our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }

    #[test]
    fn pid_one_is_born_in_its_cgroup_v2_group() {
        let g = Group::new();
        let dir = std::fs::File::open(&g.dir).unwrap();
        let (pid, born) = fork_waiting(Some(&dir));
        let procs = std::fs::read_to_string(g.dir.join("cgroup.procs")).unwrap();
        kill_and_reap(pid);
        assert!(born, "clone3 with CLONE_INTO_CGROUP was refused");
        assert_eq!(
            procs.trim(),
            pid.to_string(),
            "the child is not in its group"
        );
    }

    #[test]
    fn a_group_the_kernel_refuses_gets_a_plain_fork() {
        let not_a_group = std::fs::File::open("/dev/null").unwrap();
        let (pid, born) = fork_waiting(Some(&not_a_group));
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        kill_and_reap(pid);
        assert!(!born);
        assert_eq!(
            cgroup,
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            "a plain fork stays in its parent's groups"
        );
    }
}
