//! A failed INIT. As on Lambda, an invocation whose environment's INIT fails (an error, a crash,
//! or no answer within [`INIT_LIMIT`]) runs INIT once more within the invocation itself (the
//! "suppressed init"): in a fresh environment here, at the function's own CPU share, bounded by
//! the function's timeout instead, which the invocation then shares. Only when that one fails
//! too is the error the caller's. Each failure leaves an `INIT_REPORT` for its phase; the
//! second also the invocation's `START`, `END` and `REPORT`.

use std::time::Duration;

use bytes::Bytes;

use super::{Environment, INIT_LIMIT};
use crate::logs::Tap;
use crate::platform::{self, InitPhase, LogSettings};
use crate::{Executor, Failure, FunctionRuntime, InitFailure, Outcome};

/// Which INIT of an invocation an environment runs.
#[derive(Debug, Clone, Copy)]
pub(super) enum InitRun {
    /// Its own, within [`INIT_LIMIT`]; with `boost`, on up to a whole CPU.
    First { boost: bool },
    /// The second, within the invocation, after the first failed: `before_ms` is what the first
    /// took (billed with this one), `timeout` the function's.
    Again { before_ms: f64, timeout: Duration },
}

impl InitRun {
    pub(super) fn boost(self) -> bool {
        matches!(self, Self::First { boost: true })
    }

    pub(super) fn limit(self) -> Duration {
        match self {
            Self::First { .. } => INIT_LIMIT,
            Self::Again { timeout, .. } => timeout,
        }
    }

    fn phase(self) -> InitPhase {
        match self {
            Self::First { .. } => InitPhase::Init,
            Self::Again { .. } => InitPhase::Invoke,
        }
    }

    /// What INIT took before this one.
    pub(super) fn before_ms(self) -> f64 {
        match self {
            Self::First { .. } => 0.0,
            Self::Again { before_ms, .. } => before_ms,
        }
    }

    /// What is billed when this INIT fails after `ms`: every INIT of the invocation.
    fn billed_ms(self, ms: f64) -> u64 {
        (self.before_ms() + ms).ceil() as u64
    }
}

pub(super) fn exit_message(request_id: &str, code: i32) -> String {
    if code > 128 {
        let sig = code - 128;
        let name = match sig {
            9 => "killed".to_owned(),
            11 => "segmentation fault".to_owned(),
            6 => "aborted".to_owned(),
            15 => "terminated".to_owned(),
            n => format!("signal {n}"),
        };
        format!("RequestId: {request_id} Error: Runtime exited with error: signal: {name}")
    } else if code == 0 {
        format!("RequestId: {request_id} Error: Runtime exited without providing a reason")
    } else {
        format!("RequestId: {request_id} Error: Runtime exited with error: exit status {code}")
    }
}

/// The log line of an invocation that timed out, as Lambda writes it.
pub(super) fn timed_out_line(request_id: &str, secs: f64) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!("{now} {request_id} Task timed out after {secs:.2} seconds")
}

