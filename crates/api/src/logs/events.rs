//! Reading events: `GetLogEvents` (one stream, paged both ways) and `FilterLogEvents` (a group,
//! narrowed by streams, time and a filter pattern).
//!
//! The store narrows by account, region, function, stream and time through its indexes; the
//! pattern is matched here, per row. A filter scans in chunks, releasing the store between them,
//! and answers within a time budget: what it has found so far, and a token to resume after the
//! last row it read (so tokens always move forward, even on a page with no events).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lamina_store::{FunctionKey, LogEvent, LogPosition, LogScan, ScanResult, StreamFilter};
use serde_json::{Value, json};

use super::pattern::Pattern;
use super::{Ctx, LogsError, Result, token};
use crate::blocking;

/// The most events one page may hold, and the default of both reads.
const MAX_EVENTS: i64 = 10_000;
/// Rows a filter reads from the store at a time.
const CHUNK_ROWS: usize = 5_000;
/// How long a filter searches before it answers with what it has.
const FILTER_BUDGET: Duration = Duration::from_millis(120);
/// The most stream names a filter may list.
const MAX_STREAM_NAMES: usize = 100;

/// An event as both reads show it; `ingestionTime` is the time it was logged.
fn event_json(e: &LogEvent) -> Value {
    json!({ "timestamp": e.ts_ms, "message": e.message, "ingestionTime": e.ts_ms })
}

/// A GetLogEvents token: forward (events after the position) or backward (events before it).
fn stream_token(forward: bool, p: LogPosition) -> String {
    format!("{}/{}/{}", if forward { 'f' } else { 'b' }, p.ts_ms, p.id)
}

fn parse_stream_token(t: &str) -> Option<(bool, LogPosition)> {
    let (dir, rest) = t.split_once('/')?;
    let forward = match dir {
        "f" => true,
        "b" => false,
        _ => return None,
    };
    let (ts, id) = rest.split_once('/')?;
    Some((
        forward,
        LogPosition {
            ts_ms: ts.parse().ok()?,
            id: id.parse().ok()?,
        },
    ))
}

/// What one scan reads of a group: everything of [`LogScan`] but the group and its streams.
#[derive(Debug, Clone, Copy)]
struct Range {
    from_ms: i64,
    to_ms: i64,
    cursor: Option<LogPosition>,
    backward: bool,
    max_rows: usize,
    max_keep: usize,
}

/// Runs a scan off the async threads.
async fn scan(
    ctx: &Ctx<'_>,
    key: &Arc<FunctionKey>,
    streams: &Arc<StreamFilter>,
    r: Range,
    pattern: Option<Arc<Pattern>>,
) -> Result<ScanResult> {
    let store = ctx.state.store.clone();
    let (key, streams) = (key.clone(), streams.clone());
    blocking::<_, LogsError>(move || {
        let scan = LogScan {
            key: &key,
            streams: &streams,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            cursor: r.cursor,
            backward: r.backward,
            max_rows: r.max_rows,
            max_keep: r.max_keep,
        };
        let mut keep = |m: &str| pattern.as_ref().is_none_or(|p| p.matches(m));
        Ok(store.scan_logs(&scan, &mut keep)?)
    })
    .await
}

