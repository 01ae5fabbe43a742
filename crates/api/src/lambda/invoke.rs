//! Invoke: `POST /2015-03-31/functions/{name}/invocations`, synchronously (`RequestResponse`),
//! as a permission check (`DryRun`), or asynchronously (`Event`: queued, see [`super::queue`]);
//! and the legacy `InvokeAsync`. [`run`] is the one path from a function to an outcome, for
//! synchronous callers and asynchronous attempts alike.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lamina_model::{ErrorKind, LambdaError, Qualifier, State as FnState};
use lamina_runtime_api::{Failure, FunctionRuntime, Invocation, Invoked};

use lamina_store::{FunctionKey, FunctionRecord};

use super::query::Query;
use super::{ApiError, ApiResult, AppState, Caller, arn, function_not_found};
use crate::prometheus::function_labels;

/// The largest synchronous request payload (6 MiB).
pub const MAX_SYNC_PAYLOAD: usize = 6_291_456;
/// The largest `X-Amz-Client-Context` (base64).
const MAX_CLIENT_CONTEXT: usize = 3583;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// What a streamed response may send before its bytes are billed (6 MiB).
const UNBILLED_STREAM: u64 = 6 * 1024 * 1024;

/// The largest asynchronous event (`InvocationType: Event`).
pub const MAX_EVENT_PAYLOAD: usize = 1_048_576;
/// The largest event of the legacy `InvokeAsync`.
pub const MAX_INVOKE_ASYNC_PAYLOAD: usize = 262_144;

