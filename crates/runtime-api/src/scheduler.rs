//! The scheduler: it owns the warm pools, the concurrency counters and the memory budget.
//! Invocations ask it for an environment (a warm one, or leave to start one) and give it back,
//! each under its lock for short work (hash lookups; on a cold start, at most one read of
//! `/proc/meminfo` per [`HostMemory::FRESH`]): no task to wake and no reply to wait for on the
//! invoke path when an environment is idle or may start (when a task owned this state, each
//! invocation woke it twice, through a channel and a reply).
//!
//! Admission follows Lambda: a function with reserved concurrency R runs at most R at once (0
//! stops it); the others share the account limit minus everything reserved. Starting an
//! environment must also fit the host's memory budget (sum of live environments' MemorySize):
//! idle environments are evicted least recently used first to make room (none, if evicting
//! them all would not be enough), and otherwise the invocation is throttled rather than the host
//! pushed into its OOM killer. Idle
//! environments are frozen after `FREEZE_AFTER` and destroyed after the keep-alive period.
//!
//! A caller has its answer when the runtime posts its response, but the environment stays in
//! flight until the runtime asks for the next event, a moment later. A caller that comes
//! meanwhile, and finds no idle environment, waits for one of those finishing (at most
//! [`FINISH_WAIT`]) and gets it handed over with its concurrency, rather than starting another
//! environment or being throttled: a sequential caller keeps one warm environment. A caller
//! that would be throttled for want of concurrency, memory or disk that finishing invocations
//! hold waits (as long) for one of them to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::env::Environment;
use crate::gate::Gate;

mod entries;
pub use entries::Stats;
mod finishing;
mod room;
use finishing::{Finishing, Handed};
pub use room::Room;

/// Why an invocation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The function's reserved concurrency is in use.
    Reserved,
    /// The function's reserved concurrency is 0: it takes no invocations at all.
    Stopped,
    /// Asynchronous work already holds its share of the concurrency (never shown to a caller:
    /// the event waits in the queue).
    AsyncShare,
    /// The account's unreserved concurrency is in use.
    Account,
    /// Starting another environment would exceed the host's memory budget.
    Memory,
    /// The host's available memory is below the reserve: no new environment until it is back.
    HostMemory,
    /// Starting another environment would exceed the host's `/tmp` disk budget.
    Disk,
    /// The function is adding environments faster than its scale-up rate.
    ScaleRate,
}

impl Throttle {
    /// The `Reason` Lambda puts in a TooManyRequestsException.
    pub fn reason(self) -> &'static str {
        match self {
            Throttle::Reserved | Throttle::Stopped => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
            Throttle::Account
            | Throttle::Memory
            | Throttle::HostMemory
            | Throttle::Disk
            | Throttle::AsyncShare => "ConcurrentInvocationLimitExceeded",
            Throttle::ScaleRate => "FunctionInvocationRateLimitExceeded",
        }
    }
}

/// What the scheduler grants.
// An environment moves by value, once per invocation: boxing it would add an allocation to the
// invoke path to save a few bytes.
#[allow(clippy::large_enum_variant)]
pub enum Grant {
    Warm(Environment),
    /// Start a new environment (its memory and disk are already counted). `boost`: its INIT may
    /// use a whole CPU; false after the function's last INIT failed.
    Cold {
        boost: bool,
    },
}

/// How long a caller waits for an environment that answered its caller and has yet to ask for
/// its next event, before it is admitted as if none were finishing (a new environment, or a
/// throttle). Long enough for a runtime held by its CPU quota (128 MB: 7 % of a CPU in 100 ms
/// periods).
pub const FINISH_WAIT: Duration = Duration::from_secs(1);

