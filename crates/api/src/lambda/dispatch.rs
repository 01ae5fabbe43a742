//! The dispatcher of asynchronous events: one task that knows which functions have events due,
//! leases them in batches (a leased event is never due again while this process lives; after a
//! crash, every lease is released at start), and starts an attempt for as many as the scheduler
//! has room for: an asynchronous attempt may hold only its share of a function's concurrency,
//! so synchronous callers are never starved. While it holds few events and none are due in the
//! store (those come first), the acceptance commits new ones already leased and hands them over
//! in memory (`Signal::Handed`), so that an event that finds the dispatcher keeping up costs no
//! lease of its own.
//!
//! An attempt runs in a task of its own (see [`super::attempt`]), which decides what becomes of
//! its event. Each event is independent: a poison event only delays itself; an attempt that
//! panics puts its event back.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lamina_model::now_millis;
use lamina_store::{FunctionKey, QueuedEvent, Store, StoreError};

use super::attempt::{Again, Rules, attempt, expire};
use super::queue::{Running, Signal};
use super::{AppState, arn};

/// Events leased at once per function. Leased events wait in memory for room to run.
const LEASE_BATCH: usize = 64;
/// Events the acceptance hands over already leased, at most, counting those waiting for room
/// (a batch that would go beyond is queued in the store instead, for the dispatcher to lease;
/// see [`super::queue::EventQueue`]).
pub(crate) const HANDED_AT_MOST: usize = LEASE_BATCH;
/// A lease's end for an event the dispatcher holds: never while this process lives (a restart
/// releases every lease).
pub(crate) const LEASED_UNTIL: i64 = i64::MAX / 2;

/// Where an attempt counts: against its function's reserved concurrency, or its account's
/// unreserved pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    Function(FunctionKey),
    Account(String, String),
}

/// Sends `Done` when an attempt ends, however it ends (a panicking attempt included), and
/// counts it out of the attempts running.
struct DoneGuard {
    state: Arc<AppState>,
    scope: Option<Scope>,
    /// The deletions the dispatcher had seen when the attempt started.
    seen: u64,
    _running: Running,
}

impl DoneGuard {
    /// Counts an attempt in among those running.
    fn start(state: &Arc<AppState>, scope: Scope, seen: u64) -> Self {
        Self {
            _running: state.queue.running(),
            state: state.clone(),
            scope: Some(scope),
            seen,
        }
    }
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            let _ = self
                .state
                .queue
                .signals
                .send(Signal::Done(scope, self.seen));
        }
    }
}

