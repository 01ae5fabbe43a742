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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

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
}

/// Settings of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where runtime clients, the synthetic `/etc` and the root mountpoint live.
    pub work_dir: PathBuf,
    /// Our own binary (re-executed as `sandbox-init`).
    pub init_exe: PathBuf,
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
    pool: Mutex<HashMap<String, Vec<Environment>>>,
}

impl Inner {
    /// Read-only binds: the host's system directories, then the function's code and runtime.
    pub(crate) fn binds(&self, code_tree: &Path) -> Vec<Bind> {
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
            source: self.paths.opt.clone(),
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
                kernel,
                host,
                runtimes,
                paths,
                symlinks,
                system_binds,
                logs,
                next_id: AtomicU64::new(1),
                cgroup_parent,
                pool: Mutex::new(HashMap::new()),
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

    /// Removes cgroups left by a previous run that crashed, and prepares the parent group.
    pub fn clean_start(&self) {
        let k = self.inner.kernel.as_ref();
        if let Some(layout) = &self.inner.host.cgroups {
            let parent = &self.inner.cgroup_parent;
            for name in layout.leftovers(parent) {
                let cg_rel = format!("{parent}/{name}");
                if let Some(cg) = lamina_sandbox::cgroup::Cgroup::existing(layout, &cg_rel) {
                    let _ = cg.kill_all(k);
                    let _ = cg.destroy(k);
                }
            }
            if let Err(e) = layout.prepare(k, parent) {
                tracing::warn!(error = %e, "cannot prepare the lamina cgroup");
            }
        }
    }

    /// Freezes environments that have been idle for `FREEZE_AFTER`, every few milliseconds, so
    /// that idle environments use no CPU while busy ones never wait for the freezer.
    pub fn start_freezer(&self) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FREEZE_AFTER / 2);
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else { return };
                let gates: Vec<Arc<env::Gate>> = inner
                    .pool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .flatten()
                    .map(Environment::gate)
                    .collect();
                if gates.is_empty() {
                    continue;
                }
                let cutoff = lamina_model::now_millis() - FREEZE_AFTER.as_millis() as i64;
                let kernel = inner.kernel.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for g in gates {
                        g.freeze_if_idle(kernel.as_ref(), cutoff);
                    }
                })
                .await;
            }
        });
    }

    /// Runs one invocation of `f`.
    pub async fn invoke(&self, f: &FunctionRuntime, inv: Invocation) -> Result<Invoked, Failure> {
        self.inner
            .host
            .can_sandbox()
            .map_err(Failure::Unavailable)?;
        let (mut env, cold) = match self.take_idle(f).await {
            Some(env) => (env, false),
            None => (Environment::start(self, f, &inv.request_id).await?, true),
        };
        let ran = env.invoke(&inv, f.timeout_s).await;
        if ran.reusable {
            env.gate().idle();
            self.inner
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(f.function_arn.clone())
                .or_default()
                .push(env);
        } else {
            env.destroy().await;
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

    /// The most recently used idle environment of `f`'s current revision; stale ones go.
    async fn take_idle(&self, f: &FunctionRuntime) -> Option<Environment> {
        let (found, stale) = {
            let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
            let list = pool.entry(f.function_arn.clone()).or_default();
            let stale: Vec<Environment> = {
                let mut keep = Vec::new();
                let mut stale = Vec::new();
                for e in list.drain(..) {
                    if e.revision_id == f.revision_id {
                        keep.push(e)
                    } else {
                        stale.push(e)
                    }
                }
                *list = keep;
                stale
            };
            (list.pop(), stale)
        };
        for e in stale {
            e.destroy().await;
        }
        found
    }

    /// Destroys every idle environment of a function (after an update or delete).
    pub async fn retire(&self, function_arn: &str) {
        let envs = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(function_arn)
            .unwrap_or_default();
        for e in envs {
            e.destroy().await;
        }
    }

    /// Destroys every idle environment.
    pub async fn shutdown(&self) {
        let all: Vec<Environment> = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .flat_map(|(_, v)| v)
            .collect();
        for e in all {
            e.destroy().await;
        }
        // Leave no cgroups behind: the parent groups are empty now.
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