pub(super) async fn get_log_events(ctx: &Ctx<'_>) -> Result<Value> {
    let stream = ctx.str("logStreamName")?.map(str::to_owned).ok_or_else(|| {
        LogsError::invalid(
            "1 validation error detected: Value null at 'logStreamName' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let limit = ctx.limit(MAX_EVENTS, MAX_EVENTS)?;
    let from_head = ctx.bool("startFromHead")?.unwrap_or(false);
    let from_ms = ctx.int("startTime")?.unwrap_or(i64::MIN);
    let to_ms = ctx.int("endTime")?.unwrap_or(i64::MAX);
    let given = match ctx.str("nextToken")? {
        Some(t) => Some(parse_stream_token(t).ok_or_else(LogsError::bad_token)?),
        None => None,
    };
    let (_, key, _) = ctx.group().await?;
    let streams = Arc::new(StreamFilter::Names(vec![stream]));
    let key = Arc::new(key);
    let exists = scan(
        ctx,
        &key,
        &streams,
        Range {
            from_ms: i64::MIN,
            to_ms: i64::MAX,
            cursor: None,
            backward: false,
            max_rows: 1,
            max_keep: 1,
        },
        None,
    )
    .await?;
    if exists.last.is_none() {
        return Err(LogsError::no_stream());
    }
    let (backward, cursor) = match given {
        Some((forward, p)) => (!forward, Some(p)),
        None => (!from_head, None),
    };
    let found = scan(
        ctx,
        &key,
        &streams,
        Range {
            from_ms,
            to_ms,
            cursor,
            backward,
            max_rows: limit,
            max_keep: limit,
        },
        None,
    )
    .await?;
    let mut events = found.events;
    if backward {
        events.reverse();
    }
    let pos = |e: &LogEvent| LogPosition {
        ts_ms: e.ts_ms,
        id: e.id,
    };
    let (forward_token, backward_token) = match (events.first(), events.last(), given) {
        (Some(first), Some(last), _) => (
            stream_token(true, pos(last)),
            stream_token(false, pos(first)),
        ),
        // At either end the token asked with comes back, as CloudWatch Logs does.
        (_, _, Some((true, p))) => (
            stream_token(true, p),
            stream_token(
                false,
                LogPosition {
                    ts_ms: p.ts_ms,
                    id: p.id.saturating_add(1),
                },
            ),
        ),
        (_, _, Some((false, p))) => (
            stream_token(
                true,
                LogPosition {
                    ts_ms: p.ts_ms,
                    id: p.id.saturating_sub(1),
                },
            ),
            stream_token(false, p),
        ),
        (_, _, None) => (
            stream_token(
                true,
                LogPosition {
                    ts_ms: i64::MIN,
                    id: i64::MIN,
                },
            ),
            stream_token(
                false,
                LogPosition {
                    ts_ms: i64::MAX,
                    id: i64::MAX,
                },
            ),
        ),
    };
    let list: Vec<Value> = events.iter().map(event_json).collect();
    Ok(json!({
        "events": list,
        "nextForwardToken": forward_token,
        "nextBackwardToken": backward_token,
    }))
}

pub(super) async fn filter_log_events(ctx: &Ctx<'_>) -> Result<Value> {
    let names = ctx.strings("logStreamNames")?;
    let prefix = ctx.str("logStreamNamePrefix")?.map(str::to_owned);
    let streams = match (names, prefix) {
        (Some(_), Some(_)) => {
            return Err(LogsError::invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
            ));
        }
        (Some(n), None) if n.is_empty() || n.len() > MAX_STREAM_NAMES => {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: Member must have length between 1 and {MAX_STREAM_NAMES}"
            )));
        }
        (Some(n), None) => StreamFilter::Names(n),
        (None, Some(p)) => StreamFilter::Prefix(p),
        (None, None) => StreamFilter::All,
    };
    let pattern = Pattern::parse(ctx.str("filterPattern")?.unwrap_or(""))
        .map_err(|e| LogsError::invalid(e.0))?;
    let limit = ctx.limit(MAX_EVENTS, MAX_EVENTS)?;
    let from_ms = ctx.int("startTime")?.unwrap_or(i64::MIN);
    // FilterLogEvents' end is inclusive: only events later than it are left out.
    let to_ms = ctx
        .int("endTime")?
        .map_or(i64::MAX, |t| t.saturating_add(1));
    let mut cursor = match ctx.str("nextToken")? {
        Some(t) => {
            let f = token::decode('e', t).ok_or_else(LogsError::bad_token)?;
            match f.as_slice() {
                [ts, id] => Some(LogPosition {
                    ts_ms: ts.parse().map_err(|_| LogsError::bad_token())?,
                    id: id.parse().map_err(|_| LogsError::bad_token())?,
                }),
                _ => return Err(LogsError::bad_token()),
            }
        }
        None => None,
    };
    let (_, key, _) = ctx.group().await?;
    let (key, streams) = (Arc::new(key), Arc::new(streams));
    let pattern = Arc::new(pattern);
    let started = Instant::now();
    let mut events: Vec<LogEvent> = Vec::new();
    let mut bytes = 0;
    let done = loop {
        let found = scan(
            ctx,
            &key,
            &streams,
            Range {
                from_ms,
                to_ms,
                cursor,
                backward: false,
                max_rows: CHUNK_ROWS,
                max_keep: limit - events.len(),
            },
            Some(pattern.clone()),
        )
        .await?;
        cursor = found.last.or(cursor);
        bytes += found.events.iter().map(|e| e.message.len()).sum::<usize>();
        events.extend(found.events);
        if found.exhausted {
            break true;
        }
        // A page holds up to 1 MB of events, as CloudWatch Logs' do.
        if events.len() >= limit
            || bytes >= lamina_store::MAX_SCAN_BYTES
            || started.elapsed() >= FILTER_BUDGET
        {
            break false;
        }
    };
    let list: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut v = event_json(e);
            v["logStreamName"] = json!(e.stream);
            // Stable and unique: the row id, as the digits CloudWatch Logs' ids are made of.
            v["eventId"] = json!(format!("{:056}", e.id));
            v
        })
        .collect();
    let mut out = json!({ "events": list, "searchedLogStreams": [] });
    if !done && let Some(c) = cursor {
        out["nextToken"] = json!(token::encode(
            'e',
            &[&c.ts_ms.to_string(), &c.id.to_string()]
        ));
    }
    Ok(out)
}
