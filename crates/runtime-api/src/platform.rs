//! The platform's own log records around each invocation, in the function's `LogFormat`:
//! `START`/`END`/`REPORT` lines in `Text` (and `INIT_REPORT` after a failed INIT),
//! `platform.start`, `platform.report` and `platform.initReport` records in `JSON`, which
//! `SystemLogLevel` filters (all are `INFO` records: `WARN` hides them).

use serde_json::json;

/// A function's `LoggingConfig`, as its environments apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `LogFormat: JSON`.
    pub json: bool,
    /// `ApplicationLogLevel` (JSON only; `INFO` by default): given to the runtime.
    pub application_level: String,
    /// `SystemLogLevel` (JSON only; `INFO` by default): which platform records are written.
    pub system_level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            json: false,
            application_level: "INFO".into(),
            system_level: "INFO".into(),
        }
    }
}

impl LogSettings {
    /// The variables runtimes read their log format and level from (the level in JSON only, as
    /// only JSON has one).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let format = if self.json { "JSON" } else { "Text" };
        let mut vars = vec![("AWS_LAMBDA_LOG_FORMAT", format.to_owned())];
        if self.json {
            vars.push(("AWS_LAMBDA_LOG_LEVEL", self.application_level.clone()));
        }
        vars
    }

    /// Whether `INFO` platform records are written.
    fn info(&self) -> bool {
        !self.json || matches!(self.system_level.as_str(), "DEBUG" | "INFO")
    }
}

/// What a REPORT says of one invocation.
#[derive(Debug)]
pub struct Report<'a> {
    pub request_id: &'a str,
    pub duration_ms: f64,
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_mb: u64,
    pub init_ms: Option<f64>,
    /// `None` when the invocation succeeded; `error` or `timeout` otherwise.
    pub status: Option<&'a str>,
    pub error_type: Option<&'a str>,
}

/// A record's time: UTC, to the millisecond.
pub(crate) fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A new invocation's X-Ray trace header: a 96-bit root and a 64-bit parent, random, in hex.
pub(crate) fn trace_id() -> String {
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        lamina_model::now_millis() / 1000,
        uuid::Uuid::new_v4().as_u128() >> 32,
        (uuid::Uuid::new_v4().as_u128() >> 64) as u64
    )
}

/// The record that opens an invocation, if the settings keep it.
pub fn start(s: &LogSettings, request_id: &str, version: &str) -> Option<String> {
    if !s.info() {
        return None;
    }
    Some(if s.json {
        json!({
            "time": now(),
            "type": "platform.start",
            "record": { "requestId": request_id, "version": version },
        })
        .to_string()
    } else {
        format!("START RequestId: {request_id} Version: {version}")
    })
}

/// The records that close an invocation (`END` and `REPORT`, or `platform.report`).
pub fn end(s: &LogSettings, r: &Report<'_>) -> Vec<String> {
    if !s.info() {
        return Vec::new();
    }
    if s.json {
        let mut metrics = json!({
            "durationMs": (r.duration_ms * 1000.0).round() / 1000.0,
            "billedDurationMs": r.billed_ms,
            "memorySizeMB": r.memory_mb,
            "maxMemoryUsedMB": r.max_memory_mb,
        });
        if let Some(i) = r.init_ms {
            metrics["initDurationMs"] = json!((i * 1000.0).round() / 1000.0);
        }
        let mut record = json!({
            "requestId": r.request_id,
            "status": r.status.unwrap_or("success"),
            "metrics": metrics,
        });
        if let Some(t) = r.error_type.filter(|_| r.status.is_some()) {
            record["errorType"] = json!(t);
        }
        return vec![
            json!({ "time": now(), "type": "platform.report", "record": record }).to_string(),
        ];
    }
    let mut report = format!(
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        r.request_id, r.duration_ms, r.billed_ms, r.memory_mb, r.max_memory_mb
    );
    if let Some(i) = r.init_ms {
        report.push_str(&format!("Init Duration: {i:.2} ms\t"));
    }
    if let Some(s) = r.status {
        report.push_str(&format!("Status: {s}\t"));
        if let Some(t) = r.error_type {
            report.push_str(&format!("Error Type: {t}\t"));
        }
    }
    vec![format!("END RequestId: {}", r.request_id), report]
}