/// `POST /2015-03-31/functions/{name}/invocations`.
pub async fn invoke(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let (key, qualifier) =
        super::resolve_invoke(&state, &caller, &name, q.get("Qualifier"), "InvokeFunction").await?;
    let invocation_type = header(&headers, "x-amz-invocation-type").unwrap_or("RequestResponse");
    let limit = match invocation_type {
        "RequestResponse" | "DryRun" => MAX_SYNC_PAYLOAD,
        "Event" => MAX_EVENT_PAYLOAD,
        other => {
            return Err(LambdaError::validation(
                other,
                "invocationType",
                "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            )
            .into());
        }
    };
    let tail = log_tail(&headers)?;
    check_payload(&body, limit, "InvokeFunction")?;
    if invocation_type == "Event" {
        // The client context is not passed on asynchronous invocations, as on Lambda. Boxed,
        // as the other rare branches: inline, each would size every Invoke's future.
        return Box::pin(enqueue(
            &state,
            key,
            qualifier,
            body,
            caller.invocation_hops(),
        ))
        .await;
    }
    let client_context = client_context(&headers)?;
    if invocation_type == "DryRun" {
        // Boxed, as the enqueue above.
        active(
            Box::pin(super::hot::record(&state, &key, qualifier.as_ref(), false))
                .await?
                .as_ref(),
        )?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let request_id = new_request_id();
    let ran = run(
        &state,
        &key,
        qualifier.as_ref(),
        Call {
            request_id: request_id.clone(),
            usage_key: request_id.clone(),
            payload: body,
            client_context,
            asynchronous: false,
            // The log tail ends with the REPORT line.
            await_end: tail,
            stream: false,
            hops: caller.invocation_hops(),
        },
    )
    .await?;
    let (outcome, log) = answer_of(ran.result, &key, qualifier.as_ref())?;
    let mut resp = Response::new(Body::from(outcome.body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_str(&outcome.content_type)
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    h.insert(
        "x-amz-executed-version",
        HeaderValue::from_str(&ran.rec.version).unwrap_or(HeaderValue::from_static("$LATEST")),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if outcome.function_error {
        h.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if tail
        && let Ok(v) = HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(log))
    {
        h.insert("x-amz-log-result", v);
    }
    Ok(resp)
}

/// `X-Amz-Log-Type`: whether the caller wants the log tail.
pub(crate) fn log_tail(headers: &HeaderMap) -> ApiResult<bool> {
    match header(headers, "x-amz-log-type").unwrap_or("None") {
        "None" => Ok(false),
        "Tail" => Ok(true),
        other => Err(LambdaError::validation(
            other,
            "logType",
            "Member must satisfy enum value set: [Tail, None]",
        )
        .into()),
    }
}

/// `X-Amz-Client-Context`, decoded: the JSON the runtime is handed.
pub(crate) fn client_context(headers: &HeaderMap) -> ApiResult<Option<String>> {
    Ok(match header(headers, "x-amz-client-context") {
        None => None,
        Some(cc) if cc.len() > MAX_CLIENT_CONTEXT => {
            return Err(LambdaError::invalid_parameter(format!(
                "Client context must be at most {MAX_CLIENT_CONTEXT} bytes of base64."
            ))
            .into());
        }
        Some(cc) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cc)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok())
                .ok_or_else(|| {
                    LambdaError::invalid_parameter(
                        "Client context must be a valid Base64-encoded JSON object.",
                    )
                })?;
            // The runtime gets it in a header, where line breaks cannot go: written compactly,
            // they are gone (and those inside strings escaped).
            if decoded.bytes().any(|b| b < 0x20 && b != b'\t') {
                serde_json::from_str::<serde_json::Value>(&decoded)
                    .map(|v| v.to_string())
                    .ok()
            } else {
                Some(decoded)
            }
        }
    })
}

/// A synchronous run's outcome and log tail, or the error its caller gets.
pub(crate) fn answer_of(
    result: Result<Done, Failure>,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
) -> ApiResult<(lamina_runtime_api::Outcome, String)> {
    match result {
        Ok(done) => Ok((done.outcome, done.tail)),
        Err(Failure::Function(mut outcome)) => {
            let log = outcome
                .init_failure
                .as_mut()
                .map(|i| std::mem::take(&mut i.tail))
                .unwrap_or_default();
            Ok((outcome, log))
        }
        Err(Failure::Unavailable(why)) => {
            Err(LambdaError::service(format!("This server cannot run functions: {why}")).into())
        }
        Err(Failure::Throttled(t)) => Err(ApiError {
            error: LambdaError::new(lamina_model::ErrorKind::TooManyRequests, "Rate Exceeded."),
            reason: Some(t.reason()),
        }),
        Err(Failure::Gone) => Err(function_not_found(key, qualifier)),
        Err(Failure::Interrupted) => Err(LambdaError::service(
            "The server stopped during the invocation; send it again.",
        )
        .into()),
        Err(Failure::Internal(why)) => {
            tracing::error!(function = %key.name, error = %why, "invocation failed inside the platform");
            Err(LambdaError::service("An internal error occurred while running the function. The server log has the details.").into())
        }
    }
}

/// `POST /2014-11-13/functions/{name}/invoke-async`: the legacy asynchronous invoke.
pub async fn invoke_async(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (key, qualifier) =
        super::resolve_invoke(&state, &caller, &name, None, "InvokeAsync").await?;
    check_payload(&body, MAX_INVOKE_ASYNC_PAYLOAD, "InvokeAsync")?;
    let mut resp = enqueue(&state, key, qualifier, body, caller.invocation_hops()).await?;
    *resp.body_mut() = Body::from(r#"{"Status":202}"#);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// The payload's size and JSON.
pub(crate) fn check_payload(body: &Bytes, limit: usize, operation: &str) -> ApiResult<()> {
    if body.len() > limit {
        return Err(LambdaError::too_large(format!(
            "Request must be smaller than {limit} bytes for the {operation} operation"
        ))
        .into());
    }
    if !body.iter().all(u8::is_ascii_whitespace)
        && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body)
    {
        return Err(LambdaError::new(
            ErrorKind::InvalidRequestContent,
            format!("Could not parse request body into json: {e}"),
        )
        .into());
    }
    Ok(())
}

/// Queues an event for a function that exists, and answers `202` once it is durable.
async fn enqueue(
    state: &Arc<AppState>,
    key: FunctionKey,
    qualifier: Option<Qualifier>,
    body: Bytes,
    hops: u32,
) -> ApiResult<Response> {
    // The function (and the alias or version) must exist now; aliases route per attempt.
    super::hot::record(state, &key, qualifier.as_ref(), false).await?;
    let request_id = new_request_id();
    state
        .queue
        .accept(lamina_store::NewEvent {
            request_id: request_id.clone(),
            function: key.clone(),
            qualifier: qualifier.as_ref().map(ToString::to_string),
            payload: body.to_vec(),
            received_ms: lamina_model::now_millis(),
            hops,
        })
        .await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

pub(crate) fn active(rec: &FunctionRecord) -> ApiResult<()> {
    if rec.state != FnState::Active {
        return Err(LambdaError::conflict(format!(
            "The operation cannot be performed at this time. The function is currently in the following state: {}",
            rec.state.as_str()
        ))
        .into());
    }
    Ok(())
}

/// One run of a function, for a synchronous caller or an asynchronous attempt.
pub(crate) struct Ran {
    /// The version that ran.
    pub rec: Arc<FunctionRecord>,
    pub result: Result<Done, Failure>,
    /// An asynchronous attempt's usage, if the function ran (or tried to), to store with the
    /// event's next state. A synchronous invocation's goes to the usage sink from [`run`].
    pub usage: Option<lamina_store::UsageRecord>,
}

/// A function's answer.
pub(crate) struct Done {
    pub outcome: lamina_runtime_api::Outcome,
    /// The invocation's log tail, if the call asked to wait for the end ([`Call::await_end`]).
    pub tail: String,
    /// A streamed response's end, when the call asked to wait for it: its log tail, once the
    /// stream is read.
    pub later: Option<tokio::task::JoinHandle<(Option<lamina_store::UsageRecord>, String)>>,
}

/// A new request id. Time-ordered (UUID version 7, the same 36-character form as Lambda's), so
/// the usage records keyed by it are appended to their index instead of landing on a random page
/// of it: with random ids, each batch of records rewrote a page per record, and the usage writer
/// spent most of its time copying pages into the write-ahead log.
pub(crate) fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One invocation to run.
pub(crate) struct Call {
    pub request_id: String,
    /// The key of its usage record: an attempt run twice is billed once.
    pub usage_key: String,
    pub payload: Bytes,
    pub client_context: Option<String>,
    /// An attempt of an asynchronous event.
    pub asynchronous: bool,
    /// The caller needs the invocation's end (its log tail, or an attempt's usage): [`run`]
    /// returns after it. Otherwise it returns with the function's answer, and the invocation
    /// is accounted for (metrics, usage) by the invocation's own task when its runtime asks for
    /// the next event. For a streamed response, it returns at once all the same, with the end
    /// to wait for ([`Done::later`]) once the stream is read.
    pub await_end: bool,
    /// The caller reads a streamed response as it comes.
    pub stream: bool,
    /// See [`lamina_runtime_api::Invocation::hops`].
    pub hops: u32,
}

/// Runs an invocation of `key` (at `qualifier`), counting it in the metrics.
pub(crate) async fn run(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
    call: Call,
) -> ApiResult<Ran> {
    let Call {
        request_id,
        mut usage_key,
        payload,
        client_context,
        asynchronous,
        await_end,
        stream,
        hops,
    } = call;
    let started = std::time::Instant::now();
    // An invoke sees the function as it was read, or a clean 404: if its code went away between
    // reading and starting an environment (a concurrent update or delete), it reads again once.
    let mut fresh = false;
    let mut ending: Option<Ending> = None;
    let (ending, result) = loop {
        let (rec, function, meters) = super::hot::function_of(state, key, qualifier, fresh).await?;
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload: payload.clone(),
            invoked_arn: arn(key, qualifier),
            version: rec.version.clone(),
            client_context: client_context.clone(),
            asynchronous,
            stream,
            hops,
        };
        // Counted in flight for the metric history from its first attempt to start.
        let e = match ending.take() {
            Some(e) => Ending {
                function: Arc::clone(&function),
                meters,
                rec,
                ..e
            },
            None => Ending {
                state: Arc::clone(state),
                function: Arc::clone(&function),
                meters,
                rec,
                usage_key: std::mem::take(&mut usage_key),
                asynchronous,
                started,
                in_flight: state.minutes.start(key),
            },
        };
        match state.executor.invoke(&function, invocation, e).await {
            (Err(Failure::Gone), e) if !fresh => {
                state.forget_hot(key);
                fresh = true;
                ending = Some(e);
            }
            (Err(Failure::Gone), _) => return Err(function_not_found(key, qualifier)),
            (result, e) => break (e, result),
        }
    };
    let rec = Arc::clone(&ending.rec);
    let (result, usage) = ending.settle(result, await_end).await;
    Ok(Ran { rec, result, usage })
}

/// What accounting an invocation needs once it has ended: its metrics, its usage record and its
/// minute in the metric history.
struct Ending {
    state: Arc<AppState>,
    function: Arc<FunctionRuntime>,
    meters: Arc<super::meters::Meters>,
    rec: Arc<FunctionRecord>,
    usage_key: String,
    asynchronous: bool,
    started: std::time::Instant,
    in_flight: super::minutes::InFlight,
}

impl lamina_runtime_api::Unclaimed for Ending {
    /// The caller went away before its answer: the invocation is billed and counted all the
    /// same, as on Lambda.
    async fn take(self, answer: Result<Invoked, Failure>) {
        let _ = self.settle(answer, false).await;
    }
}

impl Ending {
    /// Accounts for an invocation's answer: its metrics, its usage record, its minute in the
    /// metric history. With `await_end`, waits for its end and returns its log tail (and an
    /// attempt's usage); otherwise its end is accounted for by the invocation's own task.
    async fn settle(
        self,
        answer: Result<Invoked, Failure>,
        await_end: bool,
    ) -> (Result<Done, Failure>, Option<lamina_store::UsageRecord>) {
        match answer {
            Ok(Invoked { outcome, cold, end }) => {
                let class = outcome_class(&outcome);
                if !await_end {
                    // Accounted for by the invocation's own task when it ends.
                    end.then(move |done| {
                        self.account(class, cold, done);
                    });
                    let tail = String::new();
                    return (
                        Ok(Done {
                            outcome,
                            tail,
                            later: None,
                        }),
                        None,
                    );
                }
                // In a task of its own too: a caller that goes away while it waits does not take
                // the accounting with it.
                let later =
                    tokio::spawn(async move { self.account(class, cold, end.wait().await) });
                if outcome.stream.is_some() {
                    // The end comes after the stream, which the caller has yet to read.
                    let tail = String::new();
                    return (
                        Ok(Done {
                            outcome,
                            tail,
                            later: Some(later),
                        }),
                        None,
                    );
                }
                let (usage, tail) = later.await.unwrap_or_default();
                (
                    Ok(Done {
                        outcome,
                        tail,
                        later: None,
                    }),
                    usage,
                )
            }
            Err(Failure::Function(outcome)) => {
                // Failed before an invocation could start (INIT): the time spent is billed as
                // INIT, as the REPORT line's Billed Duration says.
                let ms = outcome
                    .init_failure
                    .as_ref()
                    .map_or_else(|| self.started.elapsed().as_secs_f64() * 1000.0, |i| i.ms);
                let usage = self.usage(outcome_class(&outcome), (0.0, Some(ms), ms.ceil() as u64));
                let sample = super::minutes::sample_of(None, false, Some(&usage));
                (Err(Failure::Function(outcome)), self.hand_on(usage, sample))
            }
            Err(e) => {
                let throttled = if let Failure::Throttled(t) = &e {
                    let f = &self.function;
                    let mut l = function_labels(&f.account, &f.region, &f.name).to_vec();
                    l.push(metrics::Label::from_static_parts("reason", t.reason()));
                    metrics::counter!("lamina_throttles_total", l).increment(1);
                    true
                } else {
                    false
                };
                self.in_flight
                    .finish(super::minutes::sample_of(None, throttled, None));
                (Err(e), None)
            }
        }
    }

    /// Accounts for the invocation's end; returns an asynchronous attempt's usage, and the log
    /// tail.
    fn account(
        self,
        class: &'static str,
        cold: bool,
        done: Option<lamina_runtime_api::Ended>,
    ) -> (Option<lamina_store::UsageRecord>, String) {
        let Some(done) = done else {
            // The invocation's task failed after answering: nothing is known to bill.
            return (None, String::new());
        };
        self.meters.duration().record(done.duration_ms / 1000.0);
        // A cold start whose first INIT failed has no Init Duration: its second INIT is the
        // invocation's.
        if cold {
            self.meters.cold_starts().increment(1);
        }
        if let Some(init) = done.init_ms {
            self.meters.init_duration().record(init / 1000.0);
        }
        // A stream that failed after its first bytes was answered as a success.
        let class = match done.stream_error.as_deref() {
            None => class,
            Some("Sandbox.Timedout") => "timeout",
            Some(_) => "error",
        };
        let mut usage = self.usage(class, (done.duration_ms, done.init_ms, done.billed_ms));
        usage.streamed_bytes = done.streamed_bytes.saturating_sub(UNBILLED_STREAM);
        let sample = super::minutes::sample_of(Some((cold, done.duration_ms)), false, Some(&usage));
        (self.hand_on(usage, sample), done.tail)
    }

    /// The invocation's usage record; counts it in the metrics.
    fn usage(
        &self,
        result: &'static str,
        (duration_ms, init_ms, billed_ms): (f64, Option<f64>, u64),
    ) -> lamina_store::UsageRecord {
        let f = &self.function;
        let gb_s = f.memory_mb as f64 / 1024.0 * billed_ms as f64 / 1000.0;
        self.meters.requests(result).increment(1);
        self.meters.billed_gb_s().increment(gb_s);
        lamina_store::UsageRecord {
            request_id: self.usage_key.clone(),
            account: f.account.to_string(),
            region: f.region.to_string(),
            function: f.name.clone(),
            version: f.version.to_string(),
            architecture: self.rec.spec.architecture.as_str().to_owned(),
            memory_mb: f.memory_mb,
            ephemeral_mb: f.tmp_mb,
            init_ms,
            duration_ms,
            billed_duration_ms: duration_ms.ceil() as u64,
            billed_ms,
            outcome: result.to_owned(),
            ts_ms: lamina_model::now_millis(),
            streamed_bytes: 0,
        }
    }

    /// Ends the invocation in the metric history; a synchronous invocation's usage goes to the
    /// usage sink, an attempt's back to its dispatcher.
    fn hand_on(
        self,
        usage: lamina_store::UsageRecord,
        sample: super::minutes::Sample,
    ) -> Option<lamina_store::UsageRecord> {
        self.in_flight.finish(sample);
        if self.asynchronous {
            return Some(usage);
        }
        self.state.usage.record(usage);
        None
    }
}

/// How an outcome is counted and billed: `success`, `timeout`, `init_error` or `error`. Only an
/// error's body is looked into (a response may be megabytes of JSON).
fn outcome_class(outcome: &lamina_runtime_api::Outcome) -> &'static str {
    if !outcome.function_error {
        "success"
    } else if outcome.failure_type().as_deref() == Some("Sandbox.Timedout") {
        "timeout"
    } else if outcome.init_failed() {
        "init_error"
    } else {
        "error"
    }
}