pub(super) fn failure_body(error_type: &str, message: String) -> Bytes {
    Bytes::from(serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

/// An error the platform found itself: its type, its body, and its message for the log.
fn platform_failure(error_type: &str, message: String) -> (String, Bytes, Option<String>) {
    let body = failure_body(error_type, message.clone());
    (error_type.to_owned(), body, Some(message))
}

/// Logs a failed INIT's `records` and gives the caller's error (`body`), with the lines `tap`
/// captured for the tail.
fn report(
    tap: &Tap,
    logging: &LogSettings,
    run: InitRun,
    records: &platform::FailedInit<'_>,
    body: Bytes,
) -> Failure {
    for line in platform::failed_init(logging, records) {
        tap.line(line);
    }
    let mut outcome = Outcome::error(body);
    outcome.init_failure = Some(Box::new(InitFailure {
        ms: run.before_ms() + records.init_ms,
        tail: tap.take_capture(),
    }));
    Failure::Function(outcome)
}

/// The bootstrap of `f` could not be started (missing, not executable, or not a program), or
/// one of its extensions (`why` begins with `lamina_sandbox::COMPANION_FAILED`).
pub(super) fn entrypoint_failed(
    tap: &Tap,
    f: &FunctionRuntime,
    run: InitRun,
    request_id: &str,
    ms: f64,
    why: &str,
) -> Failure {
    let (error_type, why) = match why.strip_prefix(lamina_sandbox::COMPANION_FAILED) {
        Some(why) => ("Extension.LaunchError", why),
        None => ("Runtime.InvalidEntrypoint", why),
    };
    let message = format!("RequestId: {request_id} Error: {why}");
    tap.start_capture();
    let records = platform::FailedInit {
        phase: run.phase(),
        request_id,
        version: &f.version,
        init_ms: ms,
        billed_ms: run.billed_ms(ms),
        memory_mb: f.memory_mb,
        max_memory_mb: 0,
        timed_out: false,
        error_type,
        message: Some(&message),
    };
    let body = failure_body(error_type, message.clone());
    report(tap, &f.logging, run, &records, body)
}

impl Environment {
    /// Starts an environment for an invocation. If its INIT fails, INIT runs once more within
    /// the invocation (see [`InitRun`]); the error is the second one's.
    pub async fn start_for(
        ex: &Executor,
        f: &FunctionRuntime,
        request_id: &str,
        hops: u32,
        boost: bool,
    ) -> Result<Self, Failure> {
        // One log stream for both INITs, which on Lambda run in one environment.
        let stream = super::stream_name(&f.version);
        let first = InitRun::First { boost };
        let mut first = match Self::start(ex, f, request_id, hops, first, stream.clone()).await {
            Err(Failure::Function(o)) if o.init_failed() && !ex.stopping() => o,
            started => return started,
        };
        let again = InitRun::Again {
            before_ms: first.init_failure.as_ref().map_or(0.0, |i| i.ms),
            timeout: Duration::from_secs(f.timeout_s as u64),
        };
        match Self::start(ex, f, request_id, hops, again, stream).await {
            Ok(mut env) => {
                env.failed_first = first.init_failure.take();
                Ok(env)
            }
            // The caller's tail holds both INITs.
            Err(Failure::Function(mut o)) => {
                if let (Some(a), Some(b)) = (first.init_failure.take(), o.init_failure.as_mut()) {
                    b.tail = crate::logs::tail_of(a.tail + &b.tail);
                }
                Err(Failure::Function(o))
            }
            Err(e) if ex.stopping() => Err(e),
            // No second environment to be had (the host's limits): the first INIT's error
            // stands.
            Err(_) => Err(Failure::Function(first)),
        }
    }

    /// Ends an environment whose INIT failed (`ms` after it started) and gives the error.
    pub(super) async fn init_failed(mut self, run: InitRun, request_id: &str, ms: f64) -> Failure {
        let posted = self
            .shared
            .init_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let timed_out = self.exit.borrow().is_none() && posted.is_none();
        // Give a crashing runtime a moment to be reaped, for its exit status.
        if posted.is_none() && !timed_out {
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                self.exit.wait_for(|e| e.is_some()),
            )
            .await;
        }
        let code = *self.exit.borrow();
        let oom = self.oom_killed();
        let (error_type, body, message) = match (posted, code) {
            (Some((header, body)), _) => {
                let t = Outcome::error_type_in(&body).unwrap_or(header);
                (t, body, None)
            }
            (None, _) if oom => platform_failure(
                "Runtime.OutOfMemory",
                format!("RequestId: {request_id} Error: Runtime exited with error: signal: killed"),
            ),
            (None, Some(code)) => {
                platform_failure("Runtime.ExitError", exit_message(request_id, code))
            }
            (None, None) => {
                let secs = run.limit().as_secs_f64();
                let message = match run {
                    InitRun::First { .. } => format!(
                        "RequestId: {request_id} Error: INIT phase did not finish within {secs:.2} seconds"
                    ),
                    InitRun::Again { .. } => {
                        format!(
                            "RequestId: {request_id} Error: Task timed out after {secs:.2} seconds"
                        )
                    }
                };
                platform_failure("Sandbox.Timedout", message)
            }
        };
        let max_memory_mb = if oom {
            self.memory_mb as u64
        } else {
            self.peak
                .as_mut()
                .and_then(|m| m.finish(self.kernel.as_ref()).ok())
                .map_or(0, |bytes| bytes.div_ceil(1024 * 1024))
        };
        self.tap.drain().await;
        // A runtime that exited closed its output: its last line, if it had no newline, is
        // logged at the pipe's end (a child it left behind may hold the pipe open, hence the
        // bound).
        if code.is_some() {
            self.tap.closed(Duration::from_millis(50)).await;
        }
        let records = platform::FailedInit {
            phase: run.phase(),
            request_id,
            version: &self.version,
            init_ms: ms,
            billed_ms: run.billed_ms(ms),
            memory_mb: self.memory_mb,
            max_memory_mb,
            timed_out,
            error_type: &error_type,
            message: message.as_deref(),
        };
        let failure = report(&self.tap, &self.logging, run, &records, body);
        self.destroy().await;
        failure
    }
}
