//! What isolation this host can provide, detected once at start.

use std::path::Path;

use crate::cgroup::Layout;
use crate::kernel::Kernel;

/// The host's capabilities.
#[derive(Debug, Clone)]
pub struct Host {
    /// Running as root (needed for namespaces and cgroups without a user namespace).
    pub root: bool,
    /// The cgroup hierarchy, if one with memory, cpu and pids controllers is usable.
    pub cgroups: Option<Layout>,
    /// Online CPUs.
    pub cpus: u64,
    /// Why `/tmp` is not on disk, when it is not.
    pub tmp_note: Option<String>,
    /// What network functions get.
    pub net_note: Option<String>,
}

impl Host {
    pub fn detect(k: &dyn Kernel) -> Self {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        // Without root, cgroups are not ours to create (delegation is not supported yet).
        let cgroups = if root {
            Layout::detect(k, Path::new("/sys/fs/cgroup"))
                .map(|l| l.in_own_group(k, Path::new("/proc/self/cgroup")))
        } else {
            None
        };
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        Self {
            root,
            cgroups,
            cpus,
            tmp_note: None,
            net_note: None,
        }
    }

    /// Whether sandboxes can be created at all.
    pub fn can_sandbox(&self) -> Result<(), String> {
        if !self.root && !user_namespaces_allowed() {
            return Err("functions cannot run: the server is not root and this kernel does not allow unprivileged user namespaces (run as root, or raise user.max_user_namespaces above 0)".into());
        }
        Ok(())
    }

    /// One line for the start-up log that says what is and is not enforced.
    pub fn summary(&self) -> String {
        let cg = match &self.cgroups {
            Some(l) => format!(
                "{}: memory, cpu, pids and freezer limits enforced",
                l.name()
            ),
            None => {
                "no usable cgroup hierarchy: memory, CPU and process limits are NOT enforced".into()
            }
        };
        let who = if self.root {
            "root: namespaces, a curated read-only root, seccomp, a uid of its own per environment"
        } else if user_namespaces_allowed() {
            "not root: a user namespace per environment, a curated read-only root, seccomp, no capabilities (one uid shared by all environments)"
        } else {
            "not root and no user namespaces: functions cannot run"
        };
        let tmp = self
            .tmp_note
            .as_deref()
            .unwrap_or("/tmp on disk (an ext4 filesystem per environment)");
        let net = self
            .net_note
            .as_deref()
            .unwrap_or("no network for functions");
        format!("isolation: {who}; {cg}; {tmp}; {net}; {} CPUs", self.cpus)
    }
}

fn user_namespaces_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        && std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
            .map_or(true, |s| s.trim() != "0")
}
