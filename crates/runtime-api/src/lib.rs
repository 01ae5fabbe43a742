//! Execution environments for functions: sandboxes running a runtime that polls the Lambda
//! Runtime API, invocations delivered to them, warm reuse with the freezer in between, and logs.
//!
//! [`Executor::invoke`] takes an idle environment of the function (most recently used first) or
//! starts one, runs the invocation, answers once the runtime posts its response, and puts the
//! environment back, if it may be reused, when the runtime asks for its next event; idle
//! environments are frozen after [`FREEZE_AFTER`].
//! An environment that crashed, timed out or failed its INIT is destroyed, never reused.

pub mod apis;
mod env;
pub mod extensions;
mod gate;
mod image;
mod invoke;
pub mod logs;
mod net;
mod outcome;
mod platform;
mod pool;
mod premade;
mod rapi;
pub mod runtimes;
mod scheduler;
mod stream;
mod system;
mod telemetry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use lamina_sandbox::cgroup::Layout;
use lamina_sandbox::host::Host;
use lamina_sandbox::kernel::{Kernel, LinuxKernel};
use lamina_sandbox::rootfs::Bind;
use lamina_sandbox::scratch::ScratchPool;
use lamina_sandbox::uids::UidRange;

pub use env::{Environment, Paths};
pub use gate::Gate;
pub use invoke::{End, Ended, Invocation, Invoked, Unclaimed};
pub use net::{NetSettings, VpcAttachment, VpcResolver};
pub use outcome::{InitFailure, Outcome};
pub use platform::LogSettings;

/// How long shutdown waits for its idle environments to stop before the sweep kills what is
/// left: with the grace period for requests (30 s by default) and the bound on sandbox starts
/// ([`lamina_sandbox::SETUP_LIMIT`]), a shutdown ends well within systemd's 90 s stop timeout.
const DESTROY_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an environment stays idle before it is frozen.
pub const FREEZE_AFTER: std::time::Duration = std::time::Duration::from_millis(50);
pub use logs::{LogRecord, LogSink, NoLogs};
pub use rapi::MAX_RESPONSE;
pub use runtimes::Offered;
pub use scheduler::{AsyncCapacity, Stats, Throttle};
pub use stream::{MAX_STREAMED, ResponseStream, StreamEnd, StreamError};

/// What an environment needs to know about the function version it runs.
#[derive(Debug, Clone)]
pub struct FunctionRuntime {
    pub account: Arc<str>,
    pub region: Arc<str>,
    pub name: String,
    /// `$LATEST` or a number.
    pub version: Arc<str>,
    /// Environments are reused only for the same revision.
    pub revision_id: Arc<str>,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub tmp_mb: u32,
    pub environment: BTreeMap<String, String>,
    pub code_tree: PathBuf,
    /// The merged layers, presented at `/opt` (empty when `None`).
    pub opt_tree: Option<PathBuf>,
    /// The packages (hex SHA-256 of the function's code, then of its layers) an environment
    /// pins while it runs from them.
    pub packages: Vec<String>,
    pub log_group: String,
    /// `LoggingConfig`'s format and levels.
    pub logging: LogSettings,
    /// The unqualified ARN (the pool key).
    pub function_arn: Arc<str>,
    /// For an image function: what runs in its root (`code_tree` is the image root).
    pub image: Option<ImageRun>,
    /// Attached to a VPC: its networks as its security groups allow, the internet only through
    /// a NAT gateway. `None`: the internet only.
    pub vpc: Option<VpcAttachment>,
}

/// How an image function starts: argv from its entry point and command, its working directory,
/// and the image's own environment (the function's and Lambda's come on top).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRun {
    /// `(ImageConfig.EntryPoint ∥ ENTRYPOINT) ++ (ImageConfig.Command ∥ CMD)`.
    pub argv: Vec<String>,
    pub cwd: String,
    /// The image's `Env`.
    pub env: Vec<(String, String)>,
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
    /// The function's code is gone (it was deleted, or updated and its old code collected)
    /// between reading the function and starting an environment for it.
    #[error("the function's code is gone")]
    Gone,
    /// The server stopped while the invocation ran: its environment was stopped with the
    /// others, and the function's answer, if it had one, is lost. Not the function's failure.
    #[error("the server stopped during the invocation")]
    Interrupted,
}

