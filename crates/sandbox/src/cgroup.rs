//! Cgroups for one sandbox, on either hierarchy: v1 (one directory per controller, as on hybrid
//! hosts) or v2 (one unified directory).
//!
//! | what            | v1                                   | v2                         |
//! |-----------------|--------------------------------------|----------------------------|
//! | memory limit    | `memory.limit_in_bytes`              | `memory.max` (+ `memory.swap.max = 0`) |
//! | peak memory     | `memory.max_usage_in_bytes` (write 0 resets) | `memory.peak` ([`PeakMeter`]) |
//! | OOM kills       | `memory.oom_control`: `oom_kill N`   | `memory.events`: `oom_kill N` |
//! | CPU quota       | `cpu.cfs_quota_us` / `cpu.cfs_period_us` | `cpu.max` = `quota period` |
//! | processes       | `pids.max`                           | `pids.max`                 |
//! | freeze          | `freezer.state` = `FROZEN`/`THAWED`  | `cgroup.freeze` = `1`/`0`  |
//! | kill everything | signal each pid in `cgroup.procs`    | `cgroup.kill` = `1`        |

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kernel::Kernel;

mod peak;
pub use peak::PeakMeter;

/// The v1 controllers a sandbox uses.
const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "freezer"];

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
                loop {
                    match k.write(&root.join("cgroup.subtree_control"), "+memory +cpu +pids") {
                        Err(e)
                            if e.raw_os_error() == Some(libc::EBUSY)
                                && Instant::now() < deadline =>
                        {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        r => break r?,
                    }
                }
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

/// Limits for one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPU time per period, µs; `None` is unlimited.
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    pub pids_max: u64,
}

/// CPU proportional to memory, as on Lambda: 1769 MB buys one vCPU, capped at the host's cores.
pub fn cpu_quota_for(memory_mb: u64, period_us: u64, host_cpus: u64) -> u64 {
    let quota = memory_mb * period_us / 1769;
    quota.clamp(1000, host_cpus.max(1) * period_us)
}

/// The cgroup(s) of one sandbox.
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
    /// Path relative to the hierarchy root, e.g. `lamina/env-42`.
    rel: PathBuf,
}

impl Cgroup {
    /// Creates the group and writes its limits.
    pub fn create(
        k: &dyn Kernel,
        layout: &Layout,
        rel: impl Into<PathBuf>,
        limits: Limits,
    ) -> io::Result<Self> {
        let cg = Self {
            layout: layout.clone(),
            rel: rel.into(),
        };
        match &cg.layout {
            Layout::V1 { .. } => {
                for c in V1_CONTROLLERS {
                    k.create_dir(&cg.v1(c))?;
                }
                k.write(
                    &cg.v1("cpu").join("cpu.cfs_period_us"),
                    &limits.cpu_period_us.to_string(),
                )?;
                k.write(
                    &cg.v1("pids").join("pids.max"),
                    &limits.pids_max.to_string(),
                )?;
            }
            Layout::V2 { .. } => {
                let d = cg.v2();
                k.create_dir(&d)?;
                k.write(&d.join("memory.swap.max"), "0")?;
                // One OOM kills the whole environment, as on Lambda.
                k.write(&d.join("memory.oom.group"), "1")?;
                k.write(&d.join("pids.max"), &limits.pids_max.to_string())?;
            }
        }
        cg.set_memory(k, limits.memory_bytes)?;
        cg.set_cpu(k, limits.cpu_quota_us, limits.cpu_period_us)?;
        Ok(cg)
    }

    /// Sets the memory limit (a sandbox made ahead of time gets its function's when it is
    /// given one).
    pub fn set_memory(&self, k: &dyn Kernel, bytes: u64) -> io::Result<()> {
        match &self.layout {
            Layout::V1 { .. } => k.write(
                &self.v1("memory").join("memory.limit_in_bytes"),
                &bytes.to_string(),
            ),
            Layout::V2 { .. } => k.write(&self.v2().join("memory.max"), &bytes.to_string()),
        }
    }

