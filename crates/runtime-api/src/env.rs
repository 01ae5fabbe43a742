//! One execution environment: a sandbox running a function's runtime, its Runtime API server,
//! its log pumps, and the invocations it serves one after another.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lamina_sandbox::cgroup::{self, Cgroup, Freezer, PeakMeter};
use lamina_sandbox::kernel::Kernel;
use lamina_sandbox::rootfs::{RootPlan, Tmp};
use lamina_sandbox::{Launch, SpawnError};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::gate::Gate;
use crate::logs::Tap;
use crate::platform::{self, LogSettings};
use crate::premade::{Launched, Parts, Premade};
use crate::rapi::{self, Pending, Reply, Shared};
use crate::runtimes;
use crate::telemetry::Event;
use crate::{Executor, Failure, FunctionRuntime, Invocation, Outcome};

mod end;
mod exit;
mod init;
use exit::{oom_killed, watch_exit};
use init::InitRun;
use init::{exit_message, failure_body, timed_out_line};

/// INIT must finish within this, as on Lambda.
pub const INIT_LIMIT: Duration = Duration::from_secs(10);
pub(crate) const RUNTIME_API_PORT: u16 = 9001;
pub(crate) const CPU_PERIOD_US: u64 = 100_000;
/// The function's limits on open descriptors and processes (`ulimit -n`, `-u`).
pub(crate) const NOFILE: u64 = 1024;
pub(crate) const NPROC: u64 = 1024;

/// What keeps an environment's code on disk.
type Pins = Box<dyn Send + Sync>;

/// A live environment.
pub struct Environment {
    pub id: u64,
    pub revision_id: Arc<str>,
    /// `$LATEST` or the version number this environment runs.
    pub version: Arc<str>,
    /// When its start began: an environment born before its function was retired runs what
    /// the function no longer is.
    pub born: Instant,
    tx: rapi::Outbox,
    shared: Arc<Shared>,
    next_calls: watch::Receiver<u64>,
    exit: watch::Receiver<Option<i32>>,
    cgroup: Option<Cgroup>,
    /// Measures each invocation's peak memory (with the cgroup).
    peak: Option<PeakMeter>,
    kernel: Arc<dyn Kernel>,
    /// The sandbox's process (PID 1, or the outer `sandbox-init` that watches it), signalled
    /// through its pidfd: never another process that reused its pid once it has been reaped.
    process: Arc<lamina_sandbox::Process>,
    server: JoinHandle<()>,
    tap: Arc<Tap>,
    /// Set until the first invocation has reported it.
    init_ms: Option<f64>,
    /// After a second INIT within the invocation, when it began: the invocation's time (and
    /// its timeout) counts from there.
    begun: Option<Instant>,
    /// A failed first INIT: its time, billed with the invocation, and its lines, the start of
    /// the invocation's tail.
    failed_first: Option<Box<crate::InitFailure>>,
    gate: Arc<Gate>,
    memory_mb: u32,
    /// The function's `LoggingConfig`: how START/END/REPORT are written.
    logging: LogSettings,
    tmp_mb: u32,
    cpu_quota_us: u64,
    /// The sandbox's uid, given back to the executor's range once everything in it is dead.
    uid: Option<u32>,
    executor: Arc<crate::Inner>,
    /// The server's end of the sandbox's control socket, while a watcher holds the other: the
    /// sandbox dies when it closes. `None` where PID 1 was handed over to the server.
    ctl: Option<std::os::unix::net::UnixStream>,
    /// Keeps the code this environment runs from on disk.
    _pins: Pins,
    /// The environment's network namespace and interface, given back when it goes.
    _net: Option<lamina_net::Lease>,
    /// Why it will be destroyed, as its extensions' `SHUTDOWN` says: `spindown` unless an
    /// invocation timed out or failed it; `None` when there is no time for it.
    shutdown_reason: Option<&'static str>,
}

