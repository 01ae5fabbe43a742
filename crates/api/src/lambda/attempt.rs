//! One attempt of an asynchronous event, and what becomes of the event after it: run through
//! [`super::invoke::run`] with the event's request id, then, as Lambda does, a function error
//! (handler error, timeout, crash, out of memory, failed INIT) is retried up to
//! `MaximumRetryAttempts` after the configured delays (1 and 2 minutes by default); a throttle or
//! a platform error puts the event back with exponential back-off (1 s to 5 minutes) without
//! counting an attempt; an event older than `MaximumEventAgeInSeconds` goes; reserved
//! concurrency 0 sends it straight to its failure destination. Success and failure records go to
//! the configured destination (see [`super::destinations`]): a function's is queued in the same
//! transaction that removes the event, a topic's is published before it; an event that failed
//! goes to the function's dead-letter topic the same way. That transaction also stores the
//! attempt's usage record (keyed by request id and attempt number: an attempt that runs again
//! after a crash is billed once).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::body::Bytes;
use lamina_model::{ErrorKind, Qualifier, now_millis};
use lamina_runtime_api::{Failure, Throttle};
use lamina_store::{FunctionKey, QueuedEvent, Settle, UsageRecord};

use super::queue::Settling;
use super::{AppState, destinations};
use crate::prometheus::labels_of;

/// What puts an event back in the queue if its attempt panics: a bug must not strand it, leased,
/// until the next start.
pub(super) struct Again {
    id: i64,
    request_id: String,
    function: FunctionKey,
    attempts: u32,
    backoff_ms: i64,
    bytes: u64,
}

impl Again {
    pub(super) fn of(e: &QueuedEvent) -> Self {
        Again {
            id: e.id,
            request_id: e.request_id.clone(),
            function: e.function.clone(),
            attempts: e.attempts,
            backoff_ms: e.backoff_ms,
            bytes: e.payload.len() as u64,
        }
    }

    /// Back to the queue after a back-off, as after a platform error. Should the attempt have
    /// settled its event before it panicked, this settlement finds it gone or moves it later.
    pub(super) fn after_panic(self, state: &AppState) {
        tracing::error!(function = %self.function.name, request_id = %self.request_id, "an asynchronous attempt panicked; its event is queued again");
        let max = state.queue.settings.max_backoff.as_millis() as i64;
        let backoff = (self.backoff_ms * 2).clamp(1000, max.max(1000));
        state.queue.settle(Settling {
            settle: Settle::Requeue {
                id: self.id,
                request_id: self.request_id,
                due_ms: now_millis() + backoff,
                attempts: self.attempts,
                backoff_ms: backoff,
                usage: None,
            },
            function: self.function,
            bytes: self.bytes,
            destination: None,
        });
    }
}

/// Ends the events waiting for room that have grown older than their maximum age.
pub(super) fn expire(
    state: &Arc<AppState>,
    buffer: &mut VecDeque<(QueuedEvent, Arc<Rules>)>,
    now: i64,
) {
    buffer.retain(|(e, rules)| {
        if now - e.received_ms <= rules.max_age_ms {
            return true;
        }
        finish(
            state,
            e.clone(),
            rules,
            Condition::EventAgeExceeded,
            None,
            None,
        );
        false
    });
}

/// What an event's configuration says, with Lambda's defaults.
pub(crate) struct Rules {
    max_retries: u32,
    max_age_ms: i64,
    on_success: Option<String>,
    on_failure: Option<String>,
    /// The function's dead-letter topic.
    pub(super) dead_letter: Option<String>,
}

/// Why an event ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
    ZeroReservedConcurrency,
    /// The function (or the alias or version invoked) no longer exists: nothing to deliver.
    FunctionGone,
    /// The event came of a recursive loop.
    RecursiveLoop,
}

impl Condition {
    fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::ZeroReservedConcurrency => "ZeroReservedConcurrency",
            Condition::FunctionGone => "FunctionGone",
            Condition::RecursiveLoop => "RecursiveInvocationException",
        }
    }
}

/// The last attempt's answer, for a destination record.
pub(crate) struct Response {
    pub executed_version: String,
    pub function_error: bool,
    pub body: Bytes,
}

impl From<Option<lamina_store::EventInvokeConfig>> for Rules {
    /// An event's qualifier's configuration (`$LATEST`'s when unqualified), with Lambda's
    /// defaults for what it leaves out.
    fn from(config: Option<lamina_store::EventInvokeConfig>) -> Self {
        Rules {
            max_retries: config.as_ref().and_then(|c| c.max_retries).unwrap_or(2),
            max_age_ms: config.as_ref().and_then(|c| c.max_age_s).unwrap_or(21_600) as i64 * 1000,
            on_success: config.as_ref().and_then(|c| c.on_success.clone()),
            on_failure: config.and_then(|c| c.on_failure),
            dead_letter: None,
        }
    }
}

