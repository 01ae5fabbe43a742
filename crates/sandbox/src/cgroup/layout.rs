//! Where an environment's groups go: the hierarchy the host offers, and on v2 the group this
//! server was started in when it is the server's own.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kernel::Kernel;

/// The v1 controllers a sandbox uses.
pub(super) const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "freezer"];

/// Which cgroup hierarchy the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Controllers mounted separately under `root/<controller>`.
    V1 { root: PathBuf },
    /// The unified hierarchy; `root` is where Lamina's groups go: the hierarchy's root, or with
    /// `subtree`, the group this server was started in (its service's delegated group under
    /// systemd), which the server leaves for a leaf of its own.
    V2 { root: PathBuf, subtree: bool },
}

/// The leaf a server moves itself into when it runs in its own delegated group.
pub const SERVER_LEAF: &str = "lamina-server";

impl Layout {
    /// Finds the hierarchy under `root` (normally `/sys/fs/cgroup`). A hybrid host whose unified
    /// hierarchy lacks the memory controller is treated as v1.
    pub fn detect(k: &dyn Kernel, root: &Path) -> Option<Self> {
        if let Ok(controllers) = k.read(&root.join("cgroup.controllers"))
            && ["memory", "cpu", "pids"]
                .iter()
                .all(|c| controllers.split_whitespace().any(|x| x == *c))
        {
            return Some(Layout::V2 {
                root: root.to_path_buf(),
                subtree: false,
            });
        }
        if V1_CONTROLLERS.iter().all(|c| k.exists(&root.join(c))) {
            return Some(Layout::V1 {
                root: root.to_path_buf(),
            });
        }
        None
    }

