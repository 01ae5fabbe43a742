//! `StartLiveTail`: new lines of up to ten groups, pushed as they are stored, over an AWS event
//! stream (`application/vnd.amazon.eventstream`).
//!
//! The stream opens with the `initial-response` event the JSON protocol's clients require, then
//! `sessionStart`; a `sessionUpdate` follows every second (empty when nothing new matched), with
//! at most 500 events (`sampled` when more matched) and 1 MiB (lines past it wait for the next
//! update). Lines are followed by row id, so a line
//! stored late is still sent once. After three hours the session ends with a
//! `SessionTimeoutException`, as CloudWatch Logs' do; it ends sooner when the client hangs up,
//! and with a `SessionStreamingException` when the server shuts down.
//!
//! botocore sends this operation to `stream-<host>` (the model's host prefix): clients of a
//! plain address turn that off (`inject_host_prefix=False`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use lamina_store::FunctionKey;
use serde_json::{Value, json};

use super::pattern::Pattern;
use super::{Ctx, LogsError, Result};
use crate::eventstream::frame;
use crate::{AppState, blocking};

/// How long a session lasts.
const SESSION: Duration = Duration::from_secs(3 * 3600);
/// How often an update is sent.
const TICK: Duration = Duration::from_secs(1);
/// Events per update, at most.
const MAX_RESULTS: usize = 500;
/// Message bytes per update, at most, well under the event stream's 16 MiB: lines past it wait
/// for the next update (500 lines of 256 KiB would not fit in one message).
const MAX_UPDATE_BYTES: usize = 1 << 20;
/// Lines read per group and tick, at most (the rest are read at the next tick); the store
/// reads about 1 MiB of them at most.
const READ_PER_TICK: usize = 10_000;

fn event(kind: &str, payload: &Value) -> Bytes {
    frame(
        &[
            (":message-type", "event"),
            (":event-type", kind),
            (":content-type", "application/json"),
        ],
        payload.to_string().as_bytes(),
    )
}

fn exception(kind: &str, message: &str) -> Bytes {
    frame(
        &[
            (":message-type", "exception"),
            (":exception-type", kind),
            (":content-type", "application/json"),
        ],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

/// Which streams a session follows.
#[derive(Debug, Clone)]
enum Streams {
    All,
    Names(Vec<String>),
    Prefixes(Vec<String>),
}

impl Streams {
    fn admits(&self, stream: &str) -> bool {
        match self {
            Self::All => true,
            Self::Names(n) => n.iter().any(|s| s == stream),
            Self::Prefixes(p) => p.iter().any(|s| stream.starts_with(s.as_str())),
        }
    }
}

/// A group followed: as the request named it, its function, and the last row id seen.
struct Followed {
    identifier: String,
    key: FunctionKey,
    after: i64,
}

/// A session between ticks.
/// Live tail sessions open per account (CloudWatch Logs' quota).
const MAX_SESSIONS: usize = 15;

/// The live tail sessions open, per account: the CloudWatch Logs state of the server.
#[derive(Debug, Default)]
pub struct LiveTails(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// A session counted in its account's until it drops (its client gone, or its end read).
struct Open {
    state: Arc<AppState>,
    account: String,
}

impl LiveTails {
    fn open(state: &Arc<AppState>, account: &str) -> Option<Open> {
        let mut open = state.live_tails.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(account.to_owned()).or_default();
        if *n >= MAX_SESSIONS {
            return None;
        }
        *n += 1;
        Some(Open {
            state: state.clone(),
            account: account.to_owned(),
        })
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut open = (self.state.live_tails.0)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.account);
            }
        }
    }
}

struct Session {
    state: Arc<AppState>,
    _open: Open,
    groups: Vec<Followed>,
    streams: Streams,
    pattern: Pattern,
    ends: Instant,
    /// Turns true when the server shuts down.
    stop: tokio::sync::watch::Receiver<bool>,
    step: Step,
}