/// Whether a function runs on in a recursive loop (`RecursiveLoop` `Allow`); asked only of an
/// event deep in one. `None`: the store could not say. A function gone does not allow it (its
/// attempt would find it gone anyway).
async fn loop_allowed(state: &Arc<AppState>, function: &FunctionKey) -> Option<bool> {
    let (store, key) = (state.store.clone(), function.clone());
    match tokio::task::spawn_blocking(move || store.recursive_loop_allowed(&key)).await {
        Ok(Ok(allowed)) => Some(allowed.unwrap_or(false)),
        _ => None,
    }
}

/// Runs one attempt of an event and decides what becomes of it. Gives the event back if it found
/// no room after all.
pub(super) async fn attempt(
    state: &Arc<AppState>,
    e: QueuedEvent,
    rules_arc: Arc<Rules>,
) -> Option<(QueuedEvent, Arc<Rules>)> {
    let rules = rules_arc.as_ref();
    let now = now_millis();
    metrics::histogram!(
        "lamina_async_event_age_seconds",
        labels_of(&e.function, &[])
    )
    .record((now - e.received_ms) as f64 / 1000.0);
    if now - e.received_ms > rules.max_age_ms {
        finish(state, e, rules, Condition::EventAgeExceeded, None, None);
        return None;
    }
    // A loop (a function publishing to a topic it is subscribed to, or invoking itself
    // asynchronously): stopped after 16 invocations, as Lambda stops them, unless the function
    // allows it (PutFunctionRecursionConfig).
    if e.hops >= super::queue::MAX_HOPS {
        match loop_allowed(state, &e.function).await {
            Some(true) => {}
            Some(false) => {
                tracing::warn!(function = %e.function.name, request_id = %e.request_id, hops = e.hops, "an asynchronous event came of a recursive loop; it is dropped");
                finish(state, e, rules, Condition::RecursiveLoop, None, None);
                return None;
            }
            // The setting could not be read: the event waits, as after a platform error.
            None => {
                back_off(state, e, rules);
                return None;
            }
        }
    }
    let qualifier = e
        .qualifier
        .as_deref()
        .and_then(|q| Qualifier::parse(q).ok());
    // Every attempt is billed once: its usage key is the request id, then `<id>:<n>`.
    let usage_key = match e.attempts {
        0 => e.request_id.clone(),
        n => format!("{}:{}", e.request_id, n + 1),
    };
    let ran = super::invoke::run(
        state,
        &e.function,
        qualifier.as_ref(),
        super::invoke::Call {
            request_id: e.request_id.clone(),
            usage_key,
            payload: Bytes::from(e.payload.clone()),
            client_context: None,
            asynchronous: true,
            // The attempt's usage is stored with the event's next state.
            await_end: true,
            stream: false,
            hops: e.hops,
        },
    )
    .await;
    let ran = match ran {
        Ok(ran) => ran,
        Err(err) if err.error.kind == ErrorKind::ResourceNotFound => {
            // Gone for good, or only its code for a moment (two updates racing the attempt)?
            if super::hot::record(state, &e.function, qualifier.as_ref(), true)
                .await
                .is_ok()
            {
                back_off(state, e, rules);
                return None;
            }
            finish(state, e, rules, Condition::FunctionGone, None, None);
            return None;
        }
        // Not active yet, or a store failure: try again later.
        Err(_) => {
            back_off(state, e, rules);
            return None;
        }
    };
    let usage = ran.usage;
    let executed_version = ran.rec.version.clone();
    let response = |outcome: lamina_runtime_api::Outcome| Response {
        executed_version: executed_version.clone(),
        function_error: outcome.function_error,
        body: outcome.body,
    };
    match ran.result {
        Ok(done) if !done.outcome.function_error => {
            let last = Some(response(done.outcome));
            finish(state, e, rules, Condition::Success, last, usage)
        }
        Ok(done) => failed(state, e, rules, response(done.outcome), usage),
        Err(Failure::Function(outcome)) => failed(state, e, rules, response(outcome), usage),
        Err(Failure::Throttled(Throttle::Stopped)) => finish(
            state,
            e,
            rules,
            Condition::ZeroReservedConcurrency,
            None,
            None,
        ),
        // Another attempt took the room first: back to the dispatcher, as it was.
        Err(Failure::Throttled(Throttle::AsyncShare)) => return Some((e, rules_arc.clone())),
        // Cut short by the server's stop, not the function's failure: left leased as it was,
        // so the next start releases it and runs the same attempt again.
        Err(Failure::Interrupted) => {}
        Err(_) => back_off(state, e, rules),
    }
    None
}