/// Starts the dispatcher; it runs until the server stops.
pub fn start(state: Arc<AppState>) {
    let Some(mut inbox) = state
        .queue
        .inbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return;
    };
    tokio::spawn(async move {
        let store = state.store.clone();
        let queued = tokio::task::spawn_blocking(move || store.queued_functions()).await;
        let mut due: HashMap<FunctionKey, i64> = match queued {
            Ok(Ok(functions)) => functions.into_iter().collect(),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading the event queue failed");
                HashMap::new()
            }
            Err(_) => return,
        };
        let max = state.queue.settings.max_in_flight.max(1);
        let mut leased: HashMap<FunctionKey, VecDeque<(QueuedEvent, Arc<Rules>)>> = HashMap::new();
        // Functions whose attempt bounced for lack of room: not tried again before some
        // attempt ends or a short while passes.
        let mut full: HashSet<FunctionKey> = HashSet::new();
        // Attempts started and not yet ended, per scope: the scheduler only sees them once they
        // hold their slot, so the dispatcher counts them itself.
        let mut outstanding: HashMap<Scope, u64> = HashMap::new();
        let mut in_flight = 0usize;
        let mut books: HashMap<FunctionKey, Arc<RuleBook>> = HashMap::new();
        // Events handed over by the acceptance, until their function's rules are known (tried
        // again from `handed_at` on where the store failed to give them).
        let mut handed: HashMap<FunctionKey, Vec<QueuedEvent>> = HashMap::new();
        let mut handed_at = 0;
        // Deletions seen, and the count at each function's last one: an attempt that bounces
        // back after its function was deleted is dropped. A deletion is forgotten once every
        // attempt out started after it (`started`: attempts out by the deletions seen at their
        // start), so that functions deleted in a loop while some attempt runs for minutes
        // leave nothing behind for longer.
        let mut deletions = 0u64;
        let mut deleted: HashMap<FunctionKey, u64> = HashMap::new();
        let mut started: BTreeMap<u64, u64> = BTreeMap::new();
        let mut forgotten_up_to = 0u64;
        // At a graceful stop no attempt starts: what is leased stays so, and the next start
        // releases it.
        let mut stop = state.stopping.subscribe();
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            let now = now_millis();
            let mut blocked = false;
            if now >= handed_at {
                for (key, events) in std::mem::take(&mut handed) {
                    match rule_book(&state, &mut books, &key).await {
                        Ok(Some(book)) => {
                            leased
                                .entry(key)
                                .or_default()
                                .extend(events.into_iter().map(|e| {
                                    let rules = book.of(e.qualifier.as_deref());
                                    (e, rules)
                                }))
                        }
                        // The function is gone (its events went with it).
                        Ok(None) => {}
                        Err(()) => {
                            handed.insert(key, events);
                            handed_at = now + 1000;
                        }
                    }
                }
            }
            let ready: HashSet<FunctionKey> = due
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .chain(leased.keys().cloned())
                .collect();
            for key in ready {
                let capacity = state.executor.async_capacity(
                    key.account.as_str(),
                    key.region.as_str(),
                    &arn(&key, None),
                );
                let scope = if capacity.per_function {
                    Scope::Function(key.clone())
                } else {
                    Scope::Account(key.account.to_string(), key.region.to_string())
                };
                let room = if full.contains(&key) || in_flight >= max {
                    0
                } else if capacity.per_function && capacity.limit == 0 {
                    // Stopped: its events go straight to their failure destination.
                    LEASE_BATCH
                } else {
                    let counted = outstanding.get(&scope).copied().unwrap_or(0);
                    capacity.room(counted) as usize
                };
                let mut room = room.min(max - in_flight);
                // Leased events first, then more from the store (even without room: events
                // that wait too long must still meet their age limit).
                let buffer = leased.entry(key.clone()).or_default();
                if buffer.len() <= room && due.get(&key).is_some_and(|at| *at <= now) {
                    match lease(&state, &mut books, &key, now, LEASE_BATCH.max(room)).await {
                        Ok(Some((events, next))) => {
                            buffer.extend(events);
                            match next {
                                Some(at) if at < i64::MAX / 4 => due.insert(key.clone(), at),
                                _ => due.remove(&key),
                            };
                        }
                        // The function is gone (its events went with it).
                        Ok(None) => {
                            due.remove(&key);
                        }
                        Err(()) => {
                            due.insert(key.clone(), now + 1000);
                        }
                    }
                }
                expire(&state, buffer, now);
                // A pass that began before the stop starts nothing once it is signalled (it may
                // have waited for the store meanwhile): the flag only ever changes to true.
                while room > 0
                    && !stop.has_changed().unwrap_or(true)
                    && let Some((e, rules)) = buffer.pop_front()
                {
                    room -= 1;
                    in_flight += 1;
                    *outstanding.entry(scope.clone()).or_default() += 1;
                    *started.entry(deletions).or_default() += 1;
                    let mut done = DoneGuard::start(&state, scope.clone(), deletions);
                    let state = state.clone();
                    tokio::spawn(async move {
                        use futures_util::FutureExt;
                        let again = Again::of(&e);
                        let ran = std::panic::AssertUnwindSafe(attempt(&state, e, rules))
                            .catch_unwind()
                            .await;
                        match ran {
                            Ok(Some((e, rules))) => {
                                if let Some(scope) = done.scope.take() {
                                    let bounced = Signal::Bounced(e, rules, scope, deletions);
                                    let _ = state.queue.signals.send(bounced);
                                }
                            }
                            Ok(None) => {}
                            Err(_) => again.after_panic(&state),
                        }
                    });
                }
                if buffer.is_empty() {
                    leased.remove(&key);
                } else {
                    blocked = true;
                }
            }
            // Events due in the store come first: while there are any, new ones queue behind
            // them there rather than being handed over ahead of them.
            let backlog = due.values().any(|at| *at <= now);
            let waiting = if backlog {
                HANDED_AT_MOST
            } else {
                leased.values().map(VecDeque::len).sum::<usize>()
                    + handed.values().map(Vec::len).sum::<usize>()
            };
            state.queue.waiting.store(waiting, Ordering::Release);
            // Wait for an event to fall due, an attempt to end, or (when due events found no
            // room, which synchronous work may free) a short while.
            let next_due = due
                .values()
                .copied()
                .chain((!handed.is_empty()).then_some(handed_at))
                .min();
            let mut wait = match next_due {
                Some(at) if at > now => Duration::from_millis((at - now) as u64),
                Some(_) if !blocked => Duration::ZERO,
                _ => Duration::from_secs(5),
            };
            if blocked {
                wait = wait.min(Duration::from_millis(200));
            }
            let signal = tokio::select! {
                s = inbox.recv() => s,
                _ = stop.changed() => continue,
                _ = tokio::time::sleep(wait) => {
                    full.clear();
                    continue;
                }
            };
            let Some(signal) = signal else { return };
            let mut take = |s: Signal| match s {
                Signal::Due(key, at) => {
                    let e = due.entry(key).or_insert(at);
                    *e = (*e).min(at);
                }
                Signal::Handed(e) => {
                    // Counted as waiting before it stops being on its way, so that the
                    // acceptance never finds it in neither.
                    state.queue.waiting.fetch_add(1, Ordering::AcqRel);
                    state.queue.in_transit.fetch_sub(1, Ordering::AcqRel);
                    handed.entry(e.function.clone()).or_default().push(e);
                }
                Signal::Deleted(key) => {
                    // Its events went with it; attempts already running end as they will.
                    deletions += 1;
                    deleted.insert(key.clone(), deletions);
                    due.remove(&key);
                    leased.remove(&key);
                    handed.remove(&key);
                    books.remove(&key);
                    full.remove(&key);
                }
                Signal::Done(scope, seen) => {
                    in_flight -= 1;
                    count_out(&mut outstanding, &scope);
                    started_out(&mut started, seen);
                    full.clear();
                }
                Signal::Bounced(e, rules, scope, seen) => {
                    in_flight -= 1;
                    count_out(&mut outstanding, &scope);
                    started_out(&mut started, seen);
                    if deleted.get(&e.function).is_some_and(|d| *d > seen) {
                        return;
                    }
                    full.insert(e.function.clone());
                    leased
                        .entry(e.function.clone())
                        .or_default()
                        .push_front((e, rules));
                }
            };
            take(signal);
            while let Ok(s) = inbox.try_recv() {
                take(s);
            }
            // Deletions up to the oldest attempt out's start: none can bounce back for them.
            let oldest = started.keys().next().copied().unwrap_or(deletions);
            if !deleted.is_empty() && forgotten_up_to < oldest {
                deleted.retain(|_, d| *d > oldest);
                forgotten_up_to = oldest;
            }
        }
    });
}