/// Identifies a function for the scheduler.
#[derive(Debug, Clone)]
pub struct Slot {
    pub account: Arc<str>,
    pub region: Arc<str>,
    pub function_arn: Arc<str>,
    pub revision_id: Arc<str>,
    /// `$LATEST` or a version number: versions keep their own warm environments.
    pub version: Arc<str>,
    pub memory_mb: u32,
    /// EphemeralStorage, MB.
    pub tmp_mb: u32,
    /// An attempt of an asynchronous event: it may use only its share of the concurrency.
    pub asynchronous: bool,
}

/// Limits and timings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub account_concurrency: u32,
    pub keep_alive: Duration,
    pub memory_budget_mb: u64,
    /// Live environments' MemorySize may add up to the budget times this (1: no over-commit).
    pub memory_overcommit: f64,
    /// No new environment starts while the host has less memory available than this, MB
    /// (0: no such guard).
    pub memory_reserve_mb: u64,
    pub tmp_budget_mb: u64,
    pub freeze_after: Duration,
    /// New environments a function may add per `scale_window` (Lambda: 1000 per 10 s).
    pub scale_up: u32,
    /// The part of a function's (or an account's unreserved) concurrency asynchronous attempts
    /// may hold, so that they never starve synchronous callers.
    pub async_share: f64,
    pub scale_window: Duration,
}

/// The concurrency asynchronous attempts of a function may hold, for a dispatcher that counts
/// its own attempts (started or running) against it: at most `share` of them, and no more than
/// `limit − sync_in_flight`. The scope is the function (it has reserved concurrency) or the
/// account's unreserved pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncCapacity {
    /// The limit is the function's reserved concurrency (else the account's unreserved).
    pub per_function: bool,
    pub limit: u64,
    /// What asynchronous attempts may hold of `limit` (0 when the function is stopped).
    pub share: u64,
    /// Synchronous invocations holding part of `limit` now.
    pub sync_in_flight: u64,
}

impl AsyncCapacity {
    /// How many more attempts may start, given `outstanding` ones in this scope.
    pub fn room(&self, outstanding: u64) -> u64 {
        let by_share = self.share.saturating_sub(outstanding);
        let by_limit = self
            .limit
            .saturating_sub(self.sync_in_flight)
            .saturating_sub(outstanding);
        by_share.min(by_limit)
    }
}

#[derive(Default)]
struct Function {
    reserved: Option<u32>,
    in_flight: u32,
    /// Of which asynchronous attempts.
    in_flight_async: u32,
    idle: Vec<Environment>,
    /// Scale-up tokens left, refilled continuously (not banked beyond the rate). A cold start
    /// takes one whether its INIT succeeds or not.
    tokens: f64,
    refilled_ms: i64,
    /// The last INIT failed: the next runs without the CPU boost.
    init_failed: bool,
    /// Environments that answered their callers and wait for their runtimes' next `/next`
    /// (in flight still), and the callers waiting for them.
    finishing: Finishing<Environment>,
    /// When each version last changed or went, and when the function did (see
    /// [`Scheduler::retire`]).
    retired_at: HashMap<Arc<str>, std::time::Instant>,
    retired_all_at: Option<std::time::Instant>,
    /// Deleted (retired as a whole) since its last admission: see `entries.rs`.
    deleted: bool,
}

impl Function {
    /// Whether `env`, released by an invocation of `slot`, may serve again: it runs the slot's
    /// revision, was born after the function last changed, and its process lives.
    fn keeps(&self, slot: &Slot, env: &Environment) -> bool {
        env.revision_id == slot.revision_id
            && self.retired(&env.version).is_none_or(|at| env.born > at)
            && !env.exited()
    }

    /// Whether an idle environment serves `slot`.
    fn has_idle(&self, slot: &Slot) -> bool {
        self.idle
            .iter()
            .any(|e| e.version == slot.version && e.revision_id == slot.revision_id && !e.exited())
    }
}

/// What [`State::acquire`] decides.
// Moved once, as `Grant` is (see there).
#[allow(clippy::large_enum_variant)]
enum Acquired {
    Granted(Grant, bool),
    /// Wait for a finishing environment.
    Wait(oneshot::Receiver<Handed<Environment>>),
}

