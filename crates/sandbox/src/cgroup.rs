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
//! | freeze          | `freezer.state` = `FROZEN`/`THAWED`  | `cgroup.freeze` = `1`/`0` ([`Freezer`]) |
//! | kill everything | signal each pid in `cgroup.procs`    | `cgroup.kill` = `1`        |

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::kernel::Kernel;

mod file;
mod freezer;
mod layout;
mod peak;
pub use freezer::Freezer;
use layout::V1_CONTROLLERS;
pub use layout::{Layout, SERVER_LEAF, parent_name};
pub use peak::PeakMeter;

/// Limits for one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPU time per period, µs; `None` is unlimited.
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    pub pids_max: u64,
}

/// The CFS period of a group the kernel has just made (v1's `cpu.cfs_period_us`, v2's second
/// field of `cpu.max`), whose quota is unlimited too. Writing either walks every CPU group on the
/// host (`tg_set_bandwidth`), so a new group is only told what differs from these.
const FRESH_CPU_PERIOD_US: u64 = 100_000;

/// SIGKILLs every process `procs` lists: freeze (`state`, `values[0]`), wait (up to 50 ms)
/// until `frozen` says the freeze took, signal everything listed, thaw (`values[1]`), until the
/// list is empty: a frozen group cannot fork a process that escapes the list between reading it
/// and signalling.
fn kill_listed(
    k: &dyn Kernel,
    procs: &std::path::Path,
    state: &std::path::Path,
    values: [&str; 2],
    frozen: &dyn Fn() -> bool,
) {
    for _ in 0..100 {
        let _ = k.write(state, values[0]);
        let deadline = Instant::now() + Duration::from_millis(50);
        while Instant::now() < deadline && !frozen() {
            std::thread::sleep(Duration::from_micros(200));
        }
        let text = k.read(procs).unwrap_or_default();
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        for pid in &pids {
            let _ = k.kill(*pid, libc::SIGKILL);
        }
        let _ = k.write(state, values[1]);
        if pids.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills every process in the sandbox groups under `parent` and removes the groups: what a
/// crashed server left, at the next start, or what a server that just died leaves, from its fork
/// server (see `init/fork_server.rs`).
pub fn sweep(k: &dyn Kernel, layout: &Layout, parent: &str) {
    for name in layout.leftovers(parent) {
        if let Some(cg) = Cgroup::existing(layout, format!("{parent}/{name}")) {
            let _ = cg.kill_all(k);
            let _ = cg.destroy(k);
        }
    }
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
        match cg.make(k, &limits) {
            Ok(()) => Ok(cg),
            Err(e) => {
                // Nothing has run in it: what was made of it goes.
                if let Err(gone) = cg.destroy(k) {
                    tracing::warn!(error = %gone, "removing a half-made cgroup failed");
                }
                Err(e)
            }
        }
    }

    /// [`Cgroup::create`]'s directories and limits.
    fn make(&self, k: &dyn Kernel, limits: &Limits) -> io::Result<()> {
        let other_period = limits.cpu_period_us != FRESH_CPU_PERIOD_US;
        match &self.layout {
            Layout::V1 { .. } => {
                for c in V1_CONTROLLERS {
                    k.create_dir(&self.v1(c))?;
                }
                if other_period {
                    k.write(
                        &self.v1("cpu").join("cpu.cfs_period_us"),
                        &limits.cpu_period_us.to_string(),
                    )?;
                }
                k.write(
                    &self.v1("pids").join("pids.max"),
                    &limits.pids_max.to_string(),
                )?;
                // v1 limits memory without swap: no swapping the group's memory out, as v2's
                // `memory.swap.max` of 0 (a function over its memory is killed, not swapped).
                k.write(&self.v1("memory").join("memory.swappiness"), "0")?;
            }
            Layout::V2 { .. } => {
                let d = self.v2();
                k.create_dir(&d)?;
                // A kernel without swap accounting (booted with `swapaccount=0`, or built
                // without it) has no such file: there the group's memory is limited and its
                // swap is not, as for every group on that host.
                match k.write(&d.join("memory.swap.max"), "0") {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    r => r?,
                }
                // One OOM kills the whole environment, as on Lambda.
                k.write(&d.join("memory.oom.group"), "1")?;
                k.write(&d.join("pids.max"), &limits.pids_max.to_string())?;
            }
        }
        self.set_memory(k, limits.memory_bytes)?;
        // v1's quota is a file of its own; v2's `cpu.max` carries the period with it.
        if limits.cpu_quota_us.is_some()
            || (other_period && matches!(self.layout, Layout::V2 { .. }))
        {
            self.set_cpu(k, limits.cpu_quota_us, limits.cpu_period_us)?;
        }
        Ok(())
    }

    /// Sets the memory limit (a sandbox made ahead of time gets its function's when it is
    /// given one).
    pub fn set_memory(&self, k: &dyn Kernel, bytes: u64) -> io::Result<()> {
        match &self.layout {
            Layout::V1 { .. } => {
                let memory = self.v1("memory");
                k.write(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
                // v1 charges TCP buffers to a counter of their own, and only once it has a
                // limit: without one, a function's connections could hold gigabytes of the
                // host's memory (v2 charges them to the group's memory). As much again as the
                // memory, so that no function's connections are starved for it. A kernel
                // without the file has no v1 TCP accounting to turn on.
                match k.write(
                    &memory.join("memory.kmem.tcp.limit_in_bytes"),
                    &bytes.to_string(),
                ) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    r => r,
                }
            }
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

    /// The files a single-threaded process writes "0" into to join this sandbox's group(s). On
    /// v1 these are `tasks`, which move the writing thread alone: moving a thread group
    /// (`cgroup.procs`) write-locks the kernel's global `cgroup_threadgroup_rwsem`, which waits
    /// for an RCU grace period (12–16 ms here) with `cgroup_mutex` held, while the kernel lets a
    /// thread move itself without it (kernels without that shortcut take the lock for both). For
    /// a process with one thread, both move the same.
    pub fn join_files(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 { .. } => V1_CONTROLLERS
                .iter()
                .map(|c| self.v1(c).join("tasks"))
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
        // v1 lifts the quota alone; on v2 the period written with it no longer matters.
        let _ = self.set_cpu(k, None, FRESH_CPU_PERIOD_US);
        match &self.layout {
            Layout::V2 { .. } => match k.write(&self.v2().join("cgroup.kill"), "1") {
                // Before Linux 5.14: signal what is listed, as on v1.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let d = self.v2();
                    // v2's `cgroup.freeze` reads back what was written; the group says in
                    // `cgroup.events` when it is frozen.
                    let events = d.join("cgroup.events");
                    kill_listed(
                        k,
                        &d.join("cgroup.procs"),
                        &d.join("cgroup.freeze"),
                        ["1", "0"],
                        &|| {
                            k.read(&events)
                                .is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
                        },
                    );
                    Ok(())
                }
                r => r,
            },
            Layout::V1 { .. } => {
                let state = self.v1("freezer").join("freezer.state");
                kill_listed(
                    k,
                    &self.v1("pids").join("cgroup.procs"),
                    &state,
                    ["FROZEN", "THAWED"],
                    &|| !k.read(&state).is_ok_and(|s| s.trim() == "FREEZING"),
                );
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

    #[test]
    fn a_new_group_is_told_only_the_cpu_limits_that_differ_from_the_kernels() {
        // Every write of a CFS period or quota walks all of the host's CPU groups, so a group
        // made with no quota and the kernel's own period gets no CPU write at all.
        let unlimited = Limits {
            cpu_quota_us: None,
            ..limits()
        };
        let cpu_writes = |k: &RecordingKernel| {
            k.writes()
                .into_iter()
                .filter(|(p, _)| p.contains("cpu"))
                .collect::<Vec<_>>()
        };
        let v1 = Layout::V1 { root: "/cg".into() };
        let v2 = Layout::V2 {
            root: "/cg".into(),
            subtree: false,
        };
        for layout in [&v1, &v2] {
            let k = RecordingKernel::new();
            Cgroup::create(&k, layout, "lamina/env-1", unlimited).unwrap();
            assert_eq!(cpu_writes(&k), vec![], "{layout:?}");
        }
        // Another period is written: on v1 alone, on v2 with the unlimited quota.
        let other = Limits {
            cpu_period_us: 50_000,
            ..unlimited
        };
        let k = RecordingKernel::new();
        Cgroup::create(&k, &v1, "lamina/env-1", other).unwrap();
        assert_eq!(
            cpu_writes(&k),
            vec![(
                "/cg/cpu/lamina/env-1/cpu.cfs_period_us".into(),
                "50000".into()
            )]
        );
        let k = RecordingKernel::new();
        Cgroup::create(&k, &v2, "lamina/env-1", other).unwrap();
        assert_eq!(
            cpu_writes(&k),
            vec![("/cg/lamina/env-1/cpu.max".into(), "max 50000".into())]
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
            k.writes(),
            vec![
                ("/cg/pids/lamina/env-1/pids.max".into(), "1024".into()),
                (
                    "/cg/memory/lamina/env-1/memory.swappiness".into(),
                    "0".into()
                ),
                (
                    "/cg/memory/lamina/env-1/memory.limit_in_bytes".into(),
                    "134217728".into()
                ),
                (
                    "/cg/memory/lamina/env-1/memory.kmem.tcp.limit_in_bytes".into(),
                    "134217728".into()
                ),
                (
                    "/cg/cpu/lamina/env-1/cpu.cfs_quota_us".into(),
                    "7235".into()
                ),
            ]
        );
        assert_eq!(
            cg.join_files(),
            ["memory", "cpu", "pids", "freezer"]
                .map(|c| PathBuf::from(format!("/cg/{c}/lamina/env-1/tasks")))
        );
        k.clear();
        Freezer::new(&cg, &k).freeze(&k).unwrap();
        cg.set_cpu(&k, None, 100_000).unwrap();
        assert_eq!(
            k.writes(),
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
    fn v2_setup_sequence() {
        let k = RecordingKernel::new();
        let layout = Layout::V2 {
            root: "/cg".into(),
            subtree: false,
        };
        layout.prepare(&k, "lamina").unwrap();
        let cg = Cgroup::create(&k, &layout, "lamina/env-1", limits()).unwrap();
        assert_eq!(
            k.writes(),
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
            cg.join_files(),
            vec![PathBuf::from("/cg/lamina/env-1/cgroup.procs")]
        );
        k.clear();
        let freezer = Freezer::new(&cg, &k);
        freezer.freeze(&k).unwrap();
        freezer.thaw(&k).unwrap();
        cg.set_cpu(&k, None, 100_000).unwrap();
        cg.kill_all(&k).unwrap();
        assert_eq!(
            k.writes(),
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

    /// Without swap accounting (no `memory.swap.max`) a group is made all the same; a limit the
    /// kernel refuses takes back every directory made, on v1 as on v2.
    #[test]
    fn no_swap_accounting_is_no_failure_and_a_refused_limit_leaves_nothing() {
        let k = RecordingKernel::new();
        let v2 = Layout::V2 {
            root: "/cg".into(),
            subtree: false,
        };
        k.refuse("/cg/lamina/env-1/memory.swap.max", libc::ENOENT);
        Cgroup::create(&k, &v2, "lamina/env-1", limits()).unwrap();
        let limit = ("/cg/lamina/env-1/memory.max".into(), "134217728".into());
        assert!(k.writes().contains(&limit), "{:?}", k.writes());
        assert!(!k.calls().iter().any(|c| matches!(c, Call::RemoveDir(_))));

        let v1 = Layout::V1 { root: "/cg".into() };
        for (layout, refused) in [
            (&v2, "/cg/lamina/env-2/pids.max"),
            (&v1, "/cg/memory/lamina/env-2/memory.limit_in_bytes"),
        ] {
            k.clear();
            k.refuse(refused, libc::EINVAL);
            let e = Cgroup::create(&k, layout, "lamina/env-2", limits()).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
            let calls = k.calls();
            let made: Vec<_> = calls
                .iter()
                .filter_map(|c| match c {
                    Call::CreateDir(d) => Some(d),
                    _ => None,
                })
                .collect();
            assert!(!made.is_empty());
            for d in made {
                assert!(
                    calls.contains(&Call::RemoveDir(d.clone())),
                    "{d:?}: {calls:?}"
                );
            }
        }
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