fn count_out(outstanding: &mut HashMap<Scope, u64>, scope: &Scope) {
    if let Some(n) = outstanding.get_mut(scope) {
        *n -= 1;
        if *n == 0 {
            outstanding.remove(scope);
        }
    }
}

/// Counts out an attempt that started when `seen` deletions had been seen.
fn started_out(started: &mut BTreeMap<u64, u64>, seen: u64) {
    if let Some(n) = started.get_mut(&seen) {
        *n -= 1;
        if *n == 0 {
            started.remove(&seen);
        }
    }
}

/// Leased events, and when the function's next one falls due.
type LeasedBatch = (Vec<(QueuedEvent, Arc<Rules>)>, Option<i64>);

/// A function's event rules per qualifier, as read when the queue's rules epoch was `epoch`
/// (see [`super::queue::EventQueue::rules_changed`]): kept by the dispatcher until then, so a
/// lease reads only the events.
pub(crate) struct RuleBook {
    epoch: u64,
    by_qualifier: HashMap<String, Arc<Rules>>,
    /// For a qualifier without a configuration of its own.
    default: Arc<Rules>,
}

impl RuleBook {
    fn read(store: &Store, key: &FunctionKey, epoch: u64) -> Result<Self, StoreError> {
        let configs = store.event_configs(key, None)?;
        // The dead-letter topic is the function's (as `$LATEST` has it).
        let dead_letter = store
            .get_function(key)?
            .and_then(|f| f.spec.dead_letter_target);
        let with_dlq = |mut r: Rules| {
            r.dead_letter = dead_letter.clone();
            Arc::new(r)
        };
        Ok(RuleBook {
            epoch,
            by_qualifier: configs
                .into_iter()
                .map(|c| (c.qualifier.clone(), with_dlq(Rules::from(Some(c)))))
                .collect(),
            default: with_dlq(Rules::from(None)),
        })
    }