#[derive(Default)]
struct Account {
    reserved_total: u64,
    /// Unreserved invocations that answered their callers and wait for their runtimes' next
    /// `/next`.
    finishing: u32,
    unreserved_in_flight: u32,
    /// Of which asynchronous attempts.
    unreserved_in_flight_async: u32,
}

struct State {
    settings: Settings,
    accounts: HashMap<(Arc<str>, Arc<str>), Account>,
    functions: HashMap<Arc<str>, Function>,
    /// MemorySize of every live environment (running or idle), MB.
    live_memory_mb: u64,
    /// EphemeralStorage of every live environment, MB.
    live_tmp_mb: u64,
    live: usize,
    host: HostMemory,
    /// Invocations that answered their callers and wait for their runtimes' next `/next`.
    finishing: u32,
    /// Callers that would be throttled waiting for one of those to end (see
    /// [`Scheduler::acquire`]).
    waiting_for_room: u32,
    /// Environments to destroy, handed to a task outside the loop.
    /// Environments to destroy, and whether their room is still counted (given back once they
    /// are gone).
    doomed: mpsc::UnboundedSender<(Environment, bool)>,
    freeze: mpsc::UnboundedSender<Vec<Arc<Gate>>>,
    /// Told the ARN of each deleted function whose entry is forgotten (see `entries.rs`).
    forgotten: Option<Forgotten>,
}

/// What is told of a deleted function's entry forgotten, under the scheduler's lock: it must
/// only hand the news on.
pub type Forgotten = Box<dyn Fn(&str) + Send>;

/// The host's available memory (`MemAvailable`), read at most every [`HostMemory::FRESH`], on
/// cold starts only.
#[derive(Default)]
struct HostMemory {
    read: Option<(std::time::Instant, u64)>,
}

impl HostMemory {
    const FRESH: Duration = Duration::from_millis(20);

    fn available_mb(&mut self) -> Option<u64> {
        if let Some((at, mb)) = self.read
            && at.elapsed() < Self::FRESH
        {
            return Some(mb);
        }
        let mb = mem_available_kb()? / 1024;
        self.read = Some((std::time::Instant::now(), mb));
        Some(mb)
    }
}

/// `MemAvailable` from `/proc/meminfo`, kB.
pub fn mem_available_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A handle to the scheduler: its state, behind a lock held for short work and never across an
/// await.
#[derive(Clone)]
pub struct Scheduler {
    state: Arc<Mutex<State>>,
    /// Notified when an environment is given back while callers wait for room
    /// ([`State::waiting_for_room`]).
    released: Arc<tokio::sync::Notify>,
}

