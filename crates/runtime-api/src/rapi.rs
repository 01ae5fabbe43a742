//! The Runtime API (2018-06-01) one environment's runtime polls, served on the listener that
//! lives inside the environment's network namespace.
//!
//! The runtime is untrusted, and this server runs in Lamina's own process, outside the function's
//! cgroup: everything it can make the server hold is bounded. At most [`MAX_CONNECTIONS`]
//! connections are served at once (more are closed as soon as they are accepted); a request head
//! must arrive within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`]; a body is read only for the
//! invocation in flight, streamed against its limit and its deadline, so a request for any other
//! id is refused before a byte of its body is read.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The largest response a function may return (6 MiB + 100 bytes, as on Lambda).
pub const MAX_RESPONSE: usize = 6_291_556;
/// Connections one environment's runtime may hold open at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a connection may take to send a request head (and may sit idle between requests).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The read buffer of a connection: request heads must fit.
const MAX_HEAD: usize = 64 * 1024;

/// An invocation waiting for the runtime.
#[derive(Debug)]
pub struct Pending {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: i64,
    pub invoked_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub reply: oneshot::Sender<Reply>,
}

/// What the runtime said about an invocation.
#[derive(Debug)]
pub enum Reply {
    Response { body: Bytes, content_type: String },
    Error { body: Bytes, error_type: String },
    TooLarge,
}

/// State shared between the environment and its Runtime API server.
#[derive(Debug)]
pub struct Shared {
    inbox: Mutex<mpsc::Receiver<Pending>>,
    /// The invocation in flight: its id, where its answer goes, and its deadline (epoch ms).
    current: std::sync::Mutex<Option<(String, oneshot::Sender<Reply>, i64)>>,
    /// Counts calls to `/next`: the first ends INIT, each later one ends an invocation.
    next_calls: watch::Sender<u64>,
    /// Set when the runtime reports an init error.
    pub init_error: std::sync::Mutex<Option<(String, Bytes)>>,
    /// Taken by the first `/init/error` request, before its body is read: only one is ever read.
    init_error_claimed: std::sync::atomic::AtomicBool,
    init_error_signal: watch::Sender<bool>,
}

impl Shared {
    pub fn new(inbox: mpsc::Receiver<Pending>) -> Arc<Self> {
        Arc::new(Self {
            inbox: Mutex::new(inbox),
            current: std::sync::Mutex::new(None),
            next_calls: watch::channel(0).0,
            init_error: std::sync::Mutex::new(None),
            init_error_claimed: std::sync::atomic::AtomicBool::new(false),
            init_error_signal: watch::channel(false).0,
        })
    }
    pub fn next_calls(&self) -> watch::Receiver<u64> {
        self.next_calls.subscribe()
    }
    pub fn init_errors(&self) -> watch::Receiver<bool> {
        self.init_error_signal.subscribe()
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(shared)
}

/// Serves the Runtime API on `listener` until the returned task is aborted.
pub fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    let router = router(shared);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of descriptors or similar: back off rather than spin.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
                Some(_) = connections.join_next() => continue,
            };
            // Beyond the limit, a connection is closed at once: the runtime needs one or two.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
            connections.spawn(async move {
                let _slot = slot;
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Some(HEAD_TIMEOUT))
                    .max_buf_size(MAX_HEAD)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    })
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errorType": error_type, "errorMessage": message })),
    )
        .into_response()
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.next_calls.send_modify(|n| *n += 1);
    let mut inbox = s.inbox.lock().await;
    let Some(p) = inbox.recv().await else {
        return runtime_error(
            StatusCode::GONE,
            "Runtime.Shutdown",
            "the environment is shutting down",
        );
    };
    drop(inbox);
    *s.current.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((p.request_id.clone(), p.reply, p.deadline_ms));
    let mut resp = Response::new(Body::from(p.payload));
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value)
            && !value.is_empty()
        {
            h.insert(name, v);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &p.request_id);
    set("lambda-runtime-deadline-ms", &p.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &p.invoked_arn);
    set("lambda-runtime-trace-id", &p.trace_id);
    if let Some(cc) = &p.client_context {
        set("lambda-runtime-client-context", cc);
    }
    if let Some(ci) = &p.cognito_identity {
        set("lambda-runtime-cognito-identity", ci);
    }
    resp
}

fn take_current(s: &Shared, id: &str) -> Option<(oneshot::Sender<Reply>, i64)> {
    let mut cur = s.current.lock().unwrap_or_else(|e| e.into_inner());
    match cur.take() {
        Some((cid, tx, deadline)) if cid == id => Some((tx, deadline)),
        other => {
            *cur = other;
            None
        }
    }
}

fn invalid_id() -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

fn too_large() -> Response {
    runtime_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."),
    )
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    /// The connection failed or the deadline passed first.
    Broken,
}

/// Reads a body of at most [`MAX_RESPONSE`] bytes before `deadline_ms`.
async fn read_body(headers: &HeaderMap, body: Body, deadline_ms: i64) -> Result<Bytes, BodyError> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESPONSE as u64) {
        return Err(BodyError::TooLarge);
    }
    let left = (deadline_ms - lamina_model::now_millis()).max(0) as u64;
    match tokio::time::timeout(
        Duration::from_millis(left),
        axum::body::to_bytes(body, MAX_RESPONSE),
    )
    .await
    {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) if is_length_limit(&e) => Err(BodyError::TooLarge),
        _ => Err(BodyError::Broken),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit exceeded") {
            return true;
        }
        source = s.source();
    }
    false
}

async fn response(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((tx, deadline)) = take_current(&s, &id) else {
        return invalid_id();
    };
    match read_body(&headers, body, deadline).await {
        Ok(body) => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let _ = tx.send(Reply::Response { body, content_type });
            (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
        }
        Err(BodyError::TooLarge) => {
            let _ = tx.send(Reply::TooLarge);
            too_large()
        }
        Err(BodyError::Broken) => {
            drop(tx);
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_owned()
}

async fn error(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((tx, deadline)) = take_current(&s, &id) else {
        return invalid_id();
    };
    match read_body(&headers, body, deadline).await {
        Ok(body) => {
            let _ = tx.send(Reply::Error {
                body,
                error_type: error_type(&headers),
            });
            (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
        }
        Err(BodyError::TooLarge) => {
            let _ = tx.send(Reply::TooLarge);
            too_large()
        }
        Err(BodyError::Broken) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn init_error(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    // Only during INIT, and only once: the claim is taken before a byte of the body is read.
    if *s.next_calls.borrow() > 0
        || s.init_error_claimed
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return runtime_error(
            StatusCode::FORBIDDEN,
            "Runtime.InvalidStateTransition",
            "init/error is only accepted once, during INIT",
        );
    }
    let deadline = lamina_model::now_millis() + crate::env::INIT_LIMIT.as_millis() as i64;
    let body = match read_body(&headers, body, deadline).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Broken) => return StatusCode::BAD_REQUEST.into_response(),
    };
    *s.init_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((error_type(&headers), body));
    s.init_error_signal.send_replace(true);
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}