/// What the session sends next.
enum Step {
    /// The `initial-response` event, then `sessionStart` with this payload.
    Initial(Value),
    /// `sessionStart` with this payload.
    Start(Value),
    /// An update every tick.
    Updates,
    /// Nothing more: the session ended.
    Done,
}

pub(super) async fn start_live_tail(ctx: &Ctx<'_>) -> Result<Response> {
    let identifiers = ctx.strings("logGroupIdentifiers")?.unwrap_or_default();
    if identifiers.is_empty() || identifiers.len() > 10 {
        return Err(LogsError::invalid(
            "1 validation error detected: Value at 'logGroupIdentifiers' failed to satisfy constraint: Member must have length between 1 and 10",
        ));
    }
    let names = ctx.strings("logStreamNames")?;
    let prefixes = ctx.strings("logStreamNamePrefixes")?;
    for (member, list) in [
        ("logStreamNames", &names),
        ("logStreamNamePrefixes", &prefixes),
    ] {
        if list.as_ref().is_some_and(|l| l.is_empty() || l.len() > 100) {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length between 1 and 100"
            )));
        }
    }
    let streams = match (names.clone(), prefixes.clone()) {
        (Some(_), Some(_)) => {
            return Err(LogsError::invalid(
                "logStreamNames and logStreamNamePrefixes are mutually exclusive parameters.",
            ));
        }
        (Some(n), None) => Streams::Names(n),
        (None, Some(p)) => Streams::Prefixes(p),
        (None, None) => Streams::All,
    };
    let filter = ctx.str("logEventFilterPattern")?.map(str::to_owned);
    let pattern =
        Pattern::parse(filter.as_deref().unwrap_or("")).map_err(|e| LogsError::invalid(e.0))?;
    let mut keys = Vec::new();
    for id in &identifiers {
        let name = match id.strip_prefix(&ctx.group_arn("")) {
            Some(rest) => rest.to_owned(),
            None if id.starts_with("arn:") => return Err(LogsError::no_group()),
            None => id.clone(),
        };
        let key = ctx.key_of(&name).await?.ok_or_else(LogsError::no_group)?;
        // A group named twice (by name and by ARN) is followed once.
        if !keys.iter().any(|(_, k)| *k == key) {
            keys.push((id.clone(), key));
        }
    }
    let store = ctx.state.store.clone();
    let groups = blocking::<_, LogsError>(move || {
        let start = store.last_log_id()?;
        let mut out = Vec::new();
        for (identifier, key) in keys {
            if store.log_group(&key)?.is_none() {
                return Err(LogsError::no_group());
            }
            out.push(Followed {
                identifier,
                key,
                after: start,
            });
        }
        Ok(out)
    })
    .await?;
    let mut start = json!({
        "requestId": uuid::Uuid::new_v4().to_string(),
        "sessionId": uuid::Uuid::new_v4().to_string(),
        "logGroupIdentifiers": identifiers,
    });
    if let Some(n) = names {
        start["logStreamNames"] = json!(n);
    }
    if let Some(p) = prefixes {
        start["logStreamNamePrefixes"] = json!(p);
    }
    if let Some(f) = filter {
        start["logEventFilterPattern"] = json!(f);
    }
    let open = LiveTails::open(ctx.state, ctx.caller.account.as_str()).ok_or_else(|| {
        LogsError::new(
            "LimitExceededException",
            format!(
                "The account has {MAX_SESSIONS} live tail sessions open already; end one first."
            ),
        )
    })?;
    let session = Session {
        _open: open,
        state: ctx.state.clone(),
        groups,
        streams,
        pattern,
        ends: Instant::now() + SESSION,
        stop: ctx.state.stopping.subscribe(),
        step: Step::Initial(start),
    };
    let body = Body::from_stream(futures_util::stream::unfold(session, next));
    Ok((
        [("content-type", "application/vnd.amazon.eventstream")],
        body,
    )
        .into_response())
}