impl Scheduler {
    /// Starts the scheduler's helper tasks (destroying, freezing, the idle sweep); needs a tokio
    /// runtime.
    pub fn start(
        forgotten: Option<Forgotten>,
        settings: Settings,
        kernel: Arc<dyn lamina_sandbox::kernel::Kernel>,
    ) -> Self {
        let (doomed, doomed_rx) = mpsc::unbounded_channel::<(Environment, bool)>();
        let (freeze, mut freeze_rx) = mpsc::unbounded_channel::<Vec<Arc<Gate>>>();
        let freeze_after = settings.freeze_after;
        tokio::spawn(async move {
            while let Some(gates) = freeze_rx.recv().await {
                let k = kernel.clone();
                let cutoff = lamina_model::now_millis() - freeze_after.as_millis() as i64;
                let _ = tokio::task::spawn_blocking(move || {
                    for g in gates {
                        g.freeze_if_idle(k.as_ref(), cutoff);
                    }
                })
                .await;
            }
        });
        let state = Arc::new(Mutex::new(State {
            settings,
            accounts: HashMap::new(),
            functions: HashMap::new(),
            live_memory_mb: 0,
            live_tmp_mb: 0,
            live: 0,
            host: HostMemory::default(),
            doomed,
            freeze,
            finishing: 0,
            waiting_for_room: 0,
            forgotten,
        }));
        let released = Arc::new(tokio::sync::Notify::new());
        room::destroy_doomed(doomed_rx, Arc::downgrade(&state), released.clone());
        // The sweep holds only a weak reference: it ends once the state is dropped (idle
        // environments hold the executor, and so the state, until shutdown drains them).
        let weak = Arc::downgrade(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(freeze_after / 2);
            loop {
                tick.tick().await;
                let Some(state) = weak.upgrade() else { return };
                lock(&state).tick();
            }
        });
        Self { state, released }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Gives back the concurrency, with the environment if it may serve again (to a caller
    /// waiting for it first). `init_ok` reports a cold start's INIT; `finishing`, whether
    /// [`Scheduler::finishing`] was called for the invocation.
    pub fn release(
        &self,
        slot: Slot,
        reserved: bool,
        env: Option<Environment>,
        init_ok: Option<bool>,
        finishing: bool,
    ) {
        let mut state = self.state();
        self.ending(&mut state, &slot, reserved, init_ok, finishing);
        // The environment goes to the oldest caller waiting for it; if none takes it, callers
        // beyond the environments still finishing stop waiting.
        let env = match env {
            Some(env) => match state.hand_over(&slot, reserved, env) {
                Some(env) => Some(env),
                None => return,
            },
            None => None,
        };
        if let Some(f) = state.functions.get_mut(&slot.function_arn) {
            f.finishing.settle(&slot);
        }
        state.release(slot, reserved, env);
    }

    pub fn set_reserved(
        &self,
        account: &str,
        region: &str,
        function_arn: &str,
        value: Option<u32>,
    ) {
        let mut state = self.state();
        // No entry is made to say there is no reservation (every deleted function says so).
        if value.is_none() && !state.functions.contains_key(function_arn) {
            return;
        }
        let f = state.functions.entry(function_arn.into()).or_default();
        let old = f.reserved.replace(0);
        f.reserved = value;
        let a = state
            .accounts
            .entry((account.into(), region.into()))
            .or_default();
        a.reserved_total = a.reserved_total - old.map_or(0, u64::from) + value.map_or(0, u64::from);
    }

    /// Destroys the idle environments of a function's `version` (`None`: of all its versions)
    /// after it changed or went; those busy now are destroyed when their invocations end.
    pub fn retire(&self, function_arn: &str, version: Option<&str>) {
        let mut state = self.state();
        let Some(f) = state.functions.get_mut(function_arn) else {
            // No environment of it has ever been admitted.
            return;
        };
        let now = std::time::Instant::now();
        match version {
            Some(v) => f.retire_version(v, now),
            None => {
                // Covers every version's earlier retirement.
                f.retired_at.clear();
                f.retired_all_at = Some(now);
                f.deleted = true;
            }
        }
        let (gone, kept): (Vec<Environment>, Vec<Environment>) = std::mem::take(&mut f.idle)
            .into_iter()
            .partition(|e| version.is_none_or(|v| *e.version == *v));
        f.idle = kept;
        for env in gone {
            state.discard(env);
        }
        state.prune(function_arn);
    }

    /// Takes every idle environment out (for shutdown).
    pub fn drain(&self) -> Vec<Environment> {
        let mut state = self.state();
        let mut all = Vec::new();
        for f in state.functions.values_mut() {
            all.append(&mut f.idle);
        }
        for env in &all {
            state.forget(env.memory_mb(), env.tmp_mb());
        }
        all
    }

    /// What asynchronous attempts of a function may hold (see [`AsyncCapacity`]).
    pub fn async_capacity(&self, account: &str, region: &str, function_arn: &str) -> AsyncCapacity {
        self.state().async_capacity(account, region, function_arn)
    }
}

/// The state is left consistent at every return, so a panic elsewhere under the lock does not
/// make it unusable.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// `slot`'s account.
    fn account(&mut self, slot: &Slot) -> &mut Account {
        self.accounts
            .entry((slot.account.clone(), slot.region.clone()))
            .or_default()
    }

