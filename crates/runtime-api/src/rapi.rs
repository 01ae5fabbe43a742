//! The Runtime API (2018-06-01) one environment's runtime polls, served on the listener that
//! lives inside the environment's network namespace.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

/// The largest response a function may return (6 MiB + 100 bytes, as on Lambda).
pub const MAX_RESPONSE: usize = 6_291_556;

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
    current: std::sync::Mutex<Option<(String, oneshot::Sender<Reply>)>>,
    /// Counts calls to `/next`: the first ends INIT, each later one ends an invocation.
    next_calls: watch::Sender<u64>,
    /// Set when the runtime reports an init error.
    pub init_error: std::sync::Mutex<Option<(String, Bytes)>>,
    init_error_signal: watch::Sender<bool>,
}

impl Shared {
    pub fn new(inbox: mpsc::Receiver<Pending>) -> Arc<Self> {
        Arc::new(Self {
            inbox: Mutex::new(inbox),
            current: std::sync::Mutex::new(None),
            next_calls: watch::channel(0).0,
            init_error: std::sync::Mutex::new(None),
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

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_RESPONSE + 1))
        .with_state(shared)
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
    *s.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((p.request_id.clone(), p.reply));
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

fn take_current(s: &Shared, id: &str) -> Option<oneshot::Sender<Reply>> {
    let mut cur = s.current.lock().unwrap_or_else(|e| e.into_inner());
    match cur.take() {
        Some((cid, tx)) if cid == id => Some(tx),
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

async fn response(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Some(tx) = take_current(&s, &id) else {
        return invalid_id();
    };
    match body {
        Ok(body) if body.len() <= MAX_RESPONSE => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let _ = tx.send(Reply::Response { body, content_type });
            (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
        }
        _ => {
            let _ = tx.send(Reply::TooLarge);
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."),
            )
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
    body: Bytes,
) -> Response {
    let Some(tx) = take_current(&s, &id) else {
        return invalid_id();
    };
    let _ = tx.send(Reply::Error {
        body,
        error_type: error_type(&headers),
    });
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

async fn init_error(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    *s.init_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((error_type(&headers), body));
    s.init_error_signal.send_replace(true);
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}
