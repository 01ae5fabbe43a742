//! Execution environments for functions: sandboxes running a runtime that polls the Lambda
//! Runtime API, invocations delivered to them, warm reuse with the freezer in between, and logs.
//!
//! [`Executor::invoke`] takes an idle environment of the function (most recently used first) or
//! starts one, runs the invocation, and puts the environment back if it may be reused; idle
//! environments are frozen after [`FREEZE_AFTER`].
//! An environment that crashed, timed out or failed its INIT is destroyed, never reused.

mod env;
pub mod logs;
mod rapi;
pub mod runtimes;
mod scheduler;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use lamina_sandbox::host::Host;
use lamina_sandbox::kernel::{Kernel, LinuxKernel};
use lamina_sandbox::rootfs::Bind;

pub use env::{Environment, Gate, Paths};

/// How long an environment stays idle before it is frozen.
pub const FREEZE_AFTER: std::time::Duration = std::time::Duration::from_millis(50);
pub use logs::{LogRecord, LogSink, NoLogs};
pub use rapi::MAX_RESPONSE;
pub use runtimes::Offered;
pub use scheduler::{Stats, Throttle};

/// What an environment needs to know about the function version it runs.
#[derive(Debug, Clone)]
pub struct FunctionRuntime {
    pub account: String,
    pub region: String,
    pub name: String,
    /// `$LATEST` or a number.
    pub version: String,
    /// Environments are reused only for the same revision.
    pub revision_id: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub tmp_mb: u32,
    pub environment: BTreeMap<String, String>,
    pub code_tree: PathBuf,
    /// The merged layers, presented at `/opt` (empty when `None`).
    pub opt_tree: Option<PathBuf>,
    pub log_group: String,
    /// The unqualified ARN (the pool key).
    pub function_arn: String,
}

/// One invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub version: String,
    /// Decoded `X-Amz-Client-Context` JSON.
    pub client_context: Option<String>,
}

/// What the caller gets.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub body: Bytes,
    pub content_type: String,
    /// `X-Amz-Function-Error: Unhandled`.
    pub function_error: bool,
    /// The failure happened in INIT.
    pub init_failed: bool,
    pub error_type: Option<String>,
}

impl Outcome {
    pub fn error(body: Bytes) -> Self {
        Self {
            body,
            content_type: "application/json".into(),
            function_error: true,
            init_failed: false,
            error_type: None,
        }
    }
}

/// The result of [`Executor::invoke`].
#[derive(Debug, Clone)]
pub struct Invoked {
    pub outcome: Outcome,
    pub duration_ms: f64,
    pub init_ms: Option<f64>,
    pub max_memory_mb: u64,
    /// The invocation's log (at most the last 4 KB), for `X-Amz-Log-Type: Tail`.
    pub tail: String,
    /// Milliseconds billed (the REPORT line's Billed Duration).
    pub billed_ms: u64,
    pub cold: bool,
}

/// Why an invocation could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The function ran (or tried to) and failed; the outcome is for the caller.
    #[error("function failed")]
    Function(Outcome),
    /// This server cannot run functions (e.g. not root).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// Refused for lack of concurrency or memory.
    #[error("throttled")]
    Throttled(Throttle),
}

/// Settings of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where runtime clients, the synthetic `/etc` and the root mountpoint live.
    pub work_dir: PathBuf,
    /// Our own binary (re-executed as `sandbox-init`).
    pub init_exe: PathBuf,
    /// Concurrent invocations per account and region.
    pub account_concurrency: u32,
    /// How long an idle environment is kept.
    pub keep_alive: std::time::Duration,
    /// The most memory (sum of MemorySize) live environments may hold, MB.
    pub memory_budget_mb: u64,
    /// New environments per function per 10 s.
    pub scale_up: u32,
}

pub(crate) struct Inner {
    pub(crate) kernel: Arc<dyn Kernel>,
    pub(crate) host: Host,
    pub(crate) runtimes: Vec<Offered>,
    pub(crate) paths: Paths,
    pub(crate) symlinks: Vec<(String, String)>,
    pub(crate) system_binds: Vec<Bind>,
    pub(crate) logs: Arc<dyn LogSink>,
    pub(crate) next_id: AtomicU64,
    /// This server's parent cgroup: one per data directory, so that servers sharing a host
    /// never touch each other's environments, and a restart finds its own leftovers.
    pub(crate) cgroup_parent: String,
    scheduler: scheduler::Scheduler,
}

