//! Sandboxes made ahead of time. Everything a sandbox needs before it knows its function (its
//! namespaces, the Runtime API's listener, a network namespace with the default egress, its
//! cgroups with PID 1 already in them) is done by a thread of its own, which keeps a few ready.
//! A cold start takes one, sets its cgroups' limits, and pays only for the function's root, its
//! `execve` and its INIT. Joining a cgroup alone waits for an RCU grace period, 7–28 ms on the
//! machines measured, which a cold start no longer waits for.
//!
//! Nothing of a function or a tenant is in a sandbox before it is taken, and a sandbox serves
//! one environment only. Functions in a VPC (whose network namespace depends on the VPC) and
//! starts while the pool is empty make theirs on the spot, the same way.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use lamina_sandbox::cgroup::{self, Cgroup, Layout};
use lamina_sandbox::kernel::Kernel;
use lamina_sandbox::{Launch, Prepared, Sandbox, SpawnError, Spec};

use crate::env::{CPU_PERIOD_US, RUNTIME_API_PORT};
use crate::net::{Networking, Tenant};

/// How long the thread waits after a sandbox was taken before it makes another.
const SETTLE: Duration = Duration::from_millis(10);

/// How long shutdown waits for the pool's thread to stop.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// What making a sandbox needs; shared by the pool's thread and cold starts.
pub(crate) struct Maker {
    pub(crate) kernel: Arc<dyn Kernel>,
    pub(crate) layout: Option<Layout>,
    pub(crate) cgroup_parent: String,
    pub(crate) init_exe: PathBuf,
    pub(crate) net: Option<Networking>,
    pub(crate) user_namespace: bool,
    /// The root's base every sandbox builds before it is ready.
    pub(crate) base: lamina_sandbox::rootfs::Base,
    pub(crate) next_id: AtomicU64,
    pub(crate) starts: Arc<Starts>,
}

/// Sandboxes being made or launched, counted so that shutdown can wait for them before it
/// sweeps the cgroups: a group made after the sweep would outlive the server. Once closed, no
/// sandbox is made.
#[derive(Default)]
pub(crate) struct Starts {
    /// Closed, and how many are under way.
    state: Mutex<(bool, usize)>,
    done: Condvar,
}

/// One sandbox under way, from `Maker::make` until it belongs to an environment (or is gone).
pub(crate) struct StartToken(Arc<Starts>);

impl Starts {
    fn begin(self: &Arc<Self>) -> Option<StartToken> {
        let mut state = lock(&self.state);
        if state.0 {
            return None;
        }
        state.1 += 1;
        Some(StartToken(self.clone()))
    }

    /// Refuses new sandboxes from now on, then waits (at most `limit`) for those under way.
    pub(crate) fn close_and_wait(&self, limit: Duration) {
        let mut state = lock(&self.state);
        state.0 = true;
        let _ =
            self.done
                .wait_timeout_while(state, limit, |s| s.1 > 0)
                .map(|(mut state, timeout)| {
                    if timeout.timed_out() {
                        tracing::warn!(
                            under_way = state.1,
                            "sandboxes still starting at shutdown; their cgroups may be left"
                        );
                        // Not waited for again.
                        state.1 = 0;
                    }
                });
    }
}

impl Drop for StartToken {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.1 = state.1.saturating_sub(1);
        if state.1 == 0 {
            self.0.done.notify_all();
        }
    }
}

/// A sandbox waiting for its function. Dropping it kills it and removes its cgroups (blocking).
pub(crate) struct Premade {
    pub(crate) id: u64,
    prepared: Option<Prepared>,
    cgroup: Option<Cgroup>,
    lease: Option<lamina_net::Lease>,
    kernel: Arc<dyn Kernel>,
    /// Released after the cleanup in `drop` (fields drop after it), or passed on at launch.
    token: Option<StartToken>,
}

/// A launched sandbox and what it holds, until [`Launched::into_parts`] gives it to its
/// environment. Dropped before that (its start was abandoned), it kills the sandbox and removes
/// its cgroups (blocking).
pub(crate) struct Launched {
    id: u64,
    sandbox: Option<Sandbox>,
    cgroup: Option<Cgroup>,
    lease: Option<lamina_net::Lease>,
    kernel: Arc<dyn Kernel>,
    _token: StartToken,
}

