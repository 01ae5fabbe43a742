//! Asynchronous invocation: the event queue's front door and its writer.
//!
//! [`EventQueue::accept`] answers once the event is durable in the store. Events that arrive
//! together are committed together (one transaction, one fsync, for everything that came in
//! while the previous batch was being written), so acceptance is not bound by one fsync per
//! event. The queue is bounded in events and bytes; when full, `accept` refuses with
//! `TooManyRequestsException` and nothing is lost. While the dispatcher holds fewer than a lease
//! batch of events in memory and none are due in the store, a batch is committed already
//! leased and handed to it with the events' ids: no second transaction to lease them, and, as
//! for every lease, a restart makes them due again.
//!
//! What becomes of events after their attempts (see [`super::dispatch`]) is written the same
//! way: [`EventQueue::settle`] hands a [`Settle`] to the writer, which commits everything that
//! is waiting in one transaction, then tells the dispatcher when each function has events due.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use lamina_model::{ErrorKind, LambdaError, now_millis};
use lamina_store::{FunctionKey, NewEvent, QueueSize, QueuedEvent, Settle, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::{ApiResult, AppState, blocking};
use crate::prometheus::labels_of;

/// Asynchronous invocation settings.
#[derive(Debug, Clone)]
pub struct AsyncSettings {
    /// Events the queue may hold.
    pub max_events: u64,
    /// Payload bytes the queue may hold.
    pub max_bytes: u64,
    /// Delay before the 2nd, 3rd... attempt after a function error.
    pub retry_delays: Vec<Duration>,
    /// The longest back-off after a throttle.
    pub max_backoff: Duration,
    /// Attempts the dispatcher runs at once, at most.
    pub max_in_flight: usize,
}

/// Events committed in one transaction, at most, and their payload bytes (a transaction holds
/// the store's one connection).
const BATCH: usize = 1000;
const BATCH_BYTES: usize = 8 << 20;
/// How long a settlement waits for others to be committed with it.
const SETTLE_LINGER: Duration = Duration::from_millis(5);
/// How many destination records may lead one to another (A's record to B, B's to A...).
pub(crate) const MAX_HOPS: u32 = 16;

/// What the dispatcher hears.
pub(crate) enum Signal {
    /// A function has an event due at this time (epoch ms).
    Due(FunctionKey, i64),
    /// An event just accepted, committed already leased: the dispatcher's to run.
    Handed(QueuedEvent),
    /// An attempt (counted in this scope, started when the dispatcher had seen this many
    /// deletions) has ended.
    Done(super::dispatch::Scope, u64),
    /// A function was deleted: the dispatcher forgets what it holds of it. Sent by the
    /// acceptance's writer after every event it committed before the deletion was handed over,
    /// and before any committed after (which belong to a function of the same name created
    /// since): none of the deleted function's events runs on the new one.
    Deleted(FunctionKey),
    /// An attempt found no room after all: the event goes back to the dispatcher's hands as it
    /// was, to start when there is room (unless its function was deleted since the attempt
    /// started, when the dispatcher had seen this many deletions).
    Bounced(
        QueuedEvent,
        Arc<super::attempt::Rules>,
        super::dispatch::Scope,
        u64,
    ),
}

/// A settlement on its way to the store, with what to do once it is committed.
pub(crate) struct Settling {
    pub settle: Settle,
    pub function: FunctionKey,
    /// Payload bytes of the event (which leaves the queue if it is finished).
    pub bytes: u64,
    /// The destination function of `then`, if any.
    pub destination: Option<FunctionKey>,
}

/// What the acceptance's writer receives.
enum Pending {
    /// An event to commit, and its caller's answer.
    Event(NewEvent, oneshot::Sender<ApiResult<()>>),
    /// A function's deletion, committed: the writer tells the dispatcher in its turn.
    Deleted(FunctionKey),
}

/// An attempt counted among those running, until it drops: by then its settlement is handed
/// to the writer (or there is none), so a graceful stop that waits for both loses neither.
pub(crate) struct Running(Arc<EventQueue>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.send_modify(|n| *n -= 1);
    }
}