    fn acquire(&mut self, slot: &Slot, may_wait: bool) -> Result<Acquired, Throttle> {
        let limit = self.settings.account_concurrency as u64;
        let f = self.functions.entry(slot.function_arn.clone()).or_default();
        f.deleted = false;
        // Before admission: a finishing environment is already counted in flight.
        if may_wait
            && f.reserved != Some(0)
            && !f.has_idle(slot)
            && let Some(rx) = f.finishing.wait(slot)
        {
            return Ok(Acquired::Wait(rx));
        }
        let account = self
            .accounts
            .entry((slot.account.clone(), slot.region.clone()))
            .or_default();
        let share = |of: u64| ((of as f64 * self.settings.async_share) as u64).max(1);
        let reserved = match f.reserved {
            Some(0) => return Err(Throttle::Stopped),
            Some(r) => {
                if f.in_flight >= r {
                    return Err(Throttle::Reserved);
                }
                if slot.asynchronous && f.in_flight_async as u64 >= share(r as u64) {
                    return Err(Throttle::AsyncShare);
                }
                true
            }
            None => {
                let unreserved = limit.saturating_sub(account.reserved_total);
                if account.unreserved_in_flight as u64 >= unreserved {
                    return Err(Throttle::Account);
                }
                if slot.asynchronous
                    && account.unreserved_in_flight_async as u64 >= share(unreserved)
                {
                    return Err(Throttle::AsyncShare);
                }
                false
            }
        };
        // Warm first: the most recently used environment of this version's current revision.
        // Environments of the same version but an older revision are stale and go.
        let mut stale = Vec::new();
        let mut warm = None;
        let mut i = f.idle.len();
        while i > 0 {
            i -= 1;
            if f.idle[i].version != slot.version {
                continue;
            }
            let env = f.idle.remove(i);
            // A runtime that died while idle serves nobody: a new environment does.
            if env.revision_id == slot.revision_id && !env.exited() {
                warm = Some(env);
                break;
            }
            stale.push(env);
        }
        for env in stale {
            self.discard(env);
        }
        let grant = match warm {
            Some(env) => Grant::Warm(env),
            None => {
                let rate = self.settings.scale_up as f64;
                let window = self.settings.scale_window.as_millis().max(1) as f64;
                let now = lamina_model::now_millis();
                let f = self
                    .functions
                    .get_mut(&slot.function_arn)
                    .expect("inserted above");
                if f.refilled_ms == 0 {
                    f.tokens = rate;
                } else {
                    f.tokens = (f.tokens + (now - f.refilled_ms) as f64 * rate / window).min(rate);
                }
                f.refilled_ms = now;
                if f.tokens < 1.0 {
                    return Err(Throttle::ScaleRate);
                }
                self.make_room(slot.memory_mb as u64, slot.tmp_mb as u64, slot.asynchronous)?;
                self.live += 1;
                self.live_memory_mb += slot.memory_mb as u64;
                self.live_tmp_mb += slot.tmp_mb as u64;
                let f = self
                    .functions
                    .get_mut(&slot.function_arn)
                    .expect("inserted above");
                f.tokens -= 1.0;
                Grant::Cold {
                    boost: !f.init_failed,
                }
            }
        };
        let f = self
            .functions
            .get_mut(&slot.function_arn)
            .expect("inserted above");
        f.in_flight += 1;
        f.in_flight_async += slot.asynchronous as u32;
        if !reserved {
            let a = self
                .accounts
                .get_mut(&(slot.account.clone(), slot.region.clone()))
                .expect("inserted above");
            a.unreserved_in_flight += 1;
            a.unreserved_in_flight_async += slot.asynchronous as u32;
        }
        Ok(Acquired::Granted(grant, reserved))
    }