/// What an environment takes over from [`Launched`].
pub(crate) struct Parts {
    pub(crate) id: u64,
    pub(crate) sandbox: Sandbox,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) lease: Option<lamina_net::Lease>,
}

impl Launched {
    pub(crate) fn into_parts(mut self) -> Parts {
        Parts {
            id: self.id,
            sandbox: self.sandbox.take().expect("taken once"),
            cgroup: self.cgroup.take(),
            lease: self.lease.take(),
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(mut s) = self.sandbox.take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        if let Some(cg) = self.cgroup.take() {
            let k = self.kernel.as_ref();
            let _ = cg.kill_all(k);
            if let Err(e) = cg.destroy(k) {
                tracing::warn!(error = %e, "removing an abandoned sandbox's cgroups failed");
            }
        }
    }
}

impl Maker {
    /// Makes a sandbox up to its function (blocking). `tenant`: whose network namespace it
    /// gets; `None`, the default egress, owned by nobody until [`Premade::fit`].
    pub(crate) fn make(&self, tenant: Option<&Tenant>) -> Result<Premade, SpawnError> {
        let token = self
            .starts
            .begin()
            .ok_or_else(|| SpawnError::Setup("the server is shutting down".into()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lease = match &self.net {
            Some(n) => {
                let nobody = Tenant::default();
                Some(
                    n.lease(tenant.unwrap_or(&nobody))
                        .map_err(|e| SpawnError::Setup(format!("preparing the network: {e}")))?,
                )
            }
            None => None,
        };
        let mut premade = Premade {
            id,
            prepared: None,
            cgroup: None,
            lease,
            kernel: self.kernel.clone(),
            token: Some(token),
        };
        let mut spec = Spec {
            cgroup_procs: Vec::new(),
            thaw: Vec::new(),
            netns: premade.lease.is_some(),
            runtime_api_port: RUNTIME_API_PORT,
            user_namespace: self.user_namespace,
            base: Some(self.base.clone()),
        };
        if let Some(layout) = &self.layout {
            // Placeholder limits until `fit`; no CPU quota for our own PID 1 meanwhile.
            let limits = cgroup::Limits {
                memory_bytes: 128 * 1024 * 1024,
                cpu_quota_us: None,
                cpu_period_us: CPU_PERIOD_US,
                pids_max: 1024,
            };
            let cg = Cgroup::create(
                self.kernel.as_ref(),
                layout,
                format!("{}/env-{id}", self.cgroup_parent),
                limits,
            )
            .map_err(|e| SpawnError::Setup(format!("creating cgroups: {e}")))?;
            spec.cgroup_procs = cg.procs_files();
            spec.thaw = cg.thaw_writes();
            premade.cgroup = Some(cg);
        }
        let netns = premade.lease.as_ref().map(lamina_net::Lease::netns);
        premade.prepared = Some(lamina_sandbox::prepare(&self.init_exe, &spec, netns)?);
        Ok(premade)
    }
}

impl Premade {
    /// Gives the sandbox its function's limits and owner.
    pub(crate) fn fit(
        &mut self,
        memory_bytes: u64,
        cpu_quota_us: u64,
        owner: &str,
    ) -> Result<(), SpawnError> {
        if let Some(cg) = &self.cgroup {
            let k = self.kernel.as_ref();
            cg.set_memory(k, memory_bytes)
                .and_then(|()| cg.set_cpu(k, Some(cpu_quota_us), CPU_PERIOD_US))
                .map_err(|e| SpawnError::Setup(format!("setting cgroup limits: {e}")))?;
        }
        if let Some(lease) = &mut self.lease {
            lease.assign(owner);
        }
        Ok(())
    }

    /// Starts the function in the sandbox (blocking until it is exec'd).
    pub(crate) fn launch(
        mut self,
        launch: &Launch,
        tmp_mount: Option<std::os::fd::OwnedFd>,
    ) -> Result<Launched, SpawnError> {
        let prepared = self.prepared.take().expect("made with a sandbox");
        // On failure `self` drops: the cgroups go, the lease returns.
        let sandbox = prepared.launch(launch, tmp_mount)?;
        Ok(Launched {
            id: self.id,
            sandbox: Some(sandbox),
            cgroup: self.cgroup.take(),
            lease: self.lease.take(),
            kernel: self.kernel.clone(),
            _token: self.token.take().expect("made with a token"),
        })
    }

    fn ready(&mut self) -> Result<(), SpawnError> {
        self.prepared
            .as_mut()
            .expect("made with a sandbox")
            .wait_ready()
    }

    fn alive(&mut self) -> bool {
        self.prepared.as_mut().is_some_and(Prepared::alive)
    }
}

impl Drop for Premade {
    fn drop(&mut self) {
        drop(self.prepared.take());
        if let Some(cg) = self.cgroup.take() {
            let k = self.kernel.as_ref();
            let _ = cg.kill_all(k);
            if let Err(e) = cg.destroy(k) {
                tracing::warn!(error = %e, "removing a prepared sandbox's cgroups failed");
            }
        }
    }
}

/// The sandboxes kept ready, and the thread that keeps them.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    /// Oldest first.
    ready: Mutex<std::collections::VecDeque<Premade>>,
    changed: Condvar,
    stop: AtomicBool,
    size: usize,
    maker: Arc<Maker>,
}

impl Pool {
    /// Keeps `size` sandboxes ready (`None` for 0).
    pub(crate) fn start(maker: Arc<Maker>, size: usize) -> std::io::Result<Option<Self>> {
        if size == 0 {
            return Ok(None);
        }
        let shared = Arc::new(Shared {
            ready: Mutex::new(std::collections::VecDeque::with_capacity(size)),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            size,
            maker,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sandbox-pool".into())
            .spawn(move || fill(&s))?;
        Ok(Some(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// A ready sandbox, if there is one; the thread makes another.
    pub(crate) fn take(&self) -> Option<Premade> {
        // Killed from outside meanwhile (rare): removed once the lock is released.
        let mut dead = Vec::new();
        let taken = {
            let mut ready = lock(&self.shared.ready);
            loop {
                match ready.pop_front() {
                    Some(mut p) => {
                        if p.alive() {
                            break Some(p);
                        }
                        dead.push(p);
                    }
                    None => break None,
                }
            }
        };
        self.shared.changed.notify_one();
        drop(dead);
        taken
    }

    /// Stops the thread and destroys the sandboxes it kept (blocking).
    pub(crate) fn stop(&self) {
        // Set under the lock: the thread checks it under the lock before it waits, so the
        // wake-up below cannot fall between its check and its wait.
        {
            let _ready = lock(&self.shared.ready);
            self.shared.stop.store(true, Ordering::Relaxed);
        }
        self.shared.changed.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            // Bounded: a sandbox it is making is counted in `Starts`, which shutdown waits for
            // next (within its own bound), so a thread stuck in the kernel cannot hold
            // shutdown past a service manager's stop timeout.
            let deadline = std::time::Instant::now() + STOP_LIMIT;
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    limit_s = STOP_LIMIT.as_secs(),
                    "the sandbox pool's thread did not stop in time; left behind"
                );
            }
        }
        let ready = std::mem::take(&mut *lock(&self.shared.ready));
        drop(ready);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn fill(s: &Shared) {
    let mut failures = 0u32;
    loop {
        {
            let mut ready = lock(&s.ready);
            while ready.len() >= s.size && !s.stop.load(Ordering::Relaxed) {
                ready = s.changed.wait(ready).unwrap_or_else(|e| e.into_inner());
            }
        }
        // A moment first: the cold start that took a sandbox is still running, and making one
        // costs a core for a few milliseconds.
        std::thread::sleep(SETTLE);
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        match s.maker.make(None).and_then(|mut p| p.ready().map(|()| p)) {
            Ok(p) => {
                failures = 0;
                let mut ready = lock(&s.ready);
                if s.stop.load(Ordering::Relaxed) {
                    // Stopped meanwhile (perhaps after `stop` stopped waiting): destroyed here,
                    // not kept where nobody takes it.
                    drop(ready);
                    drop(p);
                    return;
                }
                ready.push_back(p);
            }
            Err(e) => {
                // Cold starts make their own meanwhile; try again later, less often each time.
                failures = (failures + 1).min(6);
                // Said once per streak of failures; the rest at debug level.
                if failures == 1 {
                    tracing::warn!(error = %e, "preparing a sandbox ahead of time failed");
                } else {
                    tracing::debug!(error = %e, "preparing a sandbox ahead of time failed again");
                }
                let pause = Duration::from_millis(100 << failures);
                let ready = lock(&s.ready);
                let _ = s
                    .changed
                    .wait_timeout_while(ready, pause, |_| !s.stop.load(Ordering::Relaxed));
            }
        }
    }
}
