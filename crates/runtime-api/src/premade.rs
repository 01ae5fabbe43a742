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
//!
//! For managed runtimes (Python, Node.js) the thread also keeps sandboxes whose interpreter is
//! already running its runtime client, started ahead ([`Kind`], see [`lamina_sandbox::Zygote`]),
//! for the kinds cold starts asked for lately (see [`crate::pool`]): a cold start then pays
//! neither the interpreter's start nor the client's imports. Each runs as the uid it will keep
//! and holds nothing of a function or a tenant until it is taken (a kind is made of the
//! server's defaults only): a separate interpreter per sandbox, never a fork of a shared one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use lamina_sandbox::cgroup::{self, Cgroup, Layout};
use lamina_sandbox::kernel::Kernel;
use lamina_sandbox::uids::UidRange;
use lamina_sandbox::{Launch, Prepared, Sandbox, SpawnError, Spec, ZYGOTE_FD, ZYGOTE_VAR, Zygote};

use crate::env::{CPU_PERIOD_US, NOFILE, NPROC, RUNTIME_API_PORT};
use crate::net::{Networking, Tenant};

/// An interpreter started ahead: its command line and the variables it starts with (those that
/// take effect at a process's start, see [`crate::runtimes::startup_sensitive`]). A launch with
/// the same command line and the same such variables may take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
}

/// What making a sandbox needs; shared by the pool's thread and cold starts.
pub(crate) struct Maker {
    pub(crate) kernel: Arc<dyn Kernel>,
    pub(crate) layout: Option<Layout>,
    pub(crate) cgroup_parent: String,
    pub(crate) init_exe: PathBuf,
    pub(crate) net: Option<Networking>,
    pub(crate) user_namespace: bool,
    /// This server's uids (root only): an interpreter started ahead runs as its own from the
    /// start.
    pub(crate) uids: Option<Arc<UidRange>>,
    /// The root's base every sandbox builds before it is ready, or starts on with a template.
    pub(crate) base: lamina_sandbox::rootfs::Base,
    /// The template made of `base` ([`lamina_sandbox::Spec::template`]).
    pub(crate) template: Option<Arc<lamina_sandbox::rootfs::Template>>,
    pub(crate) next_id: AtomicU64,
    /// Part of every group name this server makes, different at each start: a fork server of a
    /// server that died, still sweeping the groups it listed, never takes a new one for its own.
    pub(crate) generation: String,
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
    /// The uid an interpreter started ahead runs as, owned by the sandbox until its
    /// environment takes it over.
    uid: Option<Owned>,
    kernel: Arc<dyn Kernel>,
    /// Made on the template: the function's trees go to it as detached mounts.
    templated: bool,
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
    uid: Option<Owned>,
    kernel: Arc<dyn Kernel>,
    _token: StartToken,
}

/// What an environment takes over from [`Launched`].
pub(crate) struct Parts {
    pub(crate) id: u64,
    pub(crate) sandbox: Sandbox,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) lease: Option<lamina_net::Lease>,
    /// The sandbox's own uid (an interpreter started ahead), which the environment gives back.
    pub(crate) uid: Option<u32>,
}

/// A uid from the server's range, owned by a sandbox (see [`tear_down`]).
struct Owned {
    uid: u32,
    range: Arc<UidRange>,
}

impl Launched {
    pub(crate) fn into_parts(mut self) -> Parts {
        Parts {
            id: self.id,
            sandbox: self.sandbox.take().expect("taken once"),
            cgroup: self.cgroup.take(),
            lease: self.lease.take(),
            uid: self.uid.take().map(|o| o.uid),
        }
    }
}

/// Kills what runs in `cgroup` and removes it; then gives `uid` back, since only an empty
/// (removed) group proves nothing runs under it any more (without cgroups, as when an
/// environment is dropped, it is not given back).
fn tear_down(k: &dyn Kernel, cgroup: Option<Cgroup>, uid: Option<Owned>, what: &str) {
    let removed = cgroup.is_some_and(|cg| {
        let _ = cg.kill_all(k);
        match cg.destroy(k) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "removing {what}'s cgroups failed");
                false
            }
        }
    });
    if let (true, Some(o)) = (removed, uid) {
        o.range.give(o.uid);
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        // Killed first, reaped last: the groups' teardown lifts the CPU quota a throttled
        // namespace needs to die.
        let sandbox = self.sandbox.take();
        if let Some(s) = &sandbox {
            let _ = s.child.kill();
        }
        tear_down(
            self.kernel.as_ref(),
            self.cgroup.take(),
            self.uid.take(),
            "an abandoned sandbox",
        );
        if let Some(s) = sandbox {
            s.child.kill_and_reap();
        }
    }
}

impl Maker {
    /// Makes a sandbox up to its function (blocking). `tenant`: whose network namespace it
    /// gets; `None`, the default egress, owned by nobody until [`Premade::fit`].
    pub(crate) fn make(&self, tenant: Option<&Tenant>) -> Result<Premade, SpawnError> {
        self.make_for(tenant, None)
    }