    fn async_capacity(&self, account: &str, region: &str, function_arn: &str) -> AsyncCapacity {
        let share = |of: u64| ((of as f64 * self.settings.async_share) as u64).max(1);
        let f = self.functions.get(function_arn);
        match f.and_then(|f| f.reserved) {
            Some(r) => AsyncCapacity {
                per_function: true,
                limit: r as u64,
                share: if r == 0 { 0 } else { share(r as u64) },
                sync_in_flight: f.map_or(0, |f| (f.in_flight - f.in_flight_async) as u64),
            },
            None => {
                let a = self.accounts.get(&(account.into(), region.into()));
                let (reserved_total, used, used_async) = a.map_or((0, 0, 0), |a| {
                    (
                        a.reserved_total,
                        a.unreserved_in_flight,
                        a.unreserved_in_flight_async,
                    )
                });
                let unreserved =
                    (self.settings.account_concurrency as u64).saturating_sub(reserved_total);
                AsyncCapacity {
                    per_function: false,
                    limit: unreserved,
                    share: share(unreserved),
                    sync_in_flight: (used - used_async) as u64,
                }
            }
        }
    }

    /// Evicts idle environments, least recently used first, until `mb` more memory and `tmp_mb`
    /// more `/tmp` fit the budgets. An asynchronous attempt may fill only its share of them: the
    /// rest stays for synchronous callers. Its share always has room for one environment, as
    /// its share of the concurrency does: a function larger than the share still runs its
    /// events, one at a time while nothing else holds the budget.
    fn make_room(&mut self, mb: u64, tmp_mb: u64, asynchronous: bool) -> Result<(), Throttle> {
        let part = |budget: u64, one: u64| {
            if asynchronous {
                ((budget as f64 * self.settings.async_share) as u64)
                    .max(one)
                    .min(budget)
            } else {
                budget
            }
        };
        let (memory_budget, tmp_budget) = (
            part(
                (self.settings.memory_budget_mb as f64 * self.settings.memory_overcommit) as u64,
                mb,
            ),
            part(self.settings.tmp_budget_mb, tmp_mb),
        );
        // The host's real memory is the hard guard, whatever the budget allows: below the
        // reserve, the request is refused and an idle environment gives its memory back.
        if self.settings.memory_reserve_mb > 0
            && self
                .host
                .available_mb()
                .is_some_and(|a| a < self.settings.memory_reserve_mb)
        {
            self.evict_oldest_idle();
            return Err(Throttle::HostMemory);
        }
        // Idle environments are evicted only if that makes room: a refusal keeps them warm.
        let (idle_mb, idle_tmp_mb) = self
            .functions
            .values()
            .flat_map(|f| &f.idle)
            .fold((0, 0), |(m, t), e| {
                (m + e.memory_mb() as u64, t + e.tmp_mb() as u64)
            });
        let memory_short = self.live_memory_mb.saturating_sub(idle_mb) + mb > memory_budget;
        let tmp_short = self.live_tmp_mb.saturating_sub(idle_tmp_mb) + tmp_mb > tmp_budget;
        if memory_short || tmp_short {
            return Err(match (asynchronous, memory_short) {
                (true, _) => Throttle::AsyncShare,
                (false, true) => Throttle::Memory,
                (false, false) => Throttle::Disk,
            });
        }
        loop {
            let short = if self.live_memory_mb + mb > memory_budget {
                if asynchronous {
                    Throttle::AsyncShare
                } else {
                    Throttle::Memory
                }
            } else if self.live_tmp_mb + tmp_mb > tmp_budget {
                if asynchronous {
                    Throttle::AsyncShare
                } else {
                    Throttle::Disk
                }
            } else {
                return Ok(());
            };
            if !self.evict_oldest_idle() {
                return Err(short);
            }
        }
    }