/// The queue's front door; shared by the handlers and the dispatcher.
pub struct EventQueue {
    accepted: mpsc::Sender<Pending>,
    settled: mpsc::UnboundedSender<Settling>,
    pub(crate) signals: mpsc::UnboundedSender<Signal>,
    /// Taken by the dispatcher when it starts.
    pub(crate) inbox: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Signal>>>,
    events: AtomicU64,
    bytes: AtomicU64,
    /// Counts changes to what decides an event's fate; see [`EventQueue::rules_changed`].
    rules_epoch: AtomicU64,
    /// Events handed to the dispatcher and not yet received by it.
    pub(crate) in_transit: AtomicUsize,
    /// Events the dispatcher holds waiting for room, as of its last pass.
    pub(crate) waiting: AtomicUsize,
    pub(crate) settings: AsyncSettings,
    /// Attempts started and not yet ended or settled (see [`Running`]).
    running: tokio::sync::watch::Sender<usize>,
    /// Settlements handed to the writer and not yet committed.
    unsettled: tokio::sync::watch::Sender<usize>,
}

impl EventQueue {
    /// Starts the writers that commit accepted events and settlements in batches.
    pub fn start(store: Arc<Store>, settings: AsyncSettings) -> Result<Arc<Self>, StoreError> {
        // Every lease belongs to a process that is gone. Released before the writer starts, so
        // that no event this process hands over already leased is released again.
        let released = store.release_leases()?;
        if released > 0 {
            tracing::info!(
                events = released,
                "resuming asynchronous attempts interrupted by a restart"
            );
        }
        let size = store.queue_size()?;
        let (accepted, accepted_rx) = mpsc::channel::<Pending>(BATCH * 8);
        let (settled, settled_rx) = mpsc::unbounded_channel::<Settling>();
        let (signals, inbox) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            accepted,
            settled,
            signals,
            inbox: std::sync::Mutex::new(Some(inbox)),
            events: AtomicU64::new(size.events),
            bytes: AtomicU64::new(size.bytes),
            rules_epoch: AtomicU64::new(0),
            in_transit: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            settings,
            running: tokio::sync::watch::channel(0).0,
            unsettled: tokio::sync::watch::channel(0).0,
        });
        tokio::spawn(write_accepted(
            store.clone(),
            Arc::downgrade(&queue),
            accepted_rx,
        ));
        tokio::spawn(write_settled(store, Arc::downgrade(&queue), settled_rx));
        Ok(queue)
    }

    /// Queues an event; returns once it is durable.
    pub async fn accept(&self, event: NewEvent) -> ApiResult<()> {
        let shutting_down = || LambdaError::service("The event queue is shutting down.");
        // A place in the writer's channel first: a caller that goes away while waiting for one
        // has counted nothing. Once sent, the writer owns the event and its count.
        let permit = self.accepted.reserve().await.map_err(|_| shutting_down())?;
        if !self.admit(event.payload.len() as u64) {
            return Err(LambdaError::new(
                ErrorKind::TooManyRequests,
                format!(
                    "The asynchronous event queue is full ({} events, {} bytes at most); retry later.",
                    self.settings.max_events, self.settings.max_bytes
                ),
            )
            .into());
        }
        let (reply, answer) = oneshot::channel();
        permit.send(Pending::Event(event, reply));
        answer.await.unwrap_or_else(|_| Err(shutting_down().into()))
    }

    /// Whether `n` events about to be committed go to the dispatcher already leased: only while
    /// what it holds in memory (those on their way and those waiting for room) stays within one
    /// lease batch with them, and no events are due in the store (the dispatcher then says it
    /// holds a whole batch). Counts them on their way if so; otherwise they are queued due, and
    /// the dispatcher leases them from the store.
    fn hand_over(&self, n: usize) -> bool {
        // Only the writer adds to `in_transit`, so what it reads can only have fallen since. The
        // dispatcher counts an event as waiting before it stops counting it on its way, so,
        // read in this order, an event being received is counted at least once.
        let in_transit = self.in_transit.load(Ordering::Acquire);
        let held = in_transit + self.waiting.load(Ordering::Acquire);
        if held + n > super::dispatch::HANDED_AT_MOST {
            return false;
        }
        self.in_transit.fetch_add(n, Ordering::AcqRel);
        true
    }

    /// Counts an event of `bytes` into the queue if it fits.
    fn admit(&self, bytes: u64) -> bool {
        let events = self.events.fetch_add(1, Ordering::AcqRel) + 1;
        let total = self.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if events > self.settings.max_events || total > self.settings.max_bytes {
            self.forget(bytes);
            return false;
        }
        true
    }

    /// A deleted function's events left the queue with it (called once its deletion is
    /// committed, from the runtime's blocking pool or its workers); the dispatcher is told to
    /// forget those it holds.
    pub fn forget_deleted(&self, function: FunctionKey, size: QueueSize) {
        self.events.fetch_sub(size.events, Ordering::AcqRel);
        self.bytes.fetch_sub(size.bytes, Ordering::AcqRel);
        // Through the writer, in order with the events: see `Signal::Deleted`. At once if the
        // channel has room; otherwise from a task of its own.
        // Otherwise sent, or the writer is gone with the server.
        if let Err(mpsc::error::TrySendError::Full(deleted)) =
            self.accepted.try_send(Pending::Deleted(function))
        {
            let accepted = self.accepted.clone();
            tokio::spawn(async move {
                let _ = accepted.send(deleted).await;
            });
        }
    }

    /// Hands an attempt's settlement to the writer.
    pub(crate) fn settle(&self, s: Settling) {
        self.unsettled.send_modify(|n| *n += 1);
        // The writer lives as long as the queue, unless its write panicked.
        if self.settled.send(s).is_err() {
            self.unsettled.send_modify(|n| *n -= 1);
        }
    }

    /// Counts an attempt, or the publishing of its outcome before its settlement, among those
    /// running until the guard drops: a graceful stop waits for it.
    pub(crate) fn running(self: &Arc<Self>) -> Running {
        self.running.send_modify(|n| *n += 1);
        Running(self.clone())
    }

    /// Returns once no attempt is running: at a graceful stop, after the dispatcher has stopped
    /// starting them.
    pub async fn attempts_ended(&self) {
        let _ = self.running.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Returns once every settlement handed to the writer is committed: at a graceful stop, so
    /// that an attempt that ended is not run again after the restart.
    pub async fn settled(&self) {
        let _ = self.unsettled.subscribe().wait_for(|n| *n == 0).await;
    }

    /// An event (of `bytes`) left the queue.
    fn forget(&self, bytes: u64) {
        self.events.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Tells the dispatcher that an event's rules may have changed: an event invoke
    /// configuration, a function's dead-letter topic, a qualifier or a function that went.
    /// Called once the change is committed; the dispatcher reads rules again after it.
    pub(crate) fn rules_changed(&self) {
        self.rules_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times the rules changed so far.
    pub(crate) fn rules_epoch(&self) -> u64 {
        self.rules_epoch.load(Ordering::Acquire)
    }

    /// Events queued now.
    pub fn depth(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }
}

/// Commits accepted events in batches and answers each.
async fn write_accepted(
    store: Arc<Store>,
    queue: std::sync::Weak<EventQueue>,
    mut rx: mpsc::Receiver<Pending>,
) {
    while let Some(first) = rx.recv().await {
        let (mut events, mut replies, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(pending) = next.take() {
            match pending {
                Pending::Event(e, reply) => {
                    bytes += e.payload.len();
                    events.push(e);
                    replies.push(reply);
                }
                Pending::Deleted(function) => deleted.push(function),
            }
            if events.len() < BATCH && bytes < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let Some(queue) = queue.upgrade() else { return };
        // Every event committed before these deletions was handed over with an earlier batch;
        // this batch is committed after them.
        for function in deleted {
            let _ = queue.signals.send(Signal::Deleted(function));
        }
        if events.is_empty() {
            continue;
        }
        let handed = queue.hand_over(events.len());
        let leased_until = handed.then_some(super::dispatch::LEASED_UNTIL);
        let store = store.clone();
        let Ok((written, events)) = tokio::task::spawn_blocking(move || {
            (store.enqueue_events(&events, leased_until), events)
        })
        .await
        else {
            return;
        };
        let results = match written {
            Ok(results) => results,
            Err(err) => {
                if handed {
                    queue.in_transit.fetch_sub(events.len(), Ordering::AcqRel);
                }
                tracing::error!(error = %err, "queueing asynchronous events failed");
                for (reply, e) in replies.into_iter().zip(&events) {
                    queue.forget(e.payload.len() as u64);
                    let _ = reply.send(Err(LambdaError::service(
                        "The event could not be queued. The server log has the details.",
                    )
                    .into()));
                }
                continue;
            }
        };
        for ((reply, result), e) in replies.into_iter().zip(results).zip(events) {
            let answer = match result {
                Ok(id) => {
                    metrics::counter!(
                        "lamina_async_events_received_total",
                        labels_of(&e.function, &[])
                    )
                    .increment(1);
                    let signal = if handed {
                        Signal::Handed(QueuedEvent {
                            id,
                            request_id: e.request_id,
                            function: e.function,
                            qualifier: e.qualifier,
                            payload: e.payload,
                            received_ms: e.received_ms,
                            attempts: 0,
                            backoff_ms: 0,
                            hops: e.hops,
                        })
                    } else {
                        Signal::Due(e.function, e.received_ms)
                    };
                    let _ = queue.signals.send(signal);
                    Ok(())
                }
                Err(_) => {
                    // Its function was deleted between the check and the commit.
                    if handed {
                        queue.in_transit.fetch_sub(1, Ordering::AcqRel);
                    }
                    queue.forget(e.payload.len() as u64);
                    Err(super::function_not_found(&e.function, None))
                }
            };
            let _ = reply.send(answer);
        }
    }
}

/// Commits settlements in batches, then updates the queue's size and tells the dispatcher what
/// falls due.
async fn write_settled(
    store: Arc<Store>,
    queue: std::sync::Weak<EventQueue>,
    mut rx: mpsc::UnboundedReceiver<Settling>,
) {
    while let Some(first) = rx.recv().await {
        // Settlements wait a moment for company: nobody waits for them, and every commit
        // writes whole pages and syncs them.
        tokio::time::sleep(SETTLE_LINGER).await;
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let Some(q) = queue.upgrade() else { return };
        // A destination record enters the queue only if it fits, as any event.
        for s in &mut batch {
            if let Settle::Finish { then, .. } = &mut s.settle
                && let Some(record) = then
                && !q.admit(record.payload.len() as u64)
            {
                *then = None;
                s.destination = None;
                metrics::counter!(
                    "lamina_async_destination_delivery_failures_total",
                    labels_of(&s.function, &[])
                )
                .increment(1);
            }
        }
        drop(q);
        let settles: Vec<Settle> = batch.iter().map(|s| s.settle.clone()).collect();
        // One atomic transaction: on a failure (disk full, I/O), the same batch is tried again.
        let mut wait = Duration::from_millis(100);
        let outcomes = loop {
            let store = store.clone();
            let settles = settles.clone();
            let Ok(written) =
                tokio::task::spawn_blocking(move || store.settle_events(&settles)).await
            else {
                // Nobody waits for this batch (nor, the writer gone, for any later one).
                if let Some(q) = queue.upgrade() {
                    q.unsettled.send_modify(|n| *n -= batch.len());
                }
                return;
            };
            match written {
                Ok(outcomes) => break outcomes,
                Err(e) => {
                    tracing::error!(error = %e, events = batch.len(), "settling asynchronous events failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        };
        let Some(queue) = queue.upgrade() else { return };
        let committed = batch.len();
        for (s, (existed, delivered)) in batch.into_iter().zip(outcomes) {
            match s.settle {
                Settle::Requeue { due_ms, .. } => {
                    if existed {
                        let _ = queue.signals.send(Signal::Due(s.function, due_ms));
                    }
                }
                Settle::Finish { then, .. } => {
                    // An event of a function deleted meanwhile was counted out with it.
                    if existed {
                        queue.forget(s.bytes);
                    }
                    match (then, s.destination) {
                        (Some(_), Some(destination)) if delivered => {
                            let _ = queue.signals.send(Signal::Due(destination, now_millis()));
                        }
                        (Some(record), _) => {
                            queue.forget(record.payload.len() as u64);
                            metrics::counter!(
                                "lamina_async_destination_delivery_failures_total",
                                labels_of(&s.function, &[])
                            )
                            .increment(1);
                        }
                        _ => {}
                    }
                }
            }
        }
        queue.unsettled.send_modify(|n| *n -= committed);
    }
}

/// Queue depth per function, for `/metrics`.
pub async fn depths(state: &AppState) -> Vec<(FunctionKey, u64)> {
    let store = state.store.clone();
    blocking(move || Ok(store.queue_depths()?))
        .await
        .unwrap_or_default()
}