impl Inner {
    /// Read-only binds: the host's system directories, then the function's code and runtime.
    pub(crate) fn binds(&self, code_tree: &Path, opt_tree: Option<&Path>) -> Vec<Bind> {
        let mut b = self.system_binds.clone();
        b.push(Bind {
            source: code_tree.to_path_buf(),
            target: "/var/task".into(),
            file: false,
        });
        b.push(Bind {
            source: self.paths.runtime.clone(),
            target: "/var/runtime".into(),
            file: false,
        });
        b.push(Bind {
            source: opt_tree.map_or_else(|| self.paths.opt.clone(), Path::to_path_buf),
            target: "/opt".into(),
            file: false,
        });
        b
    }
}

/// Runs invocations in environments.
#[derive(Clone)]
pub struct Executor {
    pub(crate) inner: Arc<Inner>,
}

/// Files of the synthetic `/etc`: enough for name lookups and TLS, nothing of the host's.
const ETC_FILES: &[(&str, &str)] = &[
    (
        "passwd",
        "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
    ),
    ("group", "root:x:0:\nnobody:x:65534:\n"),
    ("hosts", "127.0.0.1 localhost\n::1 localhost\n"),
    ("resolv.conf", "nameserver 127.0.0.1\n"),
    (
        "nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
    ),
];
/// Host `/etc` entries shared read-only (TLS roots, the dynamic linker cache, alternatives).
const ETC_SHARED: &[&str] = &[
    "ssl",
    "ca-certificates",
    "alternatives",
    "ld.so.cache",
    "localtime",
];