    /// Destroys the least recently used idle environment; false if there is none.
    fn evict_oldest_idle(&mut self) -> bool {
        let oldest = self
            .functions
            .iter()
            .flat_map(|(k, f)| {
                f.idle
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (e.gate().idle_since(), k, i))
            })
            .min_by_key(|(since, _, _)| *since)
            .map(|(_, k, i)| (k.clone(), i));
        let Some((key, index)) = oldest else {
            return false;
        };
        let mut env = self
            .functions
            .get_mut(&key)
            .expect("present")
            .idle
            .remove(index);
        // Its room is needed now: no time for its extensions' `SHUTDOWN`.
        env.skip_shutdown();
        self.discard(env);
        true
    }

    fn release(&mut self, slot: Slot, reserved: bool, env: Option<Environment>) {
        self.end_in_flight(&slot, reserved);
        let f = self.functions.entry(slot.function_arn.clone()).or_default();
        let deleted = f.deleted;
        match env {
            Some(env) if f.keeps(&slot, &env) => {
                env.gate().idle();
                f.idle.push(env);
            }
            Some(env) => self.discard(env),
            // The environment is gone (destroyed by the caller), or never started.
            None => self.forget(slot.memory_mb, slot.tmp_mb),
        }
        if deleted {
            self.prune(&slot.function_arn);
        }
    }

    /// The invocation's concurrency given back (not its environment's room).
    fn end_in_flight(&mut self, slot: &Slot, reserved: bool) {
        if let Some(f) = self.functions.get_mut(&slot.function_arn) {
            f.in_flight = f.in_flight.saturating_sub(1);
            f.in_flight_async = f.in_flight_async.saturating_sub(slot.asynchronous as u32);
        }
        if !reserved
            && let Some(a) = self
                .accounts
                .get_mut(&(slot.account.clone(), slot.region.clone()))
        {
            a.unreserved_in_flight = a.unreserved_in_flight.saturating_sub(1);
            a.unreserved_in_flight_async = a
                .unreserved_in_flight_async
                .saturating_sub(slot.asynchronous as u32);
        }
    }

    fn forget(&mut self, mb: u32, tmp_mb: u32) {
        self.live = self.live.saturating_sub(1);
        self.live_memory_mb = self.live_memory_mb.saturating_sub(mb as u64);
        self.live_tmp_mb = self.live_tmp_mb.saturating_sub(tmp_mb as u64);
    }

    /// Destroys an environment. Its room goes back at once, but for one that ends gracefully
    /// (its extensions' `SHUTDOWN`, its runtime's `SIGTERM`), running meanwhile: its room goes
    /// back once it is gone.
    fn discard(&mut self, env: Environment) {
        let counted = env.ends_gracefully();
        if !counted {
            self.forget(env.memory_mb(), env.tmp_mb());
        }
        let _ = self.doomed.send((env, counted));
    }

    /// Runs every half [`Settings::freeze_after`]. Only environments due to be frozen are sent to
    /// the freezer, so a server whose idle environments are all frozen wakes no other thread.
    fn tick(&mut self) {
        let now = lamina_model::now_millis();
        let expiry = now - self.settings.keep_alive.as_millis() as i64;
        let cutoff = now - self.settings.freeze_after.as_millis() as i64;
        let mut expired = Vec::new();
        let mut gates = Vec::new();
        for f in self.functions.values_mut() {
            if f.idle.iter().any(|e| e.gate().idle_since() < expiry) {
                let (old, keep): (Vec<Environment>, Vec<Environment>) = std::mem::take(&mut f.idle)
                    .into_iter()
                    .partition(|e| e.gate().idle_since() < expiry);
                f.idle = keep;
                expired.extend(old);
            }
            gates.extend(
                f.idle
                    .iter()
                    .filter(|e| e.gate().wants_freezing(cutoff))
                    .map(|e| e.gate().clone()),
            );
        }
        for env in expired {
            self.discard(env);
        }
        if !gates.is_empty() {
            let _ = self.freeze.send(gates);
        }
    }
}
