//! The Runtime API (2018-06-01) one environment's runtime polls, served on the listener that
//! lives inside the environment's network namespace.
//!
//! Four routes, matched by hand on hyper: a general router would cost every invocation its path
//! matching, its extractors and a boxed body each way, for no route of its own.
//!
//! The runtime is untrusted, and this server runs in Lamina's own process, outside the function's
//! cgroup: everything it can make the server hold is bounded. At most [`MAX_CONNECTIONS`]
//! connections are served at once (more are closed as soon as they are accepted); a request head
//! must fit in [`MAX_HEAD`], so the connections hold at most their heads' buffers; a body is read only for the
//! invocation in flight, streamed against its limit and its deadline, so a request for any other
//! id is refused before a byte of its body is read.
//!
//! A request on any other path that carries a SigV4 `Authorization` header is the function's
//! call to Lamina's own APIs, handed to the server's gateway through the environment's [`Door`]:
//! at most 8 at once, each body read up to 16 MiB, and the server's handlers' work, outside the
//! function's cgroup ([`crate::apis`]). The Extensions API's paths go to [`crate::extensions`];
//! the Telemetry and Logs APIs' to [`crate::telemetry`]; other paths get a `404`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use tokio::sync::{Notify, Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use crate::apis::{ApiBody, Door};
use crate::stream::{Read, ResponseStream, StreamEnd, StreamError};

/// The largest response a function may return (6 MiB + 100 bytes, as on Lambda).
pub const MAX_RESPONSE: usize = 6_291_556;
/// Connections one environment's runtime may hold open at once.
pub const MAX_CONNECTIONS: usize = 32;
/// The read buffer of a connection: request heads must fit.
const MAX_HEAD: usize = 64 * 1024;
/// The path a runtime asks for its next event on.
const NEXT: &str = "/2018-06-01/runtime/invocation/next";
/// Where the Runtime API's paths begin; every other path is Lamina's APIs'.
const RUNTIME: &str = "/2018-06-01/runtime/";

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
    /// The caller reads a streamed response as it comes ([`Reply::Stream`]); otherwise a
    /// streamed response is gathered as a buffered one.
    pub stream: bool,
    /// See [`crate::Invocation::hops`].
    pub hops: u32,
    pub reply: oneshot::Sender<Reply>,
}

/// What the runtime said about an invocation.
#[derive(Debug)]
pub enum Reply {
    Response {
        body: Bytes,
        content_type: String,
    },
    Error {
        body: Bytes,
        error_type: String,
    },
    TooLarge,
    /// A streamed response, for a caller that reads it as it comes.
    Stream(ResponseStream),
}

/// State shared between the environment and its Runtime API server.
#[derive(Debug)]
pub struct Shared {
    /// The invocation handed over for the runtime's next `/next`.
    inbox: std::sync::Mutex<Handed>,
    handed: Notify,
    /// The invocation in flight.
    current: std::sync::Mutex<Option<Current>>,
    /// Counts calls to `/next`: the first ends INIT, each later one ends an invocation.
    next_calls: watch::Sender<u64>,
    /// Set when the runtime reports an init error.
    pub init_error: std::sync::Mutex<Option<(String, Bytes)>>,
    /// Taken by the first `/init/error` request, before its body is read: only one is ever read.
    init_error_claimed: AtomicBool,
    init_error_signal: watch::Sender<bool>,
    /// How the last stream ended, until the environment takes it ([`Shared::take_stream_end`]).
    stream_end: std::sync::Mutex<Option<StreamEnd>>,
    /// Whether a stream is being read: its invocation has not ended until it is.
    stream_open: watch::Sender<bool>,
    /// The hops of the invocation last handed to the runtime, which the function's calls to
    /// Lamina's APIs carry on, from a thread that outlives its invocation too.
    hops: std::sync::atomic::AtomicU32,
    /// The environment's extensions.
    pub(crate) extensions: crate::extensions::Extensions,
    /// Their subscriptions to its records.
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
}

/// The invocation in flight: its id, where its answer goes, its deadline (epoch ms), and whether
/// its caller reads a stream.
#[derive(Debug)]
struct Current {
    id: String,
    reply: oneshot::Sender<Reply>,
    deadline_ms: i64,
    stream: bool,
}

/// What waits for the runtime's `/next`: one invocation at a time, held in place rather than in
/// a channel, whose first block would hold room for 32 of them as long as the environment lives.
#[derive(Debug)]
enum Handed {
    Nothing,
    Invocation(Pending),
    /// The environment's end is gone: no invocation will come.
    Closed,
}