    /// Makes a sandbox with `kind`'s interpreter started in it (blocking), as a uid of its own.
    pub(crate) fn make_zygote(&self, kind: &Kind) -> Result<Premade, SpawnError> {
        self.make_for(None, Some(kind))
    }

    fn make_for(
        &self,
        tenant: Option<&Tenant>,
        kind: Option<&Kind>,
    ) -> Result<Premade, SpawnError> {
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
        let uid = match (kind, &self.uids) {
            (Some(_), Some(range)) => Some(Owned {
                uid: range.take().ok_or_else(|| {
                    SpawnError::Setup("every uid of this server is in use".into())
                })?,
                range: range.clone(),
            }),
            _ => None,
        };
        let zygote = kind.map(|kind| {
            let id = uid.as_ref().map_or(0, |o| o.uid);
            let mut env = kind.env.clone();
            env.push((ZYGOTE_VAR.into(), ZYGOTE_FD.to_string()));
            Zygote {
                argv: kind.argv.clone(),
                env,
                uid: id,
                gid: id,
                nofile: NOFILE,
                nproc: NPROC,
            }
        });
        let mut premade = Premade {
            id,
            prepared: None,
            cgroup: None,
            lease,
            uid,
            kernel: self.kernel.clone(),
            templated: self.template.is_some(),
            token: Some(token),
        };
        let mut spec = Spec {
            cgroup_join: Vec::new(),
            cgroup_dir: None,
            thaw: Vec::new(),
            netns: premade.lease.is_some(),
            runtime_api_port: RUNTIME_API_PORT,
            user_namespace: self.user_namespace,
            base: Some(self.base.clone()),
            template: self.template.is_some(),
            zygote,
        };
        if let Some(layout) = &self.layout {
            // Placeholder limits until `fit`; no CPU quota for our own PID 1 meanwhile.
            let limits = cgroup::Limits {
                memory_bytes: 128 * 1024 * 1024,
                cpu_quota_us: None,
                cpu_period_us: CPU_PERIOD_US,
                pids_max: 1024,
            };
            let cg = match Cgroup::create(
                self.kernel.as_ref(),
                layout,
                format!("{}/env-{}-{id}", self.cgroup_parent, self.generation),
                limits,
            ) {
                Ok(cg) => cg,
                Err(e) => {
                    // Nothing has run as the interpreter's uid yet: it goes back (the sandbox's
                    // teardown gives one back only once a removed group proves that).
                    if let Some(o) = premade.uid.take() {
                        o.range.give(o.uid);
                    }
                    return Err(SpawnError::Setup(format!("creating cgroups: {e}")));
                }
            };
            spec.cgroup_join = cg.join_files();
            spec.cgroup_dir = cg.unified_dir();
            spec.thaw = cg.thaw_writes();
            premade.cgroup = Some(cg);
        }
        let netns = premade.lease.as_ref().map(lamina_net::Lease::netns);
        let template = self.template.as_deref();
        premade.prepared = Some(lamina_sandbox::prepare(
            &self.init_exe,
            &spec,
            netns,
            template,
        )?);
        Ok(premade)
    }
}

impl Premade {
    /// The uid the sandbox's interpreter runs as, when it was started ahead as one of its own.
    pub(crate) fn uid(&self) -> Option<u32> {
        self.uid.as_ref().map(|o| o.uid)
    }

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
        let trees = match self.templated {
            true => lamina_sandbox::rootfs::detached_trees(&launch.root.binds)
                .map_err(|e| SpawnError::Setup(format!("preparing the function's trees: {e}")))?,
            false => Vec::new(),
        };
        let prepared = self.prepared.take().expect("made with a sandbox");
        // On failure `self` drops: the cgroups go, the lease returns.
        let sandbox = prepared.launch(launch, trees, tmp_mount)?;
        Ok(Launched {
            id: self.id,
            sandbox: Some(sandbox),
            cgroup: self.cgroup.take(),
            lease: self.lease.take(),
            uid: self.uid.take(),
            kernel: self.kernel.clone(),
            _token: self.token.take().expect("made with a token"),
        })
    }

    pub(crate) fn ready(&mut self) -> Result<(), SpawnError> {
        self.prepared
            .as_mut()
            .expect("made with a sandbox")
            .wait_ready()
    }

    pub(crate) fn alive(&mut self) -> bool {
        self.prepared.as_mut().is_some_and(Prepared::alive)
    }
}

impl Drop for Premade {
    fn drop(&mut self) {
        drop(self.prepared.take());
        tear_down(
            self.kernel.as_ref(),
            self.cgroup.take(),
            self.uid.take(),
            "a prepared sandbox",
        );
    }
}

/// A name part for this start's groups: the start's time, in microseconds, in hex.
pub(crate) fn generation() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}", now.as_micros() as u64)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