/// Keeps packages on disk while environments run from them: the store collects code that no
/// function references, and an environment may still be starting (or running) from code that a
/// concurrent update or delete just unreferenced.
pub trait CodePins: Send + Sync + 'static {
    /// Pins `packages` for as long as the returned guard lives; `None` if one is already gone.
    fn pin(&self, packages: &[String]) -> Option<Box<dyn Send + Sync>>;
}

/// Settings of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where runtime clients, the synthetic `/etc` and the root mountpoint live.
    pub work_dir: PathBuf,
    /// What runs as `sandbox-init`: `lamina-init`, or our own binary.
    pub init_exe: PathBuf,
    /// Concurrent invocations per account and region.
    pub account_concurrency: u32,
    /// How long an idle environment is kept.
    pub keep_alive: std::time::Duration,
    /// The most memory (sum of MemorySize) live environments may hold, MB.
    pub memory_budget_mb: u64,
    /// The budget's multiplier (1: no over-commit).
    pub memory_overcommit: f64,
    /// No new environment while the host has less memory available than this, MB (0: none).
    pub memory_reserve_mb: u64,
    /// New environments per function per 10 s.
    pub scale_up: u32,
    /// The most `/tmp` (sum of EphemeralStorage) live environments may hold, MB.
    pub tmp_budget_mb: u64,
    /// Log bytes per second a function may write (all its environments together), and the
    /// burst above that rate; the rest is dropped and the drop reported in its log.
    pub log_rate_bytes_per_s: u64,
    pub log_burst_bytes: u64,
    /// Where servers on this host record which uid range each one holds.
    pub uid_lock_dir: PathBuf,
    /// The part of the concurrency asynchronous attempts may hold (0 < share ≤ 1).
    pub async_share: f64,
    /// Egress for environments (root only); `None`: loopback only.
    pub network: Option<NetSettings>,
    /// Sandboxes kept made ahead of time, up to their function (0: none).
    pub prepared_sandboxes: usize,
}

pub(crate) struct Inner {
    pub(crate) kernel: Arc<dyn Kernel>,
    pub(crate) host: Host,
    pub(crate) runtimes: Vec<Offered>,
    pub(crate) paths: Paths,
    pub(crate) logs: Arc<dyn LogSink>,
    pub(crate) log_budgets: logs::Budgets,
    pub(crate) pins: Arc<dyn CodePins>,
    /// Disk-backed `/tmp` filesystems; `None` where the host cannot make them (tmpfs then).
    pub(crate) scratch: Option<ScratchPool>,
    /// Environments' networks; `None`: loopback only.
    pub(crate) net: Option<net::Networking>,
    /// This server's uids; `None` without root (every sandbox is uid 0 of its own namespace).
    pub(crate) uids: Option<Arc<UidRange>>,
    /// Makes sandboxes up to their function, ahead of time or on the spot.
    pub(crate) maker: Arc<premade::Maker>,
    /// Sandboxes made ahead of time; started by `clean_start`, once leftovers are gone.
    pub(crate) premade: std::sync::OnceLock<pool::Pool>,
    prepared_sandboxes: usize,
    /// This server's parent cgroup: one per data directory, so that servers sharing a host
    /// never touch each other's environments, and a restart finds its own leftovers.
    pub(crate) cgroup_parent: String,
    scheduler: scheduler::Scheduler,
    /// Set when [`Executor::shutdown`] begins: an environment that dies from then on was
    /// stopped with the server.
    stopping: std::sync::atomic::AtomicBool,
    /// Sandbox starts under way. Each holds a blocking thread until its function's process is
    /// exec'd; a burst beyond what the CPUs can start at once waits here instead of in hundreds
    /// of threads, each with its stacks, that only wait for the kernel and one another.
    pub(crate) start_slots: Arc<tokio::sync::Semaphore>,
    /// Serves functions' requests to Lamina's APIs (see [`apis`]); unset, they get a `404`.
    /// Taken at shutdown: it holds the server's state, which holds this executor.
    pub(crate) gateway: std::sync::Mutex<Option<Arc<dyn apis::Gateway>>>,
}

/// Sandbox starts under way at once, at most: a few per CPU, which keep them all busy.
fn starts_at_once() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (8 * cpus).clamp(16, 256)
}

