//! InvokeWithResponseStream: `POST /2021-11-15/functions/{name}/response-streaming-invocations`.
//! The answer is an AWS event stream: the function's bytes in `PayloadChunk` events as its
//! runtime streams them, then one `InvokeComplete` (its `ErrorCode` and `ErrorDetails` if the
//! invocation failed, its `LogResult` if the caller asked for the log tail). A function whose
//! runtime answers buffered gives its response as one chunk.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt as _;
use lamina_model::LambdaError;
use lamina_runtime_api::{Outcome, ResponseStream};

use super::invoke::{self, Call, MAX_SYNC_PAYLOAD};
use super::query::Query;
use super::{ApiResult, AppState, Caller};
use crate::eventstream;

/// The log tail of an invocation whose caller asked for it, once its stream is read.
type Later = tokio::task::JoinHandle<(Option<lamina_store::UsageRecord>, String)>;

/// The handler.
pub async fn invoke_with_response_stream(
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
    let dry_run = match headers
        .get("x-amz-invocation-type")
        .map(|v| v.to_str().unwrap_or(""))
        .unwrap_or("RequestResponse")
    {
        "RequestResponse" => false,
        "DryRun" => true,
        other => {
            return Err(LambdaError::validation(
                other,
                "invocationType",
                "Member must satisfy enum value set: [RequestResponse, DryRun]",
            )
            .into());
        }
    };
    let tail = invoke::log_tail(&headers)?;
    invoke::check_payload(&body, MAX_SYNC_PAYLOAD, "InvokeWithResponseStream")?;
    let client_context = invoke::client_context(&headers)?;
    if dry_run {
        let rec = super::hot::record(&state, &key, qualifier.as_ref(), false).await?;
        invoke::active(rec.as_ref())?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let request_id = invoke::new_request_id();
    let ran = invoke::run(
        &state,
        &key,
        qualifier.as_ref(),
        Call {
            request_id: request_id.clone(),
            usage_key: request_id.clone(),
            payload: body,
            client_context,
            asynchronous: false,
            await_end: tail,
            stream: true,
            hops: caller.invocation_hops(),
        },
    )
    .await?;
    let version = ran.rec.version.clone();
    let (outcome, log, later) = match ran.result {
        Ok(done) => (done.outcome, done.tail, done.later),
        Err(e) => {
            let (outcome, log) = invoke::answer_of(Err(e), &key, qualifier.as_ref())?;
            (outcome, log, None)
        }
    };
    let events = events(outcome, tail.then_some((log, later)));
    let mut resp = Response::new(Body::from_stream(
        events.map(Ok::<_, std::convert::Infallible>),
    ));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    h.insert(
        "x-amz-executed-version",
        HeaderValue::from_str(&version).unwrap_or(HeaderValue::from_static("$LATEST")),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

/// A `PayloadChunk` event.
fn chunk(payload: &[u8]) -> Bytes {
    eventstream::frame(
        &[
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// The `InvokeComplete` event.
fn complete(error: Option<(String, String)>, log: Option<String>) -> Bytes {
    let mut v = serde_json::Map::new();
    if let Some((code, details)) = error {
        v.insert("ErrorCode".into(), code.into());
        v.insert("ErrorDetails".into(), details.into());
    }
    if let Some(log) = log {
        let encoded = base64::engine::general_purpose::STANDARD.encode(log);
        v.insert("LogResult".into(), encoded.into());
    }
    eventstream::frame(
        &[
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        serde_json::Value::Object(v).to_string().as_bytes(),
    )
}

/// Where the events are.
enum Step {
    /// A buffered outcome: its one chunk, then the end.
    Buffered(Outcome),
    Streaming(ResponseStream),
    /// A buffered outcome's end, after its chunk.
    End,
    Done,
}

/// The events of an outcome: its bytes, then its end; with `tail`, the end waits for the
/// invocation's log tail.
fn events(
    mut outcome: Outcome,
    tail: Option<(String, Option<Later>)>,
) -> impl futures_util::Stream<Item = Bytes> + Send {
    let step = match outcome.stream.take() {
        Some(s) => Step::Streaming(*s),
        None => Step::Buffered(outcome),
    };
    futures_util::stream::unfold((step, tail), |(step, tail)| async move {
        match step {
            Step::Buffered(o) if o.function_error => {
                let code = o.failure_type().unwrap_or_else(|| "Unhandled".to_owned());
                // The error's message, as for an error at the end of a stream.
                let details = serde_json::from_slice::<serde_json::Value>(&o.body)
                    .ok()
                    .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(&o.body).into_owned());
                let end = complete(Some((code, details)), log_of(tail).await);
                Some((end, (Step::Done, None)))
            }
            Step::Buffered(o) if o.body.is_empty() => {
                Some((complete(None, log_of(tail).await), (Step::Done, None)))
            }
            Step::Buffered(o) => Some((chunk(&o.body), (Step::End, tail))),
            Step::Streaming(mut s) => match s.next().await {
                Some(bytes) => Some((chunk(&bytes), (Step::Streaming(s), tail))),
                None => {
                    let error = s.end().await.error.map(|e| (e.error_type, e.message));
                    Some((complete(error, log_of(tail).await), (Step::Done, None)))
                }
            },
            Step::End => Some((complete(None, log_of(tail).await), (Step::Done, None))),
            Step::Done => None,
        }
    })
}

/// The log tail, once the invocation has ended, if the caller asked for it.
async fn log_of(tail: Option<(String, Option<Later>)>) -> Option<String> {
    let (log, later) = tail?;
    match later {
        Some(later) => Some(later.await.map(|(_, log)| log).unwrap_or_default()),
        None => Some(log),
    }
}