/// The environment's end of the hand-over; dropping it tells a waiting `/next` that nothing
/// will come.
#[derive(Debug)]
pub struct Outbox(Arc<Shared>);

impl Outbox {
    /// Hands the runtime an invocation; false (and the invocation dropped) while another
    /// still waits to be taken. The environment hands over one only once the runtime has taken
    /// the last one (it asked for the next), so that never happens but to a broken environment.
    #[must_use]
    pub fn send(&self, p: Pending) -> bool {
        {
            let mut slot = self.0.inbox.lock().unwrap_or_else(|e| e.into_inner());
            if !matches!(*slot, Handed::Nothing) {
                return false;
            }
            *slot = Handed::Invocation(p);
        }
        self.0.handed.notify_one();
        true
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        *self.0.inbox.lock().unwrap_or_else(|e| e.into_inner()) = Handed::Closed;
        self.0.handed.notify_waiters();
    }
}

impl Shared {
    /// The state, and the environment's end of the hand-over to `/next`.
    pub fn new() -> (Arc<Self>, Outbox) {
        let shared = Arc::new(Self {
            inbox: std::sync::Mutex::new(Handed::Nothing),
            handed: Notify::new(),
            current: std::sync::Mutex::new(None),
            next_calls: watch::channel(0).0,
            init_error: std::sync::Mutex::new(None),
            init_error_claimed: AtomicBool::new(false),
            init_error_signal: watch::channel(false).0,
            stream_end: std::sync::Mutex::new(None),
            stream_open: watch::channel(false).0,
            hops: std::sync::atomic::AtomicU32::new(0),
            extensions: crate::extensions::Extensions::new(),
            telemetry: Arc::new(crate::telemetry::Telemetry::new()),
        });
        (shared.clone(), Outbox(shared))
    }
    /// Fails INIT with `error_type` and `body` (an extension's report, during INIT): false if an
    /// error was reported already.
    pub(crate) fn fail_init(&self, error_type: &str, body: Bytes) -> bool {
        if self.init_error_claimed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.keep_init_error(error_type.to_owned(), body);
        true
    }

    /// Keeps the error INIT failed with, once claimed, and tells the environment.
    fn keep_init_error(&self, error_type: String, body: Bytes) {
        *self.init_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((error_type, body));
        self.init_error_signal.send_replace(true);
    }