/// Which of an invocation's INITs: its environment's own, or the second that Lambda runs within
/// the invocation when the first failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitPhase {
    Init,
    Invoke,
}

/// An INIT that failed before the invocation that started it could run.
#[derive(Debug)]
pub struct FailedInit<'a> {
    pub phase: InitPhase,
    pub request_id: &'a str,
    pub version: &'a str,
    pub init_ms: f64,
    /// The REPORT's Billed Duration: every INIT of the invocation.
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_mb: u64,
    /// INIT did not finish within its limit (`Status: timeout`, no error type) rather than
    /// failed.
    pub timed_out: bool,
    pub error_type: &'a str,
    /// The platform's own account of the error (a runtime that could not start or exited),
    /// written between `START` and `END` with the error type under it, as Lambda does.
    pub message: Option<&'a str>,
}

/// The records a failed INIT leaves, after whatever the runtime wrote: `INIT_REPORT` (or
/// `platform.initReport`) for its phase; after the second (`Phase: invoke`), which ends the
/// invocation, also its `START`, the platform's message, `END` and a `REPORT` whose duration is
/// the time that INIT took.
pub fn failed_init(s: &LogSettings, f: &FailedInit<'_>) -> Vec<String> {
    if !s.info() {
        return Vec::new();
    }
    let status = if f.timed_out { "timeout" } else { "error" };
    let error_type = (!f.timed_out).then_some(f.error_type);
    let phase = match f.phase {
        InitPhase::Init => "init",
        InitPhase::Invoke => "invoke",
    };
    let init_report = if s.json {
        let mut record = json!({
            "initializationType": "on-demand",
            "phase": phase,
            "status": status,
            "metrics": { "durationMs": (f.init_ms * 1000.0).round() / 1000.0 },
        });
        if let Some(t) = error_type {
            record["errorType"] = json!(t);
        }
        json!({ "time": now(), "type": "platform.initReport", "record": record }).to_string()
    } else {
        let mut line = format!(
            "INIT_REPORT Init Duration: {:.2} ms\tPhase: {phase}\tStatus: {status}",
            f.init_ms
        );
        if let Some(t) = error_type {
            line.push_str("\tError Type: ");
            line.push_str(t);
        }
        line
    };
    let mut lines = vec![init_report];
    if f.phase == InitPhase::Init {
        return lines;
    }
    lines.extend(start(s, f.request_id, f.version));
    if let (false, Some(m)) = (s.json, f.message) {
        lines.push(match error_type {
            Some(t) => format!("{m}\n{t}"),
            None => m.to_owned(),
        });
    }
    lines.extend(end(
        s,
        &Report {
            request_id: f.request_id,
            duration_ms: f.init_ms,
            billed_ms: f.billed_ms,
            memory_mb: f.memory_mb,
            max_memory_mb: f.max_memory_mb,
            init_ms: None,
            status: Some(status),
            error_type,
        },
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Option<&'static str>) -> Report<'static> {
        Report {
            request_id: "r-1",
            duration_ms: 3.01234,
            billed_ms: 4,
            memory_mb: 128,
            max_memory_mb: 36,
            init_ms: Some(110.1),
            status,
            error_type: status.map(|_| "Runtime.ExitError"),
        }
    }

    #[test]
    fn text_keeps_lambdas_lines() {
        let s = LogSettings::default();
        assert_eq!(
            start(&s, "r-1", "$LATEST").unwrap(),
            "START RequestId: r-1 Version: $LATEST"
        );
        let lines = end(&s, &report(None));
        assert_eq!(lines[0], "END RequestId: r-1");
        assert_eq!(
            lines[1],
            "REPORT RequestId: r-1\tDuration: 3.01 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\tMax Memory Used: 36 MB\tInit Duration: 110.10 ms\t"
        );
    }

    fn failed(timed_out: bool, message: Option<&'static str>) -> FailedInit<'static> {
        FailedInit {
            phase: InitPhase::Invoke,
            request_id: "r-1",
            version: "$LATEST",
            init_ms: 10.171,
            billed_ms: 11,
            memory_mb: 128,
            max_memory_mb: 3,
            timed_out,
            error_type: "Runtime.ExitError",
            message,
        }
    }

    #[test]
    fn a_failed_init_reads_as_on_lambda() {
        let s = LogSettings::default();
        let m = "RequestId: r-1 Error: Runtime exited with error: exit status 1";
        assert_eq!(
            failed_init(&s, &failed(false, Some(m))),
            [
                "INIT_REPORT Init Duration: 10.17 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError",
                "START RequestId: r-1 Version: $LATEST",
                "RequestId: r-1 Error: Runtime exited with error: exit status 1\nRuntime.ExitError",
                "END RequestId: r-1",
                "REPORT RequestId: r-1\tDuration: 10.17 ms\tBilled Duration: 11 ms\tMemory Size: 128 MB\tMax Memory Used: 3 MB\tStatus: error\tError Type: Runtime.ExitError\t",
            ]
        );
        // The first INIT's failure is one record: the invocation goes on to a second.
        let first = FailedInit {
            phase: InitPhase::Init,
            ..failed(false, Some(m))
        };
        assert_eq!(
            failed_init(&s, &first),
            [
                "INIT_REPORT Init Duration: 10.17 ms\tPhase: init\tStatus: error\tError Type: Runtime.ExitError"
            ]
        );
        // A timeout names no error type, and a runtime's own error has no platform message.
        let lines = failed_init(&s, &failed(true, None));
        assert_eq!(
            lines[0],
            "INIT_REPORT Init Duration: 10.17 ms\tPhase: invoke\tStatus: timeout"
        );
        assert_eq!(lines.len(), 4);
        assert!(lines[3].ends_with("Max Memory Used: 3 MB\tStatus: timeout\t"));

        let mut s = LogSettings {
            json: true,
            ..LogSettings::default()
        };
        let lines = failed_init(&s, &failed(false, Some(m)));
        let v: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v.len(), 3, "{lines:?}");
        assert_eq!(v[0]["type"], "platform.initReport");
        assert_eq!(v[0]["record"]["phase"], "invoke");
        assert_eq!(v[0]["record"]["status"], "error");
        assert_eq!(v[0]["record"]["errorType"], "Runtime.ExitError");
        assert_eq!(v[0]["record"]["metrics"]["durationMs"], 10.171);
        assert_eq!(v[1]["type"], "platform.start");
        assert_eq!(v[2]["record"]["status"], "error");
        s.system_level = "WARN".into();
        assert!(failed_init(&s, &failed(false, Some(m))).is_empty());
    }

    #[test]
    fn json_writes_platform_records_that_system_log_level_filters() {
        let mut s = LogSettings {
            json: true,
            ..LogSettings::default()
        };
        let v: serde_json::Value = serde_json::from_str(&start(&s, "r-1", "3").unwrap()).unwrap();
        assert_eq!(v["type"], "platform.start");
        assert_eq!(v["record"]["version"], "3");
        let lines = end(&s, &report(Some("timeout")));
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["type"], "platform.report");
        assert_eq!(v["record"]["status"], "timeout");
        assert_eq!(v["record"]["metrics"]["maxMemoryUsedMB"], 36);
        assert_eq!(v["record"]["metrics"]["initDurationMs"], 110.1);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        s.system_level = "WARN".into();
        assert!(start(&s, "r-1", "3").is_none() && end(&s, &report(None)).is_empty());
    }
}