/// The end of one invocation in an environment (its outcome went to the caller before).
pub struct Ran {
    pub duration_ms: f64,
    pub init_ms: Option<f64>,
    pub max_memory_mb: u64,
    pub tail: String,
    /// The REPORT line's Billed Duration.
    pub billed_ms: u64,
    /// Bytes of a streamed response.
    pub streamed_bytes: u64,
    /// The error type a streamed response ended with, if any.
    pub stream_error: Option<String>,
    /// Whether the environment may serve another invocation.
    pub reusable: bool,
    /// Whether the runtime went away (exited, or dropped the invocation) before it answered:
    /// the outcome is Lamina's, not the function's.
    pub died: bool,
}

/// An invocation's outcome, handed to its caller as soon as it is known (the runtime's response
/// or error, a crash, a timeout), before the invocation ends at the runtime's next `/next`.
pub struct Answer {
    pub outcome: Outcome,
    /// See [`Ran::died`].
    pub died: bool,
    /// Whether the environment may still serve again (it answered; it did not die or time out).
    pub finishing: bool,
}

/// `YYYY/MM/DD/[$LATEST]<32 hex>`.
fn stream_name(version: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}/{:02}/{:02}/[{version}]{}",
        now.year(),
        now.month() as u8,
        now.day(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Environment {
    /// Starts an environment and waits for its INIT phase to end (see [`InitRun`]), for the
    /// invocation `request_id`, whose `hops` what the function calls during INIT carries on.
    async fn start(
        ex: &Executor,
        f: &FunctionRuntime,
        request_id: &str,
        hops: u32,
        run: InitRun,
        stream: String,
    ) -> Result<Self, Failure> {
        let born = Instant::now();
        let inner = &ex.inner;
        let creds = crate::apis::Credentials::mint(f.account.clone()).map_err(|e| {
            Failure::Internal(format!("minting the environment's credentials: {e}"))
        })?;
        let (launch, zygote) = match &f.image {
            Some(image) => (
                crate::image::launch(f, image, &stream, &creds).map_err(Failure::Unavailable)?,
                None,
            ),
            None => {
                let offered = inner
                    .runtimes
                    .iter()
                    .find(|r| r.id == f.runtime)
                    .ok_or_else(|| {
                        Failure::Unavailable(format!(
                            "runtime {} is not served by this host",
                            f.runtime
                        ))
                    })?;
                let bootstrap_in_task =
                    runtimes::bootstrap_in_task(&f.code_tree, f.opt_tree.as_deref());
                let argv = runtimes::argv(offered, bootstrap_in_task);
                let env = crate::image::env_vars(f, offered, &stream, &creds);
                let zygote = runtimes::zygote_kind(offered, &argv, &env, &f.environment);
                let launch = crate::image::Launch {
                    binds: inner.function_binds(&f.code_tree, f.opt_tree.as_deref()),
                    symlinks: Vec::new(),
                    cwd: "/var/task".into(),
                    argv,
                    env,
                    on_base: true,
                };
                (launch, zygote)
            }
        };
        // Its extensions: no interpreter started ahead for them, which has begun already.
        let extensions = crate::extensions::external(f);
        let zygote = zygote.filter(|_| extensions.is_empty());
        let tap = Tap::new(
            lamina_model::LogStreamKey {
                account: f.account.to_string(),
                region: f.region.to_string(),
                function: f.name.clone(),
                stream: stream.clone(),
            },
            inner.logs.clone(),
            inner.log_budgets.of(&f.account, &f.function_arn),
        );
        if extensions.len() > crate::extensions::MAX_EXTENSIONS {
            let why = format!(
                "{}/opt/extensions: more than {} extensions",
                lamina_sandbox::COMPANION_FAILED,
                crate::extensions::MAX_EXTENSIONS
            );
            return Err(init::entrypoint_failed(&tap, f, run, request_id, 0.0, &why));
        }
        // A start waits for its turn (see `Inner::start_slots`): the wait is the platform's,
        // not the function's.
        let start_slot = inner
            .start_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::Internal("sandbox starts have stopped".into()))?;

        let memory_mb = f.memory_mb;
        let cpu_quota_us = cgroup::cpu_quota_for(memory_mb as u64, CPU_PERIOD_US, inner.host.cpus);
        // INIT: at most one CPU when boosted (never the whole host), else the function's share.
        let init_quota_us = if run.boost() {
            cpu_quota_us.max(CPU_PERIOD_US.min(inner.host.cpus * CPU_PERIOD_US))
        } else {
            cpu_quota_us
        };
        let uid = match &inner.uids {
            Some(range) => Some(
                range
                    .take()
                    .ok_or_else(|| Failure::Throttled(crate::Throttle::Account))?,
            ),
            None => None,
        };
        let companions = match extensions.is_empty() {
            true => Default::default(),
            false => crate::extensions::companions(&extensions, &launch.env),
        };
        let spec = Launch {
            hostname: "localhost".into(),
            root: RootPlan {
                mountpoint: inner.paths.root_mountpoint.clone(),
                binds: launch.binds,
                symlinks: launch.symlinks,
                tmp: match inner.scratch {
                    Some(_) => Tmp::Mount,
                    None => Tmp::Tmpfs {
                        mb: f.tmp_mb as u64,
                    },
                },
                on_base: launch.on_base,
            },
            uid: uid.unwrap_or(0),
            gid: uid.unwrap_or(0),
            nofile: NOFILE,
            nproc: NPROC,
            cwd: launch.cwd.into(),
            argv: launch.argv,
            env: launch.env,
            companions,
        };
        let tmp_mb = f.tmp_mb;
        let packages = f.packages.clone();
        let tenant = crate::net::Tenant {
            account: f.account.to_string(),
            region: f.region.to_string(),
            function_arn: f.function_arn.to_string(),
            vpc: f.vpc.clone(),
        };
        let ex_inner = inner.clone();
        let spawned =
            tokio::task::spawn_blocking(move || -> Result<(Launched, Pins), Option<SpawnError>> {
                let _start_slot = start_slot;
                let inner = ex_inner;
                // From here the code cannot be collected under the environment; if it already
                // was, the function changed or went away since it was read (`None`).
                let pins = inner.pins.pin(&packages).ok_or(None)?;
                let tmp = || -> Result<_, Option<SpawnError>> {
                    match &inner.scratch {
                        Some(pool) => Ok(Some(pool.take(tmp_mb as u64).map_err(|e| {
                            Some(SpawnError::Setup(format!("preparing /tmp: {e}")))
                        })?)),
                        None => Ok(None),
                    }
                };
                let start =
                    |mut premade: Premade, spec: &Launch| -> Result<Launched, Option<SpawnError>> {
                        premade.fit(
                            memory_mb as u64 * 1024 * 1024,
                            init_quota_us,
                            &tenant.function_arn,
                        )?;
                        Ok(premade.launch(spec, tmp()?)?)
                    };
                // A sandbox made ahead of time has the default egress: not for a VPC's function.
                let pool = inner.premade.get().filter(|_| tenant.vpc.is_none());
                // One whose interpreter is already running, as the uid it owns. Should it fail,
                // nothing of the function ran in it yet (it died while it waited, or its
                // interpreter did): a plain one instead, which reports any fault that is the
                // function's. (Should it fail after the interpreter got its launch, which only a
                // broken control socket does, that one is killed as the plain one starts.)
                let launched = zygote
                    .as_ref()
                    .and_then(|kind| pool?.take_zygote(kind))
                    .and_then(|p| {
                        let mut own = spec.clone();
                        own.uid = p.uid().unwrap_or(spec.uid);
                        own.gid = own.uid;
                        start(p, &own)
                            .inspect_err(|e| {
                                let why = "a sandbox with its interpreter started ahead failed";
                                tracing::warn!(error = ?e, "{why}; starting a plain one");
                            })
                            .ok()
                    });
                let launched = match launched {
                    Some(l) => l,
                    None => match pool.and_then(|pool| pool.take()) {
                        Some(p) => match start(p, &spec) {
                            // It died while it waited (killed from outside): one made on the
                            // spot.
                            Err(Some(SpawnError::Died)) => {
                                tracing::warn!(
                                    "a sandbox made ahead of time had died; making one on the spot"
                                );
                                start(inner.maker.make(Some(&tenant))?, &spec)?
                            }
                            r => r?,
                        },
                        None => start(inner.maker.make(Some(&tenant))?, &spec)?,
                    },
                };
                Ok((launched, pins))
            })
            .await
            .map_err(|e| Failure::Internal(format!("sandbox start task failed: {e}")));
        let give_uid = |uid: Option<u32>| {
            if let (Some(range), Some(uid)) = (&inner.uids, uid) {
                range.give(uid);
            }
        };
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                give_uid(uid);
                return Err(e);
            }
        };
        let (launched, pins) = match spawned {
            Ok(s) => s,
            Err(None) => {
                give_uid(uid);
                return Err(Failure::Gone);
            }
            Err(Some(SpawnError::Exec(msg))) => {
                give_uid(uid);
                // The function never started: no INIT ran (the sandbox's making is the
                // platform's part).
                return Err(init::entrypoint_failed(&tap, f, run, request_id, 0.0, &msg));
            }
            Err(Some(e)) => {
                give_uid(uid);
                return Err(Failure::Internal(e.to_string()));
            }
        };
        // INIT's clock (its duration, billed, and its 10 s limit) runs from the function's
        // start: making the sandbox, its `/tmp` and its network is the platform's part, as on
        // Lambda, where INIT begins in a sandbox already made.
        let started = Instant::now();
        let Parts {
            id,
            sandbox:
                lamina_sandbox::Sandbox {
                    child,
                    listener,
                    output,
                    ctl,
                    companions,
                    companions_output,
                },
            cgroup: cg,
            lease,
            uid: own_uid,
        } = launched.into_parts();
        // A sandbox started ahead brought a uid of its own: the one taken above goes back.
        let uid = match own_uid {
            Some(own) => {
                give_uid(uid);
                Some(own)
            }
            None => uid,
        };
        let process = Arc::new(child);
        let io = |e: std::io::Error| Failure::Internal(format!("environment i/o: {e}"));
        let exit = watch_exit(process.clone());
        let (shared, tx) = Shared::new();
        shared.carry_hops(hops);
        shared.extensions.expect(
            extensions.clone(),
            crate::extensions::Identity {
                function: f.name.clone(),
                version: f.version.to_string(),
                handler: f.handler.clone(),
                account: f.account.to_string(),
            },
        );
        crate::extensions::watch(&shared, &extensions, companions, &exit);
        tap.tell(&shared.telemetry, f.logging.json);
        shared.telemetry.begin_init(!extensions.is_empty());
        let mut env = Self {
            id,
            revision_id: f.revision_id.clone(),
            version: f.version.clone(),
            born,
            tx,
            next_calls: shared.next_calls(),
            shared: shared.clone(),
            exit,
            cgroup: cg.clone(),
            peak: cg
                .as_ref()
                .map(|cg| PeakMeter::new(cg, inner.kernel.as_ref())),
            kernel: inner.kernel.clone(),
            process,
            // Replaced below, once the listener is ours.
            server: tokio::spawn(async {}),
            tap: tap.clone(),
            init_ms: None,
            begun: None,
            failed_first: None,
            gate: Arc::new(Gate::new(
                cg.as_ref()
                    .map(|cg| Freezer::new(cg, inner.kernel.as_ref())),
            )),
            memory_mb,
            logging: f.logging.clone(),
            tmp_mb,
            cpu_quota_us,
            uid,
            executor: inner.clone(),
            ctl,
            _pins: pins,
            _net: lease,
            shutdown_reason: Some("spindown"),
        };
        // From here on, a failure drops `env`, which kills the sandbox. What INIT writes is kept
        // for a failed INIT's tail; the first invocation starts its own.
        tap.start_capture();
        tap.pump(OwnedFd::from(output)).map_err(io)?;
        if let Some(o) = companions_output {
            tap.for_extensions().pump(OwnedFd::from(o)).map_err(io)?;
        }
        listener.set_nonblocking(true).map_err(io)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(io)?;
        let door = crate::apis::Door::new(Arc::new(creds), ex.gateway());
        env.server = rapi::serve(listener, shared, door);

        // INIT ends when the runtime first asks for an invocation, and every extension for its
        // first event.
        let mut init_errors = env.shared.init_errors();
        let mut next = env.next_calls.clone();
        let mut exit = env.exit.clone();
        let init_ended = async {
            next.wait_for(|n| *n >= 1).await.map_err(|_| ())?;
            let x = &env.shared.extensions;
            while !x.close_registration() {
                x.settled().await;
            }
            Ok(None)
        };
        // An error first: one posted as the last call owed came (an extension's exit releases
        // what it owed as it fails INIT) is INIT's end.
        let result = tokio::select! {
            biased;
            _ = init_errors.wait_for(|e| *e) => Ok(Some(())),
            r = init_ended => r,
            _ = exit.wait_for(|e| e.is_some()) => Err(()),
            _ = tokio::time::sleep_until((started + run.limit()).into()) => Err(()),
        };
        let init_ms = started.elapsed().as_secs_f64() * 1000.0;
        if !matches!(result, Ok(None)) {
            return Err(env.init_failed(run, request_id, init_ms).await);
        }
        // An error posted as INIT ended is not kept: INIT succeeded.
        env.shared
            .init_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        env.shared
            .telemetry
            .end_init(|| env.shared.extensions.ready(), init_ms);
        match run {
            InitRun::First { .. } => env.init_ms = Some(init_ms),
            InitRun::Again { .. } => env.begun = Some(started),
        }
        env.apply_cpu_quota();
        Ok(env)
    }

    fn oom_killed(&self) -> bool {
        oom_killed(self.cgroup.as_ref(), self.kernel.as_ref())
    }

    /// The function's own CPU share, after a boosted INIT. One write to cgroupfs, which does not
    /// block: made here rather than through the blocking pool, on the cold start's path.
    fn apply_cpu_quota(&self) {
        if let Some(cg) = &self.cgroup {
            let _ = cg.set_cpu(self.kernel.as_ref(), Some(self.cpu_quota_us), CPU_PERIOD_US);
        }
    }

    /// MemorySize, MB.
    pub fn memory_mb(&self) -> u32 {
        self.memory_mb
    }

    /// Whether its sandbox's process has exited (an idle one, say, killed by the kernel), or one
    /// of its extensions has: it serves nobody again.
    pub fn exited(&self) -> bool {
        self.exit.borrow().is_some() || self.shared.extensions.reset()
    }

    /// The environment's freezer gate, for the pool's idle sweeper.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Runs one invocation: `answer` gets its outcome as soon as it is known, and the
    /// invocation ends (REPORT line, reuse) when the runtime asks for the next one.
    pub async fn invoke(
        &mut self,
        inv: &Invocation,
        timeout_s: u32,
        answer: impl FnOnce(Answer),
    ) -> Ran {
        self.gate.claim(self.kernel.as_ref()).await;
        if let Some(m) = &mut self.peak {
            let _ = m.start(self.kernel.as_ref());
        }
        let request_id = inv.request_id.as_str();
        let before_ms = match self.failed_first.take() {
            // After a failed first INIT, the tail starts with both INITs.
            Some(first) => {
                let earlier = first.tail + &self.tap.take_capture();
                self.tap.start_capture_from(earlier);
                first.ms
            }
            None => {
                self.tap.start_capture();
                0.0
            }
        };
        if let Some(line) = platform::start(&self.logging, request_id, &inv.version) {
            self.tap.line(line);
        }
        let mut deadline_ms = lamina_model::now_millis() + timeout_s as i64 * 1000;
        // After a second INIT within the invocation, its time counts from that INIT's start.
        let started = match self.begun.take() {
            Some(begun) => {
                deadline_ms -= begun.elapsed().as_millis() as i64;
                begun
            }
            None => Instant::now(),
        };
        let deadline = started + Duration::from_secs(timeout_s as u64);
        let (reply_tx, reply_rx) = oneshot::channel();
        let before = *self.next_calls.borrow();
        let pending = Pending {
            request_id: request_id.to_owned(),
            payload: inv.payload.clone(),
            deadline_ms,
            invoked_arn: inv.invoked_arn.clone(),
            trace_id: platform::trace_id(),
            client_context: inv.client_context.clone(),
            cognito_identity: None,
            stream: inv.stream,
            hops: inv.hops,
            reply: reply_tx,
        };
        let telemetry = &self.shared.telemetry;
        let told = telemetry.start(request_id, &inv.version, &pending.trace_id);
        let extensions = &self.shared.extensions;
        let with_extensions = extensions.want_invokes();
        if with_extensions {
            extensions.invoke(&pending);
        }
        let (error_type, reusable, died, status, (stream_error, streamed_bytes)) = {
            // Where the kernel cannot reset the peak, usage is sampled while the invocation runs.
            let kernel = self.kernel.as_ref();
            let peak = &mut self.peak;
            let sampler = async {
                match peak {
                    Some(m) if m.wants_samples() => loop {
                        tokio::time::sleep(PeakMeter::SAMPLE).await;
                        m.sample(kernel);
                    },
                    _ => std::future::pending().await,
                }
            };
            let mut sampler = std::pin::pin!(sampler);
            // One timer for the invocation, its answer and its end alike.
            let mut timeout = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
            let mut exit = self.exit.clone();
            let mut reusable = true;
            let mut died = false;
            let mut status: Option<&str> = None;
            let outcome = if !self.tx.send(pending) {
                reusable = false;
                died = true;
                status = Some("error");
                Outcome::error(failure_body(
                    "Runtime.ExitError",
                    exit_message(request_id, 0),
                ))
            } else {
                // In this order: an answer posted before the runtime exited is its answer.
                tokio::select! {
                    biased;
                    () = &mut sampler => unreachable!("the sampler never ends"),
                    r = reply_rx => match r {
                        Ok(Reply::Response { body, content_type }) => Outcome { body, content_type, function_error: false, init_failure: None, error_type: None, stream: None },
                        Ok(Reply::Stream(s)) => Outcome { body: bytes::Bytes::new(), content_type: s.content_type().to_owned(), function_error: false, init_failure: None, error_type: None, stream: Some(Box::new(s)) },
                        Ok(Reply::Error { body, error_type }) => {
                            status = Some("error");
                            let t = Outcome::error_type_in(&body).or(Some(error_type));
                            let mut o = Outcome::error(body);
                            o.error_type = t;
                            o
                        }
                        Ok(Reply::TooLarge) => {
                            status = Some("error");
                            Outcome::error(failure_body("Function.ResponseSizeTooLarge", format!("Response payload size exceeded maximum allowed payload size ({} bytes).", rapi::MAX_RESPONSE)))
                        }
                        Err(_) => {
                            reusable = false;
                            died = true;
                            status = Some("error");
                            Outcome::error(failure_body("Runtime.ExitError", exit_message(request_id, 0)))
                        }
                    },
                    _ = exit.wait_for(|e| e.is_some()) => {
                        reusable = false;
                        died = true;
                        status = Some("error");
                        let code = (*self.exit.borrow()).unwrap_or(125);
                        if oom_killed(self.cgroup.as_ref(), kernel) {
                            Outcome::error(failure_body("Runtime.OutOfMemory", format!("RequestId: {request_id} Error: Runtime exited with error: signal: killed")))
                        } else {
                            Outcome::error(failure_body("Runtime.ExitError", exit_message(request_id, code)))
                        }
                    }
                    _ = &mut timeout => {
                        reusable = false;
                        status = Some("timeout");
                        let secs = timeout_s as f64;
                        self.tap.line(timed_out_line(request_id, secs));
                        Outcome::error(failure_body("Sandbox.Timedout", format!("RequestId: {request_id} Error: Task timed out after {secs:.2} seconds")))
                    }
                }
            };
            // The caller has its answer now; the invocation ends when the runtime asks for the
            // next one. Only an error's body is looked into (for the REPORT line): a response
            // may be megabytes of JSON.
            let error_type = status.and_then(|_| outcome.failure_type());
            // A streamed response has only begun: its environment is busy for as long as the
            // stream lasts, not about to ask for its next event.
            let streamed = outcome.stream.is_some();
            if let Some((started_at, trace_id)) = &told {
                telemetry.emit(&Event::RuntimeDone {
                    request_id,
                    status: status.unwrap_or("success"),
                    error_type: error_type.as_deref(),
                    duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                    produced_bytes: outcome.body.len(),
                    started: started_at,
                    trace_id,
                });
            }
            answer(Answer {
                outcome,
                died,
                finishing: reusable && !streamed,
            });
            // A streamed response ends when its stream does, whenever the runtime asks for more.
            let mut open = streamed.then(|| self.shared.stream_open());
            let mut late = false;
            if reusable {
                let mut next = self.next_calls.clone();
                let mut exit = self.exit.clone();
                let ended = async {
                    let _ = next.wait_for(|n| *n > before).await;
                    crate::stream::closed(open.as_mut()).await;
                    if with_extensions {
                        extensions.settled().await;
                    }
                };
                tokio::select! {
                    biased;
                    () = &mut sampler => unreachable!("the sampler never ends"),
                    () = ended => {}
                    _ = exit.wait_for(|e| e.is_some()) => reusable = false,
                    _ = &mut timeout => {
                        reusable = false;
                        late = true;
                        if self.shared.stream_is_open() {
                            status = Some("timeout");
                            self.tap.line(timed_out_line(request_id, timeout_s as f64));
                        }
                    }
                }
            }
            // Its bytes and its error are counted once it has ended.
            if let Some(open) = open.as_mut() {
                crate::stream::settled(open).await;
            }
            let stream_end = streamed.then(|| self.shared.take_stream_end()).flatten();
            let streamed_bytes = stream_end.as_ref().map_or(0, |e| e.bytes);
            let stream_error = stream_end.and_then(|e| e.error).map(|e| e.error_type);
            // Cut off at its deadline (the stream's own clock may run out a moment first).
            if stream_error.as_deref() == Some("Sandbox.Timedout") && status != Some("timeout") {
                reusable = false;
                status = Some("timeout");
                self.tap.line(timed_out_line(request_id, timeout_s as f64));
            }
            status = status.or(stream_error.as_ref().map(|_| "error"));
            reusable &= !extensions.reset();
            if !reusable {
                self.shutdown_reason = Some(match status {
                    Some("timeout") => "timeout",
                    _ if late => "timeout",
                    _ => "failure",
                });
            }
            (
                error_type.or(stream_error.clone()),
                reusable,
                died,
                status,
                (stream_error, streamed_bytes),
            )
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        // An out-of-memory kill takes the peak to the limit, so a readable peak already says
        // so; the kill counter (a file opened, read and closed) is read only when the
        // environment died or the peak could not be read, never on a warm invocation's path.
        let peak = self
            .peak
            .as_mut()
            .and_then(|m| m.finish(self.kernel.as_ref()).ok());
        let max_memory_mb = if (!reusable || peak.is_none()) && self.oom_killed() {
            self.memory_mb as u64
        } else {
            peak.map_or(0, |bytes| bytes.div_ceil(1024 * 1024))
        };
        self.tap.drain().await;
        let init_ms = self.init_ms.take();
        // Billed as on Lambda since 2025-08: the invoke phase plus INIT on a cold start (and a
        // failed first INIT before it).
        let billed = (duration_ms + init_ms.unwrap_or(0.0) + before_ms).ceil() as u64;
        let report = platform::Report {
            request_id,
            duration_ms,
            billed_ms: billed,
            memory_mb: self.memory_mb,
            max_memory_mb,
            init_ms,
            status,
            error_type: error_type.as_deref(),
        };
        for line in platform::end(&self.logging, &report) {
            self.tap.line(line);
        }
        self.shared.telemetry.emit(&Event::Report(&report));
        let tail = self.tap.take_capture();
        Ran {
            streamed_bytes,
            stream_error,
            duration_ms,
            init_ms,
            max_memory_mb,
            tail,
            reusable,
            died,
            billed_ms: billed,
        }
    }

    /// EphemeralStorage, MB.
    pub fn tmp_mb(&self) -> u32 {
        self.tmp_mb
    }
}

/// The directories every sandbox uses, prepared once.
#[derive(Debug, Clone)]
pub struct Paths {
    pub init_exe: PathBuf,
    /// An empty directory the sandbox's root is mounted on (in its own mount namespace).
    pub root_mountpoint: PathBuf,
    /// An empty directory, `/opt` of functions without layers.
    pub opt: PathBuf,
}