    /// The hops the function's calls to Lamina's APIs carry on from now ([`crate::apis`]).
    pub(crate) fn carry_hops(&self, hops: u32) {
        self.hops.store(hops, Ordering::Relaxed);
    }
    pub fn next_calls(&self) -> watch::Receiver<u64> {
        self.next_calls.subscribe()
    }
    pub fn init_errors(&self) -> watch::Receiver<bool> {
        self.init_error_signal.subscribe()
    }
    /// Whether a stream is being read, and tells when that changes.
    pub fn stream_open(&self) -> watch::Receiver<bool> {
        self.stream_open.subscribe()
    }
    pub fn stream_is_open(&self) -> bool {
        *self.stream_open.borrow()
    }
    /// How the last stream ended (its bytes, its error); taken at its invocation's end.
    pub fn take_stream_end(&self) -> Option<StreamEnd> {
        self.stream_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

type Response = hyper::Response<Full<Bytes>>;

/// What one environment's listener serves: its Runtime API, and its door to Lamina's APIs.
struct Served {
    shared: Arc<Shared>,
    door: Door,
}

/// Serves the Runtime API on `listener`, and Lamina's APIs through `door`, until the returned
/// task is aborted.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    door: Door,
) -> JoinHandle<()> {
    let served = Arc::new(Served { shared, door });
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
            let served = served.clone();
            // The connection's own descriptor, open while any of its requests is served.
            let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
            let service = hyper::service::service_fn(move |req| dispatch(served.clone(), req, fd));
            connections.spawn(async move {
                let _slot = slot;
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    // None, as Lambda's: a kept-alive connection sits idle through an invocation
                    // of up to 15 minutes, or an environment frozen for longer, and a runtime
                    // client that finds it closed may lose its answer. A slow head holds no more
                    // than its buffer, within the connections' bound.
                    .header_read_timeout(None)
                    .max_buf_size(MAX_HEAD)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    })
}

/// Sends one request to the Runtime API or through the door.
async fn dispatch(
    s: Arc<Served>,
    req: Request<Incoming>,
    conn: std::os::fd::RawFd,
) -> Result<hyper::Response<Either<Full<Bytes>, ApiBody>>, Infallible> {
    Ok(if req.uri().path().starts_with(RUNTIME) {
        route(&s.shared, req).await.map(Either::Left)
    } else if req.uri().path().starts_with(crate::extensions::PREFIX) {
        crate::extensions::route(&s.shared, req)
            .await
            .map(Either::Left)
    } else if matches!(
        req.uri().path(),
        crate::telemetry::TELEMETRY | crate::telemetry::LOGS
    ) {
        crate::telemetry::route(&s.shared, req, conn)
            .await
            .map(Either::Left)
    } else if req.headers().contains_key(hyper::header::AUTHORIZATION) {
        let hops = s.shared.hops.load(Ordering::Relaxed);
        s.door.serve(req, hops).await.map(Either::Right)
    } else {
        status(StatusCode::NOT_FOUND).map(Either::Left)
    })
}

/// Dispatches one request of the Runtime API's to its route.
async fn route(s: &Arc<Shared>, req: Request<Incoming>) -> Response {
    // `/next` waits for as long as the environment is idle: the request goes first, since its
    // head shares its buffer with the connection's reads, which would otherwise take another.
    if req.method() == Method::GET && req.uri().path() == NEXT {
        drop(req);
        return next(s).await;
    }
    let (parts, body) = req.into_parts();
    let Some(rest) = parts.uri.path().strip_prefix(RUNTIME) else {
        return status(StatusCode::NOT_FOUND);
    };
    // `invocation/{id}/response` or `invocation/{id}/error`: the id and whether it failed.
    let report = rest
        .strip_prefix("invocation/")
        .and_then(|r| r.rsplit_once('/'))
        .filter(|(_, what)| matches!(*what, "response" | "error"))
        .map(|(id, what)| (id, what == "error"));
    let post = parts.method == Method::POST;
    match (rest, report) {
        // A GET was served above.
        ("invocation/next", _) => not_allowed("GET"),
        ("init/error", _) | (_, Some(_)) if !post => not_allowed("POST"),
        ("init/error", _) => init_error(s, &parts.headers, body).await,
        (_, Some((id, failed))) => answer(s, id, failed, &parts.headers, body).await,
        _ => status(StatusCode::NOT_FOUND),
    }
}

pub(crate) fn status(code: StatusCode) -> Response {
    let mut r = Response::new(Full::default());
    *r.status_mut() = code;
    r
}

/// `405`, with the one method the route takes.
pub(crate) fn not_allowed(method: &'static str) -> Response {
    let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(method));
    r
}

fn json(code: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `202 {"status":"OK"}`, the answer to every accepted report.
pub(crate) fn accepted() -> Response {
    json(
        StatusCode::ACCEPTED,
        Bytes::from_static(br#"{"status":"OK"}"#),
    )
}

pub(crate) fn runtime_error(code: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    json(code, Bytes::from(body.to_string()))
}

async fn next(s: &Shared) -> Response {
    s.next_calls.send_modify(|n| *n += 1);
    let p = loop {
        // Waiting before looking, so that a hand-over in between wakes it.
        let handed = s.handed.notified();
        let mut handed = std::pin::pin!(handed);
        handed.as_mut().enable();
        {
            let mut slot = s.inbox.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::replace(&mut *slot, Handed::Nothing) {
                Handed::Invocation(p) => break p,
                Handed::Closed => {
                    *slot = Handed::Closed;
                    return runtime_error(
                        StatusCode::GONE,
                        "Runtime.Shutdown",
                        "the environment is shutting down",
                    );
                }
                Handed::Nothing => {}
            }
        }
        handed.await;
    };
    let mut resp = Response::new(Full::new(p.payload));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        HeaderName::from_static("lambda-runtime-deadline-ms"),
        HeaderValue::from(p.deadline_ms),
    );
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value)
            && !value.is_empty()
        {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set("lambda-runtime-aws-request-id", &p.request_id);
    set("lambda-runtime-invoked-function-arn", &p.invoked_arn);
    set("lambda-runtime-trace-id", &p.trace_id);
    if let Some(cc) = &p.client_context {
        set("lambda-runtime-client-context", cc);
    }
    if let Some(ci) = &p.cognito_identity {
        set("lambda-runtime-cognito-identity", ci);
    }
    s.carry_hops(p.hops);
    *s.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
        id: p.request_id,
        reply: p.reply,
        deadline_ms: p.deadline_ms,
        stream: p.stream,
    });
    resp
}