impl Inner {
    /// Read-only binds of the function's code and layers, on the root's base (the system tree,
    /// which every sandbox builds ahead).
    pub(crate) fn function_binds(&self, code_tree: &Path, opt_tree: Option<&Path>) -> Vec<Bind> {
        vec![
            Bind {
                source: code_tree.to_path_buf(),
                target: "/var/task".into(),
                file: false,
            },
            Bind {
                source: opt_tree.map_or_else(|| self.paths.opt.clone(), Path::to_path_buf),
                target: "/opt".into(),
                file: false,
            },
        ]
    }
}

/// A uid lent by [`Executor::lend_uid`].
pub struct UidLoan {
    pub id: u32,
    uids: Arc<UidRange>,
}

impl UidLoan {
    /// Gives the id back to the sandboxes: only once no process runs as it and no file of it
    /// is left.
    pub fn give_back(self) {
        self.uids.give(self.id);
    }
}

/// Runs invocations in environments.
#[derive(Clone)]
pub struct Executor {
    pub(crate) inner: Arc<Inner>,
}

impl Executor {
    /// Prepares the work directory (the system tree sandboxes see, the `/tmp` pool) and
    /// detects what the host offers.
    pub fn new(
        config: ExecutorConfig,
        logs: Arc<dyn LogSink>,
        pins: Arc<dyn CodePins>,
    ) -> std::io::Result<Self> {
        let kernel: Arc<dyn Kernel> = Arc::new(LinuxKernel);
        let mut host = Host::detect(kernel.as_ref());
        // Into our own leaf before anything starts a child process (the /tmp pool's mkfs).
        if let Some(layout) = &host.cgroups
            && let Err(e) = layout.enter_leaf(kernel.as_ref())
        {
            tracing::warn!(error = %e, "cannot move the server into its own cgroup leaf");
        }
        let work = &config.work_dir;
        let paths = Paths {
            init_exe: config.init_exe.clone(),
            root_mountpoint: work.join("root"),
            opt: work.join("opt"),
        };
        for d in [&paths.root_mountpoint, &paths.opt] {
            std::fs::create_dir_all(d)?;
        }
        let mut runtimes = runtimes::detect();
        let clients = system::compile_clients(&mut runtimes);
        let (net, resolv_conf) = match (&config.network, host.root) {
            (Some(s), true) => match net::Networking::start(s) {
                Ok((n, resolvers)) => {
                    let mut note = format!(
                        "egress through a veth pair per environment from {}, firewall table inet lamina",
                        s.pool
                    );
                    for extra in resolvers.note.iter().chain(n.network.notes().iter()) {
                        tracing::warn!("{extra}");
                        note.push_str("; ");
                        note.push_str(extra);
                    }
                    host.net_note = Some(note);
                    let resolv_conf = n.resolv_conf.clone();
                    (Some(n), Some(resolv_conf))
                }
                Err(e) => {
                    host.net_note = Some(format!("no network for functions ({e})"));
                    (None, None)
                }
            },
            (Some(_), false) => {
                host.net_note = Some("no network for functions (egress needs root)".into());
                (None, None)
            }
            (None, _) => {
                host.net_note = Some("no network for functions (network.egress is off)".into());
                (None, None)
            }
        };
        let started = std::time::Instant::now();
        let sysroot = lamina_sandbox::sysroot::build(
            &work.join("sysroot"),
            &system::plan(&runtimes, resolv_conf.as_deref(), &clients),
        )?;
        tracing::debug!(ms = started.elapsed().as_millis() as u64, path = %sysroot.display(), "system tree ready");
        let lamina_sandbox::sysroot::TopLevel {
            dirs,
            links: mut symlinks,
        } = lamina_sandbox::sysroot::top_level(&sysroot)?;
        // Merged-/usr hosts link `/bin`, `/lib`... into `/usr`: sandboxes get the same links.
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let p = Path::new("/").join(top);
            if symlinks.iter().any(|(l, _)| l == top) || dirs.iter().any(|d| d == top) {
                continue;
            }
            if let Ok(t) = std::fs::read_link(&p) {
                symlinks.push((
                    top.to_owned(),
                    t.to_string_lossy().trim_start_matches('/').to_owned(),
                ));
            }
        }
        let mut system_binds: Vec<Bind> = dirs
            .iter()
            .filter(|d| d.as_str() != "var")
            .map(|d| Bind {
                source: sysroot.join(d),
                target: Path::new("/").join(d),
                file: false,
            })
            .collect();
        system_binds.push(Bind {
            source: sysroot.join("var/runtime"),
            target: "/var/runtime".into(),
            file: false,
        });
        let scratch = if host.root {
            match ScratchPool::start(&work.join("scratch"), 2, 512) {
                Ok(pool) => Some(pool),
                Err(e) => {
                    host.tmp_note = Some(format!("/tmp is a tmpfs counted as memory ({e})"));
                    None
                }
            }
        } else {
            host.tmp_note = Some("/tmp is a tmpfs counted as memory (not root)".into());
            None
        };
        let uids = if host.root {
            Some(Arc::new(UidRange::reserve(&config.uid_lock_dir)?))
        } else {
            None
        };
        let cgroup_parent = lamina_sandbox::cgroup::parent_name(work);
        // Top-level symbolic links (`bin` → `usr/bin` on merged-/usr hosts) and the system tree.
        let base = lamina_sandbox::rootfs::Base {
            mountpoint: paths.root_mountpoint.clone(),
            binds: system_binds,
            symlinks,
            // Where LD_LIBRARY_PATH looks in the function's trees (see `Base::dirs`).
            dirs: vec!["/var/task/lib".into(), "/opt/lib".into()],
        };
        // Made once, so that no sandbox builds the base or pivots (root only: a sandbox in a
        // user namespace of its own could not enter it). Without it, each builds its own.
        let template = match host.root {
            true => match lamina_sandbox::rootfs::make_template(&base) {
                Ok(ns) => Some(Arc::new(ns)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot make the root's template: each sandbox builds its own root");
                    None
                }
            },
            false => None,
        };
        let maker = Arc::new(premade::Maker {
            kernel: kernel.clone(),
            layout: host.cgroups.clone(),
            cgroup_parent: cgroup_parent.clone(),
            init_exe: paths.init_exe.clone(),
            net: net.clone(),
            user_namespace: !host.root,
            uids: uids.clone(),
            base,
            template,
            next_id: AtomicU64::new(1),
            generation: premade::generation(),
            starts: Arc::default(),
        });
        Ok(Self {
            inner: Arc::new(Inner {
                kernel: kernel.clone(),
                host,
                runtimes,
                paths,
                logs,
                log_budgets: logs::Budgets::new(
                    config.log_rate_bytes_per_s,
                    config.log_burst_bytes,
                ),
                pins,
                scratch,
                net: net.clone(),
                uids,
                maker,
                premade: std::sync::OnceLock::new(),
                prepared_sandboxes: config.prepared_sandboxes,
                cgroup_parent,
                stopping: Default::default(),
                start_slots: Arc::new(tokio::sync::Semaphore::new(starts_at_once())),
                gateway: std::sync::Mutex::new(None),
                scheduler: scheduler::Scheduler::start(
                    // A deleted function's network traffic is forgotten with its entry, once
                    // nothing of it runs (its last sandbox's bytes counted or not).
                    net.clone().map(|n| {
                        Box::new(move |arn: &str| n.network.forget(arn)) as scheduler::Forgotten
                    }),
                    scheduler::Settings {
                        account_concurrency: config.account_concurrency,
                        keep_alive: config.keep_alive,
                        memory_budget_mb: config.memory_budget_mb,
                        memory_overcommit: config.memory_overcommit,
                        memory_reserve_mb: config.memory_reserve_mb,
                        tmp_budget_mb: config.tmp_budget_mb,
                        freeze_after: FREEZE_AFTER,
                        scale_up: config.scale_up,
                        async_share: config.async_share,
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

    /// Re-reads the security groups and NAT gateways of `account` in `region` that running
    /// environments use, after the EC2 API changed one (blocking: the store and nft).
    pub fn network_changed(&self, account: &str, region: &str) {
        if let Some(n) = &self.inner.net {
            n.refresh(account, region);
        }
    }

    /// A network namespace with functions' default egress (the internet, not this host nor its
    /// private networks), and the `/etc/resolv.conf` their sandboxes see: for what the server
    /// fetches on a tenant's behalf from wherever the tenant names (an image from a registry
    /// that `*` allows). Blocking. `None`: functions have no network here.
    pub fn egress(&self, owner: &str) -> Option<Result<(lamina_net::Lease, String), String>> {
        let n = self.inner.net.as_ref()?;
        Some(
            n.network
                .take(0, owner)
                .map(|lease| (lease, n.resolv_conf.clone()))
                .map_err(|e| e.to_string()),
        )
    }

    /// Serves functions' requests to Lamina's APIs through `gateway` (see [`apis`]), from the
    /// environments started from now on until [`Executor::shutdown`].
    pub fn serve_apis(&self, gateway: Arc<dyn apis::Gateway>) {
        *self.inner.gateway.lock().unwrap_or_else(|e| e.into_inner()) = Some(gateway);
    }

    /// Stops serving functions' requests to Lamina's APIs from the environments started from
    /// now on, and lets go of the gateway (see [`Executor::shutdown`], which calls it).
    pub fn close_apis(&self) {
        self.inner
            .gateway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// The gateway environments started now reach Lamina's APIs through.
    pub(crate) fn gateway(&self) -> Option<Arc<dyn apis::Gateway>> {
        self.inner
            .gateway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A uid of this server's range that no sandbox uses, for a process of the server's that
    /// handles a tenant's input (an image pull), until [`UidLoan::give_back`]: a loan dropped
    /// otherwise keeps the id from every sandbox for good. `None` without root (no range: such
    /// a process is no more than the server) or when every id is in use.
    pub fn lend_uid(&self) -> Option<UidLoan> {
        let uids = self.inner.uids.as_ref()?;
        let id = uids.take()?;
        Some(UidLoan {
            id,
            uids: uids.clone(),
        })
    }

    /// Network bytes per function (unqualified ARN): sent, received, since start.
    pub fn traffic(&self) -> Vec<lamina_net::Traffic> {
        self.inner
            .net
            .as_ref()
            .map(|n| n.network.traffic())
            .unwrap_or_default()
    }

    /// Removes the network layer's interfaces and firewall table (at shutdown).
    pub fn stop_network(&self) {
        if let Some(n) = &self.inner.net {
            n.network.stop();
        }
    }

    /// Whether sandboxes get a disk-backed `/tmp` (else a tmpfs).
    pub fn tmp_on_disk(&self) -> bool {
        self.inner.scratch.is_some()
    }

    /// Removes cgroups (and kills their processes) left by a previous run that crashed,
    /// prepares the parent group, and starts making sandboxes ahead of time.
    pub fn clean_start(&self) {
        // A server that died on these groups may have left its fork server sweeping them.
        if !lamina_sandbox::wait_for_sweep(&self.inner.cgroup_parent, DESTROY_LIMIT * 3) {
            tracing::warn!(
                "a fork server of a server that died still sweeps this server's cgroups"
            );
        }
        self.sweep();
        if let Some(layout) = &self.inner.host.cgroups {
            match layout.prepare(self.inner.kernel.as_ref(), &self.inner.cgroup_parent) {
                // Should this process die, the fork server kills what runs in these groups: its
                // sandboxes need no watcher each.
                Ok(()) => lamina_sandbox::guard_groups(layout, &self.inner.cgroup_parent),
                Err(e) => tracing::warn!(error = %e, "cannot prepare the lamina cgroup"),
            }
        }
        // Where no sandbox can run, none is made ahead (invocations say why).
        if self.inner.premade.get().is_none() && self.inner.host.can_sandbox().is_ok() {
            match pool::Pool::start(self.inner.maker.clone(), self.inner.prepared_sandboxes) {
                Ok(Some(pool)) => {
                    let _ = self.inner.premade.set(pool);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot start preparing sandboxes ahead"),
            }
        }
    }

    /// Kills every process in this server's environment cgroups and removes the groups.
    fn sweep(&self) {
        if let Some(layout) = &self.inner.host.cgroups {
            lamina_sandbox::cgroup::sweep(
                self.inner.kernel.as_ref(),
                layout,
                &self.inner.cgroup_parent,
            );
        }
    }

    /// Removes the parent of the environments' groups (at shutdown, after the sweep). Whether it
    /// is gone.
    fn remove_cgroup_parent(&self) -> bool {
        let Some(layout) = &self.inner.host.cgroups else {
            return false;
        };
        let parent = &self.inner.cgroup_parent;
        match layout.remove_parent(self.inner.kernel.as_ref(), parent) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                let next = if matches!(layout, Layout::V2 { subtree: true, .. }) {
                    "; the server's own group keeps its leaf: start the next server inside it"
                } else {
                    ""
                };
                tracing::warn!(error = %e, group = %parent, "cannot remove the environments' cgroup{next}");
                false
            }
            _ => true,
        }
    }

    /// Gives the group the server was started in back as it found it (cgroup v2, in a group of
    /// its own), last at shutdown.
    fn give_cgroup_back(&self) {
        if let Some(layout) = &self.inner.host.cgroups
            && let Err(e) = layout.leave_leaf(self.inner.kernel.as_ref())
        {
            tracing::warn!(error = %e, "cannot give the server's cgroup back as it was found; start the next server inside its leaf");
        }
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

    /// Writes a line of the platform's own into a function's log (for what happened to it
    /// outside any environment, such as a delivery that was refused), in a stream named
    /// `YYYY/MM/DD/[<version>]platform`.
    pub fn platform_log(
        &self,
        account: &str,
        region: &str,
        function: &str,
        version: &str,
        message: String,
    ) {
        let now = time::OffsetDateTime::now_utc();
        self.inner.logs.emit(LogRecord {
            stream: Arc::new(lamina_model::LogStreamKey {
                account: account.into(),
                region: region.into(),
                function: function.into(),
                stream: format!(
                    "{:04}/{:02}/{:02}/[{version}]platform",
                    now.year(),
                    now.month() as u8,
                    now.day()
                ),
            }),
            ts_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
            message,
        });
    }

    /// Destroys the idle environments of a function's `version` (`None`: of every version)
    /// after it changed or went; busy ones are destroyed when their invocations end.
    pub fn retire(&self, function_arn: &str, version: Option<&str>) {
        self.inner.scheduler.retire(function_arn, version);
    }

    /// What asynchronous attempts of a function may hold.
    pub fn async_capacity(&self, account: &str, region: &str, function_arn: &str) -> AsyncCapacity {
        self.inner
            .scheduler
            .async_capacity(account, region, function_arn)
    }

    /// Environment counts and per-function concurrency, for metrics.
    pub fn stats(&self) -> Stats {
        self.inner.scheduler.stats()
    }

    /// True once [`Executor::shutdown`] has begun.
    pub fn stopping(&self) -> bool {
        self.inner
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Destroys every idle environment and removes the server's cgroups.
    pub async fn shutdown(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        // Starts waiting for their turn fail now (the caller is told `Interrupted`).
        self.inner.start_slots.close();
        self.close_apis();
        // No sandbox is made from here on, and those under way are waited for: a cgroup made
        // after the sweep below would outlive the server.
        tracing::debug!("shutdown: stopping the sandbox pool");
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(pool) = this.inner.premade.get() {
                pool.stop();
            }
            tracing::debug!("shutdown: waiting for sandboxes under way");
            this.inner
                .maker
                .starts
                .close_and_wait(lamina_sandbox::SETUP_LIMIT);
        })
        .await;
        // Idle environments go at once, all together, within a bound: one that will not die is
        // left to the sweep below, so shutdown stays within a service manager's stop timeout.
        tracing::debug!("shutdown: destroying idle environments");
        let mut destroys = tokio::task::JoinSet::new();
        for e in self.inner.scheduler.drain() {
            destroys.spawn(e.destroy());
        }
        if tokio::time::timeout(DESTROY_LIMIT, destroys.join_all())
            .await
            .is_err()
        {
            tracing::warn!("idle environments did not stop in time; sweeping them");
        }
        // Environments still busy (past the grace period) go too: everything in our cgroups is
        // killed, and no cgroup is left behind.
        tracing::debug!("shutdown: sweeping the environments' cgroups");
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.sweep()).await;
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // Nothing starts any more; the fork server must not outlive the server's group.
            lamina_sandbox::stop_fork_server();
            lamina_sandbox::unguard_groups(&this.inner.cgroup_parent);
            let removed = this.remove_cgroup_parent();
            tracing::debug!("shutdown: removing sandbox networking");
            this.stop_network();
            if removed {
                this.give_cgroup_back();
            }
        })
        .await;
        tracing::debug!("shutdown: sandboxes done");
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn an_errors_type_is_read_from_its_body() {
        let t = Outcome::error_type_in(
            br#"{"errorMessage": "m", "stackTrace": [{"a": 1}], "errorType": "ValueError"}"#,
        );
        assert_eq!(t.as_deref(), Some("ValueError"));
        for body in [
            &br#"{"errorMessage": "no type"}"#[..],
            br#"{"errorType": 3}"#,
            br#""errorType""#,
            br#"["Sandbox.Timedout"]"#,
            b"not json",
        ] {
            assert_eq!(Outcome::error_type_in(body), None);
        }
    }
}