    /// On v2, puts Lamina's groups in the group this process runs in, when that group is not
    /// the hierarchy's root, holds no other process, and offers the memory, cpu and pids
    /// controllers: under systemd a
    /// service's group is its own only with `Delegate=yes`, and a group holding processes may
    /// not have children with controllers (the no-internal-processes rule), so [`Self::prepare`]
    /// moves the server into a leaf first. Elsewhere (no systemd, or no delegation) groups stay
    /// at the hierarchy's root.
    pub fn in_own_group(self, k: &dyn Kernel, proc_self_cgroup: &Path) -> Self {
        let Layout::V2 { root, .. } = &self else {
            return self;
        };
        let own = k.read(proc_self_cgroup).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| p.trim().trim_matches('/').to_owned())
        });
        let Some(own) = own.filter(|p| !p.is_empty()) else {
            return self;
        };
        // A restart from inside our own leaf: the group above it is ours.
        let own = own
            .strip_suffix(SERVER_LEAF)
            .map(|p| p.trim_end_matches('/').to_owned())
            .unwrap_or(own);
        if own.is_empty() {
            return self;
        }
        let base = root.join(&own);
        let offered = k.read(&base.join("cgroup.controllers")).unwrap_or_default();
        // Only a group holding nothing but this server is its own (a login shell's session
        // scope, say, is not: the shell could not leave it).
        let me = std::process::id().to_string();
        let alone = k
            .read(&base.join("cgroup.procs"))
            .is_ok_and(|p| p.lines().all(|l| l.trim().is_empty() || l.trim() == me));
        if alone
            && ["memory", "cpu", "pids"]
                .iter()
                .all(|c| offered.split_whitespace().any(|x| x == *c))
        {
            Layout::V2 {
                root: base,
                subtree: true,
            }
        } else {
            self
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layout::V1 { .. } => "cgroup v1",
            Layout::V2 { .. } => "cgroup v2",
        }
    }

    /// With `subtree`, moves this server into its leaf ([`SERVER_LEAF`]), so that its group may
    /// have children with controllers. Done first thing, before the server starts children
    /// that would otherwise be born in the group; [`Self::prepare`] makes sure of it again.
    pub fn enter_leaf(&self, k: &dyn Kernel) -> io::Result<()> {
        if let Layout::V2 {
            root,
            subtree: true,
        } = self
        {
            let leaf = root.join(SERVER_LEAF);
            k.create_dir(&leaf)?;
            k.write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        }
        Ok(())
    }

    /// With `subtree`, gives the group back as the server found it: no controllers enabled for
    /// children, this server in it, and no leaf. Called last at shutdown, once the parent group
    /// is gone: while a child group has these controllers for its own children, the kernel
    /// refuses to turn them off (`EBUSY`). A supervisor other than systemd (which removes a
    /// service's group when it stops) starts the next server in the same group, and the kernel
    /// refuses a process in a group whose children have controllers (the no-internal-processes
    /// rule).
    pub fn leave_leaf(&self, k: &dyn Kernel) -> io::Result<()> {
        let Layout::V2 {
            root,
            subtree: true,
        } = self
        else {
            return Ok(());
        };
        k.write(&root.join("cgroup.subtree_control"), "-memory -cpu -pids")?;
        k.write(&root.join("cgroup.procs"), &std::process::id().to_string())?;
        // A process of the server's that has just exited (a sandbox's watcher, mkfs.ext4) may
        // keep the leaf busy for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        match while_busy(deadline, || k.remove_dir(&root.join(SERVER_LEAF))) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Prepares the parent `lamina` group (v2: enables the controllers for its children).
    pub fn prepare(&self, k: &dyn Kernel, parent: &str) -> io::Result<()> {
        match self {
            Layout::V1 { root } => {
                for c in V1_CONTROLLERS {
                    k.create_dir(&root.join(c).join(parent))?;
                }
            }
            Layout::V2 { root, subtree } => {
                if *subtree {
                    self.enter_leaf(k)?;
                }
                // A child process started just before the move (mkfs for the /tmp pool) keeps
                // the group busy for a moment.
                let deadline = Instant::now() + Duration::from_secs(5);
                while_busy(deadline, || {
                    k.write(&root.join("cgroup.subtree_control"), "+memory +cpu +pids")
                })?;
                let p = root.join(parent);
                k.create_dir(&p)?;
                k.write(&p.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
            }
        }
        Ok(())
    }

    /// Removes the (empty) parent group.
    pub fn remove_parent(&self, k: &dyn Kernel, parent: &str) -> io::Result<()> {
        match self {
            Layout::V1 { root } => {
                for c in V1_CONTROLLERS {
                    let _ = k.remove_dir(&root.join(c).join(parent));
                }
                Ok(())
            }
            Layout::V2 { root, .. } => k.remove_dir(&root.join(parent)),
        }
    }

    /// Names of leftover sandbox groups under the parent (from a crashed run).
    pub fn leftovers(&self, parent: &str) -> Vec<String> {
        let dir = match self {
            Layout::V1 { root } => root.join("memory").join(parent),
            Layout::V2 { root, .. } => root.join(parent),
        };
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs `f` until it succeeds, fails other than with `EBUSY`, or `deadline` passes.
fn while_busy(deadline: Instant, mut f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// The parent group of the server whose work directory is `work`: one per data directory, so
/// that servers sharing a host never touch each other's environments, and a restart finds its
/// own leftovers. FNV-1a: stable and dependency-free.
pub fn parent_name(work: &Path) -> String {
    let hash = work
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    format!("lamina-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Call, RecordingKernel};

    #[test]
    fn detects_v2_and_hybrid_v1() {
        let k = RecordingKernel::new();
        k.set_file(
            "/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma misc",
        );
        assert_eq!(
            Layout::detect(&k, Path::new("/sys/fs/cgroup")),
            Some(Layout::V2 {
                root: "/sys/fs/cgroup".into(),
                subtree: false,
            })
        );

        // This machine's layout: the unified hierarchy has only hugetlb.
        let k = RecordingKernel::new();
        k.set_file("/sys/fs/cgroup/cgroup.controllers", "hugetlb");
        for c in ["memory", "cpu", "pids", "freezer"] {
            k.set_file(format!("/sys/fs/cgroup/{c}"), "");
        }
        assert_eq!(
            Layout::detect(&k, Path::new("/sys/fs/cgroup")),
            Some(Layout::V1 {
                root: "/sys/fs/cgroup".into()
            })
        );
        assert_eq!(
            Layout::detect(&RecordingKernel::new(), Path::new("/sys/fs/cgroup")),
            None
        );
    }

    #[test]
    fn v2_under_systemd_uses_the_services_delegated_group_and_leaves_it_for_a_leaf() {
        let k = RecordingKernel::new();
        k.set_file("/cg/cgroup.controllers", "cpu memory pids");
        k.set_file("/proc/self/cgroup", "0::/system.slice/lamina.service\n");
        k.set_file(
            "/cg/system.slice/lamina.service/cgroup.controllers",
            "cpu memory pids",
        );
        k.set_file(
            "/cg/system.slice/lamina.service/cgroup.procs",
            &format!("{}\n", std::process::id()),
        );
        let layout = Layout::detect(&k, Path::new("/cg"))
            .unwrap()
            .in_own_group(&k, Path::new("/proc/self/cgroup"));
        assert_eq!(
            layout,
            Layout::V2 {
                root: "/cg/system.slice/lamina.service".into(),
                subtree: true
            }
        );
        layout.prepare(&k, "lamina").unwrap();
        let w = k.writes();
        assert_eq!(
            w[0],
            (
                "/cg/system.slice/lamina.service/lamina-server/cgroup.procs".into(),
                std::process::id().to_string()
            ),
            "the server leaves its group before the group gets controllers: {w:?}"
        );
        assert_eq!(
            w[1].0,
            PathBuf::from("/cg/system.slice/lamina.service/cgroup.subtree_control")
        );

        // At shutdown, the group is given back as it was found: controllers off for children
        // first (the kernel refuses a process in the group before), then the server back in
        // it, then the leaf gone.
        k.clear();
        layout.remove_parent(&k, "lamina").unwrap();
        layout.leave_leaf(&k).unwrap();
        assert_eq!(
            k.calls(),
            vec![
                Call::RemoveDir("/cg/system.slice/lamina.service/lamina".into()),
                Call::Write(
                    "/cg/system.slice/lamina.service/cgroup.subtree_control".into(),
                    "-memory -cpu -pids".into()
                ),
                Call::Write(
                    "/cg/system.slice/lamina.service/cgroup.procs".into(),
                    std::process::id().to_string()
                ),
                Call::RemoveDir("/cg/system.slice/lamina.service/lamina-server".into()),
            ]
        );
        // Groups at the root, or v1's: nothing of the hierarchy's is the server's to give back.
        k.clear();
        for other in [
            Layout::V2 {
                root: "/cg".into(),
                subtree: false,
            },
            Layout::V1 { root: "/cg".into() },
        ] {
            other.leave_leaf(&k).unwrap();
        }
        assert_eq!(k.calls(), vec![]);

        // Restarted from inside that leaf: the same group.
        k.set_file(
            "/proc/self/cgroup",
            "0::/system.slice/lamina.service/lamina-server\n",
        );
        assert_eq!(
            Layout::detect(&k, Path::new("/cg"))
                .unwrap()
                .in_own_group(&k, Path::new("/proc/self/cgroup")),
            layout
        );
        // Without delegation (no controllers offered there), shared with other processes (a
        // login shell's scope), or at the root: the root.
        k.set_file(
            "/cg/user.slice/shell.scope/cgroup.controllers",
            "cpu memory pids",
        );
        k.set_file("/cg/user.slice/shell.scope/cgroup.procs", "1\n2\n");
        for own in [
            "0::/user.slice/session-1.scope\n",
            "0::/user.slice/shell.scope\n",
            "0::/\n",
        ] {
            k.set_file("/proc/self/cgroup", own);
            assert_eq!(
                Layout::detect(&k, Path::new("/cg"))
                    .unwrap()
                    .in_own_group(&k, Path::new("/proc/self/cgroup")),
                Layout::V2 {
                    root: "/cg".into(),
                    subtree: false
                }
            );
        }
    }
}