/// A function error: retry after the configured delay, or give up.
fn failed(
    state: &Arc<AppState>,
    mut e: QueuedEvent,
    rules: &Rules,
    last: Response,
    usage: Option<UsageRecord>,
) {
    e.attempts += 1;
    if e.attempts > rules.max_retries {
        return finish(
            state,
            e,
            rules,
            Condition::RetriesExhausted,
            Some(last),
            usage,
        );
    }
    let delays = &state.queue.settings.retry_delays;
    let delay = delays
        .get(e.attempts as usize - 1)
        .or(delays.last())
        .map_or(60_000, |d| d.as_millis() as i64);
    let due = now_millis() + delay;
    if due - e.received_ms > rules.max_age_ms {
        return finish(
            state,
            e,
            rules,
            Condition::EventAgeExceeded,
            Some(last),
            usage,
        );
    }
    let backoff = e.backoff_ms;
    requeue(state, e, due, backoff, usage);
}

/// A throttle or a platform error: back to the queue, later, without counting an attempt.
fn back_off(state: &Arc<AppState>, e: QueuedEvent, rules: &Rules) {
    let max = state.queue.settings.max_backoff.as_millis() as i64;
    let backoff = (e.backoff_ms * 2).clamp(1000, max.max(1000));
    let due = now_millis() + backoff;
    if due - e.received_ms > rules.max_age_ms {
        return finish(state, e, rules, Condition::EventAgeExceeded, None, None);
    }
    requeue(state, e, due, backoff, None);
}

fn requeue(state: &AppState, e: QueuedEvent, due: i64, backoff: i64, usage: Option<UsageRecord>) {
    state.queue.settle(Settling {
        settle: Settle::Requeue {
            id: e.id,
            request_id: e.request_id,
            due_ms: due,
            attempts: e.attempts,
            backoff_ms: backoff,
            usage,
        },
        function: e.function,
        bytes: e.payload.len() as u64,
        destination: None,
    });
}

/// Ends an event: it leaves the queue, and the record for its destination enters it (a
/// function's in the same transaction; a topic's is published first, then the event leaves),
/// as does the event for its dead-letter topic after a failure.
fn finish(
    state: &Arc<AppState>,
    e: QueuedEvent,
    rules: &Rules,
    condition: Condition,
    last: Option<Response>,
    usage: Option<UsageRecord>,
) {
    if condition != Condition::Success {
        metrics::counter!(
            "lamina_async_events_dropped_total",
            labels_of(&e.function, &[("reason", condition.as_str())])
        )
        .increment(1);
    }
    // An event stopped in a loop is as deep as a record may go: none is made (Lambda sends one).
    let destination = match condition {
        Condition::Success => rules.on_success.clone(),
        Condition::FunctionGone | Condition::RecursiveLoop => None,
        _ => rules.on_failure.clone(),
    };
    let dead_letter = match condition {
        Condition::Success | Condition::FunctionGone | Condition::RecursiveLoop => None,
        _ => rules.dead_letter.clone(),
    };
    let record = destination
        .as_ref()
        .map(|_| destinations::record(&e, condition.as_str(), last.as_ref()));
    let then = match (&destination, &record) {
        (Some(d), Some(r)) if !d.starts_with("arn:aws:sns:") => {
            let then = destinations::function_event(&e, d, r);
            if then.is_none() {
                destinations::failed(&e, "destination");
            }
            then
        }
        _ => None,
    };
    let topic = destination.filter(|d| d.starts_with("arn:aws:sns:"));
    let settling = Settling {
        destination: then.as_ref().map(|t| t.function.clone()),
        settle: Settle::Finish {
            id: e.id,
            request_id: e.request_id.clone(),
            then,
            usage,
        },
        bytes: e.payload.len() as u64,
        function: e.function.clone(),
    };
    if topic.is_none() && dead_letter.is_none() {
        state.queue.settle(settling);
        return;
    }
    // Published before the event leaves the queue: a crash in between publishes again. Counted
    // as running until its settlement is handed over, so a graceful stop waits for it.
    let running = state.queue.running();
    let state = state.clone();
    tokio::spawn(async move {
        let _running = running;
        if let (Some(topic), Some(record)) = (topic, record) {
            destinations::to_topic(
                &state,
                &e,
                &topic,
                record.to_string(),
                BTreeMap::new(),
                "destination",
            )
            .await;
        }
        if let Some(dlq) = dead_letter {
            let attributes =
                destinations::dead_letter_attributes(&e, condition.as_str(), last.as_ref());
            let body = String::from_utf8_lossy(&e.payload).into_owned();
            destinations::to_topic(&state, &e, &dlq, body, attributes, "dead-letter").await;
        }
        state.queue.settle(settling);
    });
}