/// The session's next message, or its end.
async fn next(mut s: Session) -> Option<(std::result::Result<Bytes, Infallible>, Session)> {
    let out = match std::mem::replace(&mut s.step, Step::Updates) {
        Step::Initial(start) => {
            s.step = Step::Start(start);
            event("initial-response", &json!({}))
        }
        Step::Start(payload) => event("sessionStart", &payload),
        Step::Done => return None,
        Step::Updates => {
            if Instant::now() >= s.ends {
                s.step = Step::Done;
                exception(
                    "SessionTimeoutException",
                    "Session timed out after 3 hours.",
                )
            } else {
                let stopping = tokio::select! {
                    _ = tokio::time::sleep(TICK) => false,
                    _ = s.stop.wait_for(|stopping| *stopping) => true,
                };
                if stopping {
                    s.step = Step::Done;
                    let e = exception("SessionStreamingException", "The server is shutting down.");
                    return Some((Ok(e), s));
                }
                match poll(&mut s).await {
                    Ok(update) => event("sessionUpdate", &update),
                    Err(e) => {
                        tracing::warn!(error = %e, "a live tail session failed");
                        s.step = Step::Done;
                        exception("SessionStreamingException", "An internal error occurred.")
                    }
                }
            }
        }
    };
    Some((Ok(out), s))
}

/// Reads what the groups stored since the last tick and shapes one update.
async fn poll(s: &mut Session) -> Result<Value> {
    let store = s.state.store.clone();
    let wanted: Vec<(FunctionKey, i64)> =
        s.groups.iter().map(|g| (g.key.clone(), g.after)).collect();
    let read = blocking::<_, LogsError>(move || {
        let mut out = Vec::new();
        for (key, after) in wanted {
            out.push(store.logs(&key, after, READ_PER_TICK)?);
        }
        Ok(out)
    })
    .await?;
    let mut results = Vec::new();
    let mut matched = 0usize;
    let mut bytes = 0usize;
    'groups: for (group, events) in s.groups.iter_mut().zip(read) {
        for e in events {
            if !s.streams.admits(&e.stream) || !s.pattern.matches(&e.message) {
                group.after = e.id;
                continue;
            }
            let size = e.message.len() + e.stream.len() + group.identifier.len() + 128;
            if results.len() < MAX_RESULTS && bytes + size > MAX_UPDATE_BYTES && !results.is_empty()
            {
                // Full: this line and the rest of every group go in the next update.
                break 'groups;
            }
            group.after = e.id;
            matched += 1;
            if results.len() < MAX_RESULTS {
                bytes += size;
                results.push(json!({
                    "logStreamName": e.stream,
                    "logGroupIdentifier": group.identifier,
                    "message": e.message,
                    "timestamp": e.ts_ms,
                    "ingestionTime": e.ts_ms,
                }));
            }
        }
    }
    // The next update starts with the next group, so that a group whose lines fill every
    // update cannot hold the others back.
    s.groups.rotate_left(1);
    Ok(json!({
        "sessionMetadata": { "sampled": matched > MAX_RESULTS },
        "sessionResults": results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_aws_event_stream_layout() {
        let f = frame(&[(":event-type", "x")], b"{}");
        let total = u32::from_be_bytes(f[0..4].try_into().unwrap()) as usize;
        let headers = u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, f.len());
        assert_eq!(headers, 1 + 11 + 1 + 2 + 1);
        assert_eq!(
            u32::from_be_bytes(f[8..12].try_into().unwrap()),
            crc32fast::hash(&f[..8])
        );
        assert_eq!(&f[12..13], &[11]);
        assert_eq!(&f[13..24], b":event-type");
        assert_eq!(f[24], 7);
        assert_eq!(&f[total - 6..total - 4], b"{}");
        assert_eq!(
            u32::from_be_bytes(f[total - 4..].try_into().unwrap()),
            crc32fast::hash(&f[..total - 4])
        );
    }
}
