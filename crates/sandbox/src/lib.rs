//! Execution sandboxes: a process tree in its own mount, PID, IPC, UTS, network and cgroup
//! namespaces, on a read-only root, under cgroup limits, as an unprivileged user with no
//! capabilities, `no_new_privs` and a seccomp filter.
//!
//! Synchronous and free of tokio. Knows nothing about Lambda: callers describe a sandbox with a
//! [`Spec`] and a [`Launch`] and get back its process, its output pipes and a TCP listener that lives inside its
//! network namespace.
//!
//! Sandboxes start by executing [`init::main`] in a fresh process, never by forking a
//! multi-threaded one: `lamina-init` (crates/init, a small static binary the server carries), or
//! the server's own binary with its hidden `sandbox-init` subcommand. Every kernel call goes through
//! [`kernel::Kernel`], which has a recording fake for unit tests.

pub mod cgroup;
mod fdpass;
pub mod host;
pub mod init;
pub mod kernel;
pub mod preflight;
pub mod rootfs;
pub mod scratch;
mod seccomp;
mod spawn;
mod spawner;
pub mod sysroot;
pub mod uids;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use spawn::{Prepared, SETUP_LIMIT, Sandbox, SpawnError, prepare};
pub use spawner::{Process, guard_groups, stop_fork_server, unguard_groups, wait_for_sweep};

/// What `sandbox-init` needs before it knows the function: namespaces, the Runtime API's
/// listener, PID 1 in the sandbox's cgroups. A sandbox can be made this far ahead of time
/// ([`prepare`]) and given a function later ([`Prepared::launch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The files PID 1 writes "0" into to join the sandbox's cgroups while it has one thread
    /// ([`crate::cgroup::Cgroup::join_files`]); the watching `sandbox-init` stays outside, so
    /// that the freezer never stops it.
    pub cgroup_join: Vec<PathBuf>,
    /// On cgroup v2, the sandbox's group, in which PID 1 is then born (`clone3` with
    /// `CLONE_INTO_CGROUP`) rather than moved by a write to `cgroup_join`. A kernel that
    /// refuses the clone (before Linux 5.7, or a filter against `clone3`) gets the write.
    #[serde(default)]
    pub cgroup_dir: Option<PathBuf>,
    /// Writes that thaw the sandbox's cgroups: a watcher makes them after killing a sandbox
    /// whose server is gone, since frozen processes (cgroup v1) die only once thawed. A sandbox
    /// with none has no groups, and keeps its watcher (see `init/hand_over.rs`).
    pub thaw: Vec<(PathBuf, String)>,
    /// The sandbox joins a network namespace the server prepared (sent over `SCM_RIGHTS`)
    /// instead of making an empty one.
    #[serde(default)]
    pub netns: bool,
    /// The port of the listener bound on the sandbox's own `127.0.0.1`.
    pub runtime_api_port: u16,
    /// Run in a new user namespace (when the server is not root): uid/gid 0 inside map to the
    /// server's own ids outside, and the function keeps uid 0 but no capabilities.
    pub user_namespace: bool,
    /// The part of the root every function shares, built before the sandbox reports itself
    /// ready, so that a launch on it ([`rootfs::RootPlan::on_base`]) only adds the function's.
    #[serde(default)]
    pub base: Option<rootfs::Base>,
    /// The sandbox's mount namespace is a copy of the template the server made of
    /// [`Spec::base`] ([`rootfs::make_template`]: its namespace and its root, sent over
    /// `SCM_RIGHTS` after the network namespace): its root is the base already, and a launch's
    /// trees come as detached mounts ([`rootfs::detached_trees`]). Root only.
    #[serde(default)]
    pub template: bool,
    /// An interpreter the sandbox starts on its base before it reports itself ready, for a
    /// launch of exactly that interpreter (needs [`Spec::base`]).
    #[serde(default)]
    pub zygote: Option<Zygote>,
}

/// A managed runtime's interpreter started ahead, in a sandbox that does not know its function
/// yet: as its user, under its limits and filters, in the root's base (`chroot`), with only
/// the variables that take effect when a process starts (see `lamina-runtime-api`'s
/// `runtimes::startup_sensitive`). It waits on descriptor [`ZYGOTE_FD`] (named by the variable
/// [`ZYGOTE_VAR`]) until the launch, which it then reads as one JSON object, `{"cwd": …,
/// "env": [[name, value], …]}`, written once the root is complete: nothing of the function is
/// read or run before. The launch must name the same program, user and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zygote {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub uid: u32,
    pub gid: u32,
    pub nofile: u64,
    pub nproc: u64,
}

/// The descriptor on which an interpreter started ahead reads its launch.
pub const ZYGOTE_FD: i32 = 3;
/// The variable that tells the runtime client it was started ahead (its value: [`ZYGOTE_FD`]).
pub const ZYGOTE_VAR: &str = "_LAMINA_LAUNCH_FD";

impl Zygote {
    /// Whether `launch` starts this interpreter as this user, with these limits, and has every
    /// variable it started with.
    pub fn fits(&self, launch: &Launch) -> bool {
        self.argv == launch.argv
            && (self.uid, self.gid, self.nofile, self.nproc)
                == (launch.uid, launch.gid, launch.nofile, launch.nproc)
            && launch.root.on_base
            && launch.companions.programs.is_empty()
            && self
                .env
                .iter()
                .filter(|(name, _)| name != ZYGOTE_VAR)
                .all(|var| launch.env.contains(var))
    }
}

/// The function's part: its root, its user and limits, and what to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    pub hostname: String,
    pub root: rootfs::RootPlan,
    pub uid: u32,
    pub gid: u32,
    pub nofile: u64,
    pub nproc: u64,
    /// Working directory of the function's process, inside the sandbox.
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Programs started beside the function's own.
    #[serde(default)]
    pub companions: Companions,
}

/// Programs started beside the function's own, once it has been executed: each as a process of
/// its own, with the same user, limits, filters and working directory, and the launch's
/// variables but those named in `hidden`. Each is a child of the sandbox's PID 1, which reaps
/// it, not of the function, which need not; the server gets a pidfd for each
/// ([`Sandbox::companions`]). One that is not an executable program (checked before anything
/// runs), or more than [`MAX_COMPANIONS`], fails the launch, with a message that begins with
/// [`COMPANION_FAILED`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Companions {
    /// Absolute paths inside the sandbox, started in this order.
    pub programs: Vec<String>,
    pub hidden: Vec<String>,
}

/// The signal that tells a sandbox's PID 1, handed over (see [`Sandbox::ctl`]), that its
/// environment ends: it passes the function `SIGTERM` and reaps until every process has exited.
pub const DRAIN_SIGNAL: i32 = libc::SIGUSR1;

/// The most programs one launch starts beside the function's own.
pub const MAX_COMPANIONS: usize = 12;

/// How the message of a launch that failed because of a companion begins (a control character
/// no program's path begins with); the program's path follows, then `": "` and the reason.
pub const COMPANION_FAILED: &str = "\u{1}companion ";