    /// A group that already exists (e.g. left over by a crashed run).
    pub fn existing(layout: &Layout, rel: impl Into<PathBuf>) -> Option<Self> {
        let cg = Self {
            layout: layout.clone(),
            rel: rel.into(),
        };
        cg.v2().parent().is_some().then_some(cg)
    }

    fn v1(&self, controller: &str) -> PathBuf {
        match &self.layout {
            Layout::V1 { root } => root.join(controller).join(&self.rel),
            Layout::V2 { root, .. } => root.join(&self.rel),
        }
    }

    fn v2(&self) -> PathBuf {
        match &self.layout {
            Layout::V1 { root } | Layout::V2 { root, .. } => root.join(&self.rel),
        }
    }

    /// The files a process writes its own pid into to join this sandbox's group(s).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 { .. } => V1_CONTROLLERS
                .iter()
                .map(|c| self.v1(c).join("cgroup.procs"))
                .collect(),
            Layout::V2 { .. } => vec![self.v2().join("cgroup.procs")],
        }
    }

    /// On v2, the group's directory, in which a process can be born (`CLONE_INTO_CGROUP`).
    pub fn unified_dir(&self) -> Option<PathBuf> {
        matches!(self.layout, Layout::V2 { .. }).then(|| self.v2())
    }

    /// The file writes that thaw the group (for a process that cannot hold a `Kernel`).
    pub fn thaw_writes(&self) -> Vec<(PathBuf, String)> {
        match &self.layout {
            Layout::V1 { .. } => vec![(
                self.v1("freezer").join("freezer.state"),
                "THAWED".to_owned(),
            )],
            Layout::V2 { .. } => vec![(self.v2().join("cgroup.freeze"), "0".to_owned())],
        }
    }

    /// Sets the CPU quota; `None` lifts it.
    pub fn set_cpu(&self, k: &dyn Kernel, quota_us: Option<u64>, period_us: u64) -> io::Result<()> {
        match &self.layout {
            Layout::V1 { .. } => {
                let q = quota_us.map_or("-1".to_owned(), |q| q.to_string());
                k.write(&self.v1("cpu").join("cpu.cfs_quota_us"), &q)
            }
            Layout::V2 { .. } => {
                let q = quota_us.map_or("max".to_owned(), |q| q.to_string());
                k.write(&self.v2().join("cpu.max"), &format!("{q} {period_us}"))
            }
        }
    }

    /// Stops every process of the sandbox; returns once the kernel reports it frozen.
    pub fn freeze(&self, k: &dyn Kernel) -> io::Result<()> {
        self.set_frozen(k, true)
    }

    /// Lets the sandbox run again.
    pub fn thaw(&self, k: &dyn Kernel) -> io::Result<()> {
        self.set_frozen(k, false)
    }

    fn set_frozen(&self, k: &dyn Kernel, frozen: bool) -> io::Result<()> {
        // What to write, and the file plus line that confirm the new state.
        let (file, value, status, want) = match &self.layout {
            Layout::V1 { .. } => {
                let state = self.v1("freezer").join("freezer.state");
                let v = if frozen { "FROZEN" } else { "THAWED" };
                (state.clone(), v, state, v)
            }
            Layout::V2 { .. } => (
                self.v2().join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
                self.v2().join("cgroup.events"),
                if frozen { "frozen 1" } else { "frozen 0" },
            ),
        };
        k.write(&file, value)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match k.read(&status) {
                Ok(s) if s.lines().any(|l| l.trim() == want) => return Ok(()),
                // The fake kernel keeps only what was written.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the freezer did not settle within 2 s",
                    ));
                }
                _ => std::thread::sleep(Duration::from_micros(100)),
            }
        }
    }

    /// How many processes the OOM killer has killed in this group.
    pub fn oom_kills(&self, k: &dyn Kernel) -> io::Result<u64> {
        let file = match &self.layout {
            Layout::V1 { .. } => self.v1("memory").join("memory.oom_control"),
            Layout::V2 { .. } => self.v2().join("memory.events"),
        };
        let text = k.read(&file)?;
        Ok(text
            .lines()
            .find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0))
    }

    /// SIGKILLs every process in the group. The CPU quota is lifted first: a dying process needs
    /// CPU time to exit, and a fork bomb under a 7 % quota would take many seconds to die.
    pub fn kill_all(&self, k: &dyn Kernel) -> io::Result<()> {
        let period = match &self.layout {
            Layout::V1 { .. } => k
                .read(&self.v1("cpu").join("cpu.cfs_period_us"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(100_000),
            Layout::V2 { .. } => 100_000,
        };
        let _ = self.set_cpu(k, None, period);
        match &self.layout {
            Layout::V2 { .. } => k.write(&self.v2().join("cgroup.kill"), "1"),
            Layout::V1 { .. } => {
                // Freeze, signal everything listed, thaw: a frozen group cannot fork a process
                // that escapes the list between reading it and signalling.
                let procs = self.v1("pids").join("cgroup.procs");
                let state = self.v1("freezer").join("freezer.state");
                for _ in 0..100 {
                    let _ = k.write(&state, "FROZEN");
                    let deadline = Instant::now() + Duration::from_millis(50);
                    while Instant::now() < deadline
                        && k.read(&state).is_ok_and(|s| s.trim() == "FREEZING")
                    {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    let text = k.read(&procs).unwrap_or_default();
                    let pids: Vec<i32> =
                        text.lines().filter_map(|l| l.trim().parse().ok()).collect();
                    for pid in &pids {
                        let _ = k.kill(*pid, libc::SIGKILL);
                    }
                    let _ = k.write(&state, "THAWED");
                    if pids.is_empty() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            }
        }
    }

    /// Removes the group(s), waiting (up to 10 s) for their last processes to be gone.
    pub fn destroy(&self, k: &dyn Kernel) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Layout::V2 { .. } = &self.layout {
            // v2 says when the group is empty: `populated 0` in cgroup.events.
            let events = self.v2().join("cgroup.events");
            while Instant::now() < deadline {
                match k.read(&events) {
                    Ok(s) if s.lines().any(|l| l.trim() == "populated 1") => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    _ => break,
                }
            }
        }
        let dirs: Vec<PathBuf> = match &self.layout {
            Layout::V1 { .. } => V1_CONTROLLERS.iter().map(|c| self.v1(c)).collect(),
            Layout::V2 { .. } => vec![self.v2()],
        };
        let mut last = Ok(());
        for d in dirs {
            // Removal races with the exit (and reaping) of the last process.
            let mut wait = Duration::from_micros(500);
            let r = loop {
                match k.remove_dir(&d) {
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_millis(50));
                    }
                    r => break r,
                }
            };
            match r {
                Err(e) if e.kind() != io::ErrorKind::NotFound => last = Err(e),
                _ => {}
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Call, RecordingKernel};

    fn limits() -> Limits {
        Limits {
            memory_bytes: 128 << 20,
            cpu_quota_us: Some(7235),
            cpu_period_us: 100_000,
            pids_max: 1024,
        }
    }

    fn writes(k: &RecordingKernel) -> Vec<(String, String)> {
        k.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Write(p, v) => Some((p.display().to_string(), v)),
                _ => None,
            })
            .collect()
    }

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
    fn v1_setup_sequence() {
        let k = RecordingKernel::new();
        let layout = Layout::V1 { root: "/cg".into() };
        let cg = Cgroup::create(&k, &layout, "lamina/env-1", limits()).unwrap();
        let calls = k.calls();
        for c in ["memory", "cpu", "pids", "freezer"] {
            assert!(
                calls.contains(&Call::CreateDir(format!("/cg/{c}/lamina/env-1").into())),
                "{c}"
            );
        }
        assert_eq!(
            writes(&k),
            vec![
                (
                    "/cg/cpu/lamina/env-1/cpu.cfs_period_us".into(),
                    "100000".into()
                ),
                ("/cg/pids/lamina/env-1/pids.max".into(), "1024".into()),
                (
                    "/cg/memory/lamina/env-1/memory.limit_in_bytes".into(),
                    "134217728".into()
                ),
                (
                    "/cg/cpu/lamina/env-1/cpu.cfs_quota_us".into(),
                    "7235".into()
                ),
            ]
        );
        assert_eq!(cg.procs_files().len(), 4);
        k.clear();
        cg.freeze(&k).unwrap();
        cg.set_cpu(&k, None, 100_000).unwrap();
        assert_eq!(
            writes(&k),
            vec![
                (
                    "/cg/freezer/lamina/env-1/freezer.state".into(),
                    "FROZEN".into()
                ),
                ("/cg/cpu/lamina/env-1/cpu.cfs_quota_us".into(), "-1".into()),
            ]
        );
        k.set_file(
            "/cg/memory/lamina/env-1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        assert_eq!(cg.oom_kills(&k).unwrap(), 2);
        k.set_file("/cg/pids/lamina/env-1/cgroup.procs", "41\n42\n");
        k.clear();
        // The fake's procs file never empties, so kill_all gives up after its retries.
        cg.kill_all(&k).unwrap();
        let calls = k.calls();
        // The quota goes first; each round is freeze, kill, thaw.
        assert_eq!(
            calls[..4],
            [
                Call::Write("/cg/cpu/lamina/env-1/cpu.cfs_quota_us".into(), "-1".into()),
                Call::Write(
                    "/cg/freezer/lamina/env-1/freezer.state".into(),
                    "FROZEN".into()
                ),
                Call::Kill(41, libc::SIGKILL),
                Call::Kill(42, libc::SIGKILL),
            ]
        );
        assert_eq!(
            calls[4],
            Call::Write(
                "/cg/freezer/lamina/env-1/freezer.state".into(),
                "THAWED".into()
            )
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
        let w = writes(&k);
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

    #[test]
    fn v2_setup_sequence() {
        let k = RecordingKernel::new();
        let layout = Layout::V2 {
            root: "/cg".into(),
            subtree: false,
        };
        layout.prepare(&k, "lamina").unwrap();
        let cg = Cgroup::create(&k, &layout, "lamina/env-1", limits()).unwrap();
        assert_eq!(
            writes(&k),
            vec![
                (
                    "/cg/cgroup.subtree_control".into(),
                    "+memory +cpu +pids".into()
                ),
                (
                    "/cg/lamina/cgroup.subtree_control".into(),
                    "+memory +cpu +pids".into()
                ),
                ("/cg/lamina/env-1/memory.swap.max".into(), "0".into()),
                ("/cg/lamina/env-1/memory.oom.group".into(), "1".into()),
                ("/cg/lamina/env-1/pids.max".into(), "1024".into()),
                ("/cg/lamina/env-1/memory.max".into(), "134217728".into()),
                ("/cg/lamina/env-1/cpu.max".into(), "7235 100000".into()),
            ]
        );
        assert_eq!(
            cg.procs_files(),
            vec![PathBuf::from("/cg/lamina/env-1/cgroup.procs")]
        );
        k.clear();
        cg.freeze(&k).unwrap();
        cg.thaw(&k).unwrap();
        cg.set_cpu(&k, None, 100_000).unwrap();
        cg.kill_all(&k).unwrap();
        assert_eq!(
            writes(&k),
            vec![
                ("/cg/lamina/env-1/cgroup.freeze".into(), "1".into()),
                ("/cg/lamina/env-1/cgroup.freeze".into(), "0".into()),
                ("/cg/lamina/env-1/cpu.max".into(), "max 100000".into()),
                ("/cg/lamina/env-1/cpu.max".into(), "max 100000".into()),
                ("/cg/lamina/env-1/cgroup.kill".into(), "1".into()),
            ]
        );
        k.set_file(
            "/cg/lamina/env-1/memory.events",
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        );
        assert_eq!(cg.oom_kills(&k).unwrap(), 1);
    }

    #[test]
    fn cpu_is_proportional_to_memory() {
        assert_eq!(cpu_quota_for(1769, 100_000, 8), 100_000);
        assert_eq!(cpu_quota_for(128, 100_000, 8), 7235);
        assert_eq!(cpu_quota_for(10_240, 100_000, 8), 578_858);
        // Capped at the host's cores.
        assert_eq!(cpu_quota_for(10_240, 100_000, 2), 200_000);
    }
}