fn take_current(s: &Shared, id: &str) -> Option<Current> {
    let mut cur = s.current.lock().unwrap_or_else(|e| e.into_inner());
    match cur.take() {
        Some(c) if c.id == id => Some(c),
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

/// Reads a body of at most [`MAX_RESPONSE`] bytes before `deadline_ms`, and the error its
/// trailers report, if any.
async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    deadline_ms: i64,
) -> Result<(Bytes, Option<StreamError>), BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESPONSE as u64) {
        return Err(BodyError::TooLarge);
    }
    let left = (deadline_ms - lamina_model::now_millis()).max(0) as u64;
    let read = gather(body, declared.unwrap_or(0) as usize);
    match tokio::time::timeout(Duration::from_millis(left), read).await {
        Ok(r) => r,
        Err(_) => Err(BodyError::Broken),
    }
}

/// A body's bytes, at most [`MAX_RESPONSE`] of them, in one buffer: a body sent in one frame is
/// kept as it came, others are copied together as they arrive (kept frame by frame, a body of
/// one-byte chunks would hold a buffer and a descriptor per byte). Of trailers, only a
/// streamed response's error is kept.
async fn gather<B>(mut body: B, declared: usize) -> Result<(Bytes, Option<StreamError>), BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut joined = bytes::BytesMut::new();
    let mut error = None;
    while let Some(frame) = body.frame().await {
        let data = match frame.map_err(|_| BodyError::Broken)?.into_data() {
            Ok(data) => data,
            Err(frame) => {
                error = error.or_else(|| frame.trailers_ref().and_then(crate::stream::error_of));
                continue;
            }
        };
        let had = first.as_ref().map_or(0, Bytes::len) + joined.len();
        if had + data.len() > MAX_RESPONSE {
            return Err(BodyError::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(f) => {
                joined.reserve(declared.clamp(f.len() + data.len(), MAX_RESPONSE));
                joined.extend_from_slice(&f);
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok((first.unwrap_or_else(|| joined.freeze()), error))
}

fn header<'a>(headers: &'a HeaderMap, name: &str, default: &'a str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(default)
}

/// The error type a report names in its header `name`.
pub(crate) fn error_type(headers: &HeaderMap, name: &str) -> String {
    let t = header(headers, name, "Unhandled");
    crate::outcome::bounded_error_type(t).to_owned()
}

/// `/response` (or, `failed`, `/error`) for `id`: the answer of the invocation in flight, whose
/// body is read only if `id` is that invocation's. A streamed response (`/response` with
/// `Lambda-Runtime-Function-Response-Mode: streaming`) goes to a caller that reads streams as
/// it comes, and is gathered for others.
async fn answer(
    s: &Arc<Shared>,
    id: &str,
    failed: bool,
    headers: &HeaderMap,
    body: Incoming,
) -> Response {
    let streamed = !failed
        && match headers.get("lambda-runtime-function-response-mode") {
            None => false,
            Some(v) if v == "streaming" => true,
            Some(_) => return invalid_mode(),
        };
    let Some(current) = take_current(s, id) else {
        return invalid_id();
    };
    if streamed && current.stream {
        let content_type = header(headers, "content-type", "application/octet-stream");
        let (stream, writer) = crate::stream::channel(content_type.to_owned());
        // Open before the environment hears of it: a runtime that asks for its next event
        // meanwhile (on another connection) does not end the invocation under its stream.
        let open = Open::new(Arc::clone(s));
        let _ = current.reply.send(Reply::Stream(stream));
        // In a task of its own: hyper drops this request's future with its connection (a
        // runtime that closes it before the `202`), and the stream must end all the same, its
        // bytes and error counted; it ends with its body, which hyper has had whole or ends.
        let deadline = current.deadline_ms;
        let forwarded = tokio::spawn(async move {
            let (end, read) = writer.forward(body, deadline).await;
            open.end(end);
            read
        });
        return match forwarded.await {
            Ok(Read::Whole) => accepted(),
            Ok(Read::TooLarge) => too_large_stream(),
            Ok(Read::CutOff | Read::Late) | Err(_) => status(StatusCode::BAD_REQUEST),
        };
    }
    let Current {
        reply: tx,
        deadline_ms: deadline,
        stream,
        ..
    } = current;
    let reply = match read_body(headers, body, deadline).await {
        Ok((body, _)) if failed => Reply::Error {
            body,
            error_type: error_type(headers, "lambda-runtime-function-error-type"),
        },
        // A stream gathered: an error its trailers report is the invocation's, with the body
        // the runtime sent if it is a JSON error.
        Ok((_, Some(e))) => {
            let body = if crate::Outcome::error_type_in(&e.body).is_some() {
                e.body
            } else {
                let body =
                    serde_json::json!({ "errorType": e.error_type, "errorMessage": e.message });
                Bytes::from(body.to_string())
            };
            Reply::Error {
                body,
                error_type: e.error_type,
            }
        }
        Ok((body, None)) => Reply::Response {
            body,
            content_type: header(headers, "content-type", "application/json").to_owned(),
        },
        Err(BodyError::TooLarge) => {
            let _ = tx.send(Reply::TooLarge);
            return too_large();
        }
        // A stream cut off: its first bytes went nowhere, so it cannot be posted again.
        Err(BodyError::Broken) if streamed && lamina_model::now_millis() < deadline => {
            let body = serde_json::json!({ "errorType": "Runtime.StreamError", "errorMessage": "The response stream was cut off." });
            let _ = tx.send(Reply::Error {
                body: Bytes::from(body.to_string()),
                error_type: "Runtime.StreamError".into(),
            });
            return status(StatusCode::BAD_REQUEST);
        }
        // Cut off, or past the deadline: the invocation stays unanswered, so that its own
        // deadline, its runtime's exit or an answer posted again decides how it ends (a
        // dropped answer would read as the runtime's exit).
        Err(BodyError::Broken) => {
            let mut cur = s.current.lock().unwrap_or_else(|e| e.into_inner());
            if cur.is_none() {
                *cur = Some(Current {
                    id: id.to_owned(),
                    reply: tx,
                    deadline_ms: deadline,
                    stream,
                });
            }
            return status(StatusCode::BAD_REQUEST);
        }
    };
    let _ = tx.send(reply);
    // The caller's answer goes out first: the invocation and then the caller's task run on this
    // worker before the `202`, which only lets the runtime ask for its next event. Written the
    // other way round, the caller waited for a loopback write and the runtime's wake-up.
    tokio::task::yield_now().await;
    accepted()
}

/// A stream being read, for as long as this lives (its task aborted too).
struct Open(Arc<Shared>);

impl Open {
    fn new(s: Arc<Shared>) -> Self {
        s.stream_open.send_replace(true);
        Self(s)
    }

    /// Keeps how the stream ended for its invocation, before it is seen closed.
    fn end(self, end: StreamEnd) {
        *self.0.stream_end.lock().unwrap_or_else(|e| e.into_inner()) = Some(end);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.stream_open.send_replace(false);
    }
}

fn too_large_stream() -> Response {
    runtime_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!(
            "Exceeded maximum allowed payload size ({} bytes).",
            crate::stream::MAX_STREAMED
        ),
    )
}

fn invalid_mode() -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidFunctionResponseMode",
        "Lambda-Runtime-Function-Response-Mode must be streaming, or absent.",
    )
}