impl Executor {
    /// Prepares the work directory and detects what the host offers.
    pub fn new(config: ExecutorConfig, logs: Arc<dyn LogSink>) -> std::io::Result<Self> {
        let kernel: Arc<dyn Kernel> = Arc::new(LinuxKernel);
        let host = Host::detect(kernel.as_ref());
        let work = &config.work_dir;
        let paths = Paths {
            init_exe: config.init_exe.clone(),
            root_mountpoint: work.join("root"),
            etc: work.join("etc"),
            runtime: work.join("runtime"),
            opt: work.join("opt"),
        };
        for d in [
            &paths.root_mountpoint,
            &paths.etc,
            &paths.runtime,
            &paths.opt,
        ] {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(paths.runtime.join("bootstrap.py"), runtimes::PYTHON_CLIENT)?;
        std::fs::write(paths.runtime.join("index.mjs"), runtimes::NODE_CLIENT)?;
        for (name, content) in ETC_FILES {
            std::fs::write(paths.etc.join(name), content)?;
        }
        let mut system_binds = vec![Bind {
            source: "/usr".into(),
            target: "/usr".into(),
            file: false,
        }];
        let mut symlinks = Vec::new();
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let p = Path::new("/").join(top);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(t) = std::fs::read_link(&p) {
                        symlinks.push((
                            top.to_owned(),
                            t.to_string_lossy().trim_start_matches('/').to_owned(),
                        ));
                    }
                }
                Ok(m) if m.is_dir() => system_binds.push(Bind {
                    source: p.clone(),
                    target: p,
                    file: false,
                }),
                _ => {}
            }
        }
        system_binds.push(Bind {
            source: paths.etc.clone(),
            target: "/etc".into(),
            file: false,
        });
        for name in ETC_SHARED {
            let host_path = Path::new("/etc").join(name);
            let Ok(meta) = std::fs::metadata(&host_path) else {
                continue;
            };
            let mountpoint = paths.etc.join(name);
            if meta.is_dir() {
                std::fs::create_dir_all(&mountpoint)?;
            } else if !mountpoint.exists() {
                std::fs::write(&mountpoint, "")?;
            }
            system_binds.push(Bind {
                source: host_path,
                target: Path::new("/etc").join(name),
                file: !meta.is_dir(),
            });
        }
        let runtimes = runtimes::detect();
        let cgroup_parent = format!("lamina-{:016x}", fnv1a(work.to_string_lossy().as_bytes()));
        Ok(Self {
            inner: Arc::new(Inner {
                kernel: kernel.clone(),
                host,
                runtimes,
                paths,
                symlinks,
                system_binds,
                logs,
                next_id: AtomicU64::new(1),
                cgroup_parent,
                scheduler: scheduler::Scheduler::start(
                    scheduler::Settings {
                        account_concurrency: config.account_concurrency,
                        keep_alive: config.keep_alive,
                        memory_budget_mb: config.memory_budget_mb,
                        freeze_after: FREEZE_AFTER,
                        scale_up: config.scale_up,
                        scale_window: std::time::Duration::from_secs(10),
                    },
                    kernel.clone(),
                ),
            }),
        })
    }

    /// The runtimes this host serves.
    pub fn runtimes(&self) -> Vec<String> {
        self.inner.runtimes.iter().map(|r| r.id.clone()).collect()
    }

    /// One line on what isolation is in force.
    pub fn host_summary(&self) -> String {
        self.inner.host.summary()
    }

    /// Removes cgroups (and kills their processes) left by a previous run that crashed, and
    /// prepares the parent group.
    pub fn clean_start(&self) {
        self.sweep();
        if let Some(layout) = &self.inner.host.cgroups
            && let Err(e) = layout.prepare(self.inner.kernel.as_ref(), &self.inner.cgroup_parent)
        {
            tracing::warn!(error = %e, "cannot prepare the lamina cgroup");
        }
    }

    /// Kills every process in this server's environment cgroups and removes the groups.
    fn sweep(&self) {
        let k = self.inner.kernel.as_ref();
        if let Some(layout) = &self.inner.host.cgroups {
            let parent = &self.inner.cgroup_parent;
            for name in layout.leftovers(parent) {
                if let Some(cg) =
                    lamina_sandbox::cgroup::Cgroup::existing(layout, format!("{parent}/{name}"))
                {
                    let _ = cg.kill_all(k);
                    let _ = cg.destroy(k);
                }
            }
        }
    }

    /// Runs one invocation of `f`. The work runs in a task of its own, so a caller that goes
    /// away cannot leave an environment or a concurrency slot behind.
    pub async fn invoke(&self, f: &FunctionRuntime, inv: Invocation) -> Result<Invoked, Failure> {
        self.inner
            .host
            .can_sandbox()
            .map_err(Failure::Unavailable)?;
        let this = self.clone();
        let f = f.clone();
        tokio::spawn(async move { this.run(&f, inv).await })
            .await
            .unwrap_or_else(|e| Err(Failure::Internal(format!("invocation task failed: {e}"))))
    }

    async fn run(&self, f: &FunctionRuntime, inv: Invocation) -> Result<Invoked, Failure> {
        let slot = scheduler::Slot {
            account: f.account.clone(),
            region: f.region.clone(),
            function_arn: f.function_arn.clone(),
            revision_id: f.revision_id.clone(),
            version: f.version.clone(),
            memory_mb: f.memory_mb,
        };
        let sched = &self.inner.scheduler;
        let (grant, reserved) = sched
            .acquire(slot.clone())
            .await
            .map_err(Failure::Throttled)?;
        let (mut env, cold) = match grant {
            scheduler::Grant::Warm(env) => (env, false),
            scheduler::Grant::Cold => match Environment::start(self, f, &inv.request_id).await {
                Ok(env) => (env, true),
                Err(e) => {
                    sched.release(slot, reserved, None);
                    return Err(e);
                }
            },
        };
        let ran = env.invoke(&inv, f.timeout_s).await;
        if ran.reusable {
            sched.release(slot, reserved, Some(env));
        } else {
            env.destroy().await;
            sched.release(slot, reserved, None);
        }
        Ok(Invoked {
            outcome: ran.outcome,
            duration_ms: ran.duration_ms,
            billed_ms: ran.billed_ms,
            init_ms: ran.init_ms,
            max_memory_mb: ran.max_memory_mb,
            tail: ran.tail,
            cold,
        })
    }

    /// Sets a function's reserved concurrency (`None`: none) for admission.
    pub fn set_reserved(
        &self,
        account: &str,
        region: &str,
        function_arn: &str,
        value: Option<u32>,
    ) {
        self.inner
            .scheduler
            .set_reserved(account, region, function_arn, value);
    }

    /// Destroys every idle environment of a function (after an update or delete); busy ones are
    /// destroyed when their invocation ends, since their revision is no longer current.
    pub async fn retire(&self, function_arn: &str) {
        self.inner.scheduler.retire(function_arn);
    }

    /// Environment counts and per-function concurrency, for metrics.
    pub async fn stats(&self) -> Stats {
        self.inner.scheduler.stats().await
    }

    /// Destroys every idle environment and removes the server's cgroups.
    pub async fn shutdown(&self) {
        for e in self.inner.scheduler.drain().await {
            e.destroy().await;
        }
        // Environments still busy (past the grace period) go too: everything in our cgroups is
        // killed, and no cgroup is left behind.
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.sweep()).await;
        if let Some(layout) = &self.inner.host.cgroups {
            let k = self.inner.kernel.clone();
            let parent = self.inner.cgroup_parent.clone();
            let layout = layout.clone();
            let _ = tokio::task::spawn_blocking(move || layout.remove_parent(k.as_ref(), &parent))
                .await;
        }
    }
}

/// FNV-1a: a stable, dependency-free hash for naming.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