    /// The rules of an event invoked with `qualifier` (unqualified: `$LATEST`'s).
    fn of(&self, qualifier: Option<&str>) -> Arc<Rules> {
        let q = qualifier.unwrap_or("$LATEST");
        self.by_qualifier.get(q).unwrap_or(&self.default).clone()
    }
}

/// Leases up to `n` of a function's due events with the rules of their qualifiers (read first,
/// unless `books` has them still current: events are leased only once their rules are known).
/// `None`: the function is gone.
async fn lease(
    state: &AppState,
    books: &mut HashMap<FunctionKey, Arc<RuleBook>>,
    key: &FunctionKey,
    now: i64,
    n: usize,
) -> Result<Option<LeasedBatch>, ()> {
    let Some(book) = rule_book(state, books, key).await? else {
        return Ok(None);
    };
    let store = state.store.clone();
    let k = key.clone();
    let Some(lease) = from_store("leasing asynchronous events", move || {
        store.lease_due_events(&k, now, n, LEASED_UNTIL - now)
    })
    .await?
    else {
        books.remove(key);
        return Ok(None);
    };
    let events = lease
        .events
        .into_iter()
        .map(|e| {
            let rules = book.of(e.qualifier.as_deref());
            (e, rules)
        })
        .collect();
    Ok(Some((events, lease.next_due_ms)))
}

/// A function's event rules, read again only if they may have changed since (`None`: the
/// function is gone).
async fn rule_book(
    state: &AppState,
    books: &mut HashMap<FunctionKey, Arc<RuleBook>>,
    key: &FunctionKey,
) -> Result<Option<Arc<RuleBook>>, ()> {
    // Read before the rules are: a change committed meanwhile leaves the book stale.
    let epoch = state.queue.rules_epoch();
    if let Some(book) = books.get(key).filter(|b| b.epoch == epoch) {
        return Ok(Some(book.clone()));
    }
    let store = state.store.clone();
    let k = key.clone();
    let read = from_store("reading a function's event rules", move || {
        RuleBook::read(&store, &k, epoch)
    })
    .await?;
    let Some(book) = read.map(Arc::new) else {
        books.remove(key);
        return Ok(None);
    };
    books.insert(key.clone(), book.clone());
    Ok(Some(book))
}

/// Runs `f` on the blocking pool: `None` where its function is gone, `Err` (logged) where the
/// store failed.
async fn from_store<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<Option<T>, ()> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(Some(v)),
        Ok(Err(StoreError::NotFound)) => Ok(None),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "{what} failed");
            Err(())
        }
        Err(_) => Err(()),
    }
}