async fn init_error(s: &Shared, headers: &HeaderMap, body: Incoming) -> Response {
    // Only during INIT, and only once: the claim is taken before a byte of the body is read.
    if *s.next_calls.borrow() > 0 || s.init_error_claimed.swap(true, Ordering::AcqRel) {
        return not_in_init();
    }
    let deadline = lamina_model::now_millis() + crate::env::INIT_LIMIT.as_millis() as i64;
    let body = match read_body(headers, body, deadline).await {
        Ok((b, _)) => b,
        // Nothing was taken: the runtime may report its error again (a shorter one).
        Err(e) => {
            s.init_error_claimed.store(false, Ordering::Release);
            return match e {
                BodyError::TooLarge => too_large(),
                BodyError::Broken => status(StatusCode::BAD_REQUEST),
            };
        }
    };
    // INIT may have ended while the body came (the runtime asked for an event on another
    // connection): too late, and not kept for the environment's life.
    if *s.next_calls.borrow() > 0 {
        return not_in_init();
    }
    s.keep_init_error(
        error_type(headers, "lambda-runtime-function-error-type"),
        body,
    );
    accepted()
}

fn not_in_init() -> Response {
    runtime_error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        "init/error is only accepted once, during INIT",
    )
}

#[cfg(test)]
pub(crate) mod tests;
