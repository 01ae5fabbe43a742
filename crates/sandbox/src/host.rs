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
}

impl Host {
    pub fn detect(k: &dyn Kernel) -> Self {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let cgroups = Layout::detect(k, Path::new("/sys/fs/cgroup"));
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        Self {
            root,
            cgroups,
            cpus,
        }
    }

    /// Whether sandboxes can be created at all.
    pub fn can_sandbox(&self) -> Result<(), String> {
        if !self.root {
            return Err("functions cannot run: the server is not root (namespaces, mounts and cgroups need root; run it as root or in a container with CAP_SYS_ADMIN)".into());
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
            "root: namespaces, read-only root, seccomp, unprivileged uids"
        } else {
            "not root: sandboxes unavailable"
        };
        format!("isolation: {who}; {cg}; {} CPUs", self.cpus)
    }
}
