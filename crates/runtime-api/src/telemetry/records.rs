//! The records subscribers are sent, in each API's form: `{"time", "type", "record"}`, with the
//! Telemetry API's fields of schema 2022-12-13 (a superset of 2022-07-01's, whose readers ignore
//! what they do not know) or the Logs API's.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::platform::Report;

/// A record of the platform's.
pub(crate) const PLATFORM: u8 = 1;
/// A line of the function's.
pub(crate) const FUNCTION: u8 = 2;
/// A line of an extension's.
pub(crate) const EXTENSION: u8 = 4;

/// Which API a subscription came through: what its records look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `/2022-07-01/telemetry`.
    Telemetry,
    /// `/2020-08-15/logs`; `runtime_done` with schema 2021-03-18, which added that record.
    Logs { runtime_done: bool },
}

/// What happened, as the platform tells subscribers.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    InitStart,
    /// The runtime and the extensions are ready: INIT succeeded (`platform.initRuntimeDone`,
    /// then `platform.extension` for each extension, then `platform.initReport`).
    InitDone {
        duration_ms: f64,
        extensions: &'a [(String, Vec<&'static str>)],
    },
    Subscribed {
        name: &'a str,
        types: u8,
    },
    Start {
        request_id: &'a str,
        version: &'a str,
        trace_id: &'a str,
    },
    RuntimeDone {
        request_id: &'a str,
        status: &'a str,
        error_type: Option<&'a str>,
        duration_ms: f64,
        produced_bytes: usize,
        started: &'a str,
        trace_id: &'a str,
    },
    Report(&'a Report<'a>),
    Dropped {
        records: u64,
        bytes: u64,
    },
    /// A line of the function's output (or of an extension's); in JSON logs, an object where
    /// it is one.
    Line {
        text: &'a str,
        json: bool,
        extension: bool,
    },
}

impl Event<'_> {
    /// The type a subscription asks for to be sent this.
    pub(crate) fn kind(&self) -> u8 {
        match self {
            Event::Line {
                extension: true, ..
            } => EXTENSION,
            Event::Line { .. } => FUNCTION,
            _ => PLATFORM,
        }
    }

    /// The records this is for a subscription through `api`: none where that API has none.
    pub(crate) fn render(&self, api: Api, time: &str) -> Vec<Bytes> {
        let one = |kind: &str, record: Value| {
            let r = json!({ "time": time, "type": kind, "record": record });
            Bytes::from(r.to_string())
        };
        let logs = matches!(api, Api::Logs { .. });
        match self {
            Event::InitStart if logs => Vec::new(),
            Event::InitStart => vec![one(
                "platform.initStart",
                json!({ "initializationType": "on-demand", "phase": "init" }),
            )],
            Event::InitDone { .. } if logs => Vec::new(),
            Event::InitDone {
                duration_ms,
                extensions,
            } => {
                let mut out = vec![one(
                    "platform.initRuntimeDone",
                    json!({ "initializationType": "on-demand", "phase": "init", "status": "success" }),
                )];
                out.extend(extensions.iter().map(|(name, events)| {
                    one(
                        "platform.extension",
                        json!({ "name": name, "state": "Ready", "events": events }),
                    )
                }));
                out.push(one(
                    "platform.initReport",
                    json!({
                        "initializationType": "on-demand",
                        "phase": "init",
                        "status": "success",
                        "metrics": { "durationMs": round(*duration_ms) },
                    }),
                ));
                out
            }
            Event::Subscribed { name, types } => {
                let kind = if logs {
                    "platform.logsSubscription"
                } else {
                    "platform.telemetrySubscription"
                };
                vec![one(
                    kind,
                    json!({ "name": name, "state": "Subscribed", "types": type_names(*types) }),
                )]
            }
            Event::Start {
                request_id,
                version,
                trace_id,
            } => {
                let mut r = json!({ "requestId": request_id, "version": version });
                if !logs {
                    r["tracing"] = tracing(trace_id);
                }
                vec![one("platform.start", r)]
            }
            Event::RuntimeDone { .. }
                if api
                    == (Api::Logs {
                        runtime_done: false,
                    }) =>
            {
                Vec::new()
            }
            Event::RuntimeDone {
                request_id,
                status,
                error_type,
                duration_ms,
                produced_bytes,
                started,
                trace_id,
            } => {
                let mut r = json!({ "requestId": request_id, "status": status });
                if !logs {
                    if let Some(t) = error_type {
                        r["errorType"] = json!(t);
                    }
                    r["metrics"] = json!({ "durationMs": round(*duration_ms), "producedBytes": produced_bytes });
                    r["spans"] = json!([
                        { "name": "responseLatency", "start": started, "durationMs": round(*duration_ms) },
                        { "name": "responseDuration", "start": time, "durationMs": 0.0 },
                    ]);
                    r["tracing"] = tracing(trace_id);
                }
                vec![one("platform.runtimeDone", r)]
            }
            Event::Report(report) => {
                let mut metrics = json!({
                    "durationMs": round(report.duration_ms),
                    "billedDurationMs": report.billed_ms,
                    "memorySizeMB": report.memory_mb,
                    "maxMemoryUsedMB": report.max_memory_mb,
                });
                if let Some(i) = report.init_ms {
                    metrics["initDurationMs"] = json!(round(i));
                }
                let mut r = json!({ "requestId": report.request_id, "metrics": metrics });
                if logs {
                    return vec![
                        one("platform.end", json!({ "requestId": report.request_id })),
                        one("platform.report", r),
                    ];
                }
                r["status"] = json!(report.status.unwrap_or("success"));
                if let Some(t) = report.error_type.filter(|_| report.status.is_some()) {
                    r["errorType"] = json!(t);
                }
                vec![one("platform.report", r)]
            }
            Event::Dropped { records, bytes } => vec![one(
                "platform.logsDropped",
                json!({
                    "reason": "Consumer seems to have fallen behind as it has not acknowledged receipt of logs.",
                    "droppedRecords": records,
                    "droppedBytes": bytes,
                }),
            )],
            Event::Line {
                text,
                json,
                extension,
            } => {
                // The Logs API's lines are strings, whatever the log format.
                let record = match *json && !logs {
                    true if text.starts_with('{') => serde_json::from_str::<Value>(text)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| Value::from(*text)),
                    _ => Value::from(*text),
                };
                vec![one(
                    if *extension { "extension" } else { "function" },
                    record,
                )]
            }
        }
    }
}

/// Milliseconds to three decimals, as Lambda gives them.
fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn tracing(trace_id: &str) -> Value {
    json!({ "type": "X-Amzn-Trace-Id", "value": trace_id })
}

/// The names of the types in `mask`, in Lambda's order.
pub(crate) fn type_names(mask: u8) -> Vec<&'static str> {
    [
        (PLATFORM, "platform"),
        (FUNCTION, "function"),
        (EXTENSION, "extension"),
    ]
    .into_iter()
    .filter(|(bit, _)| mask & bit != 0)
    .map(|(_, name)| name)
    .collect()
}
