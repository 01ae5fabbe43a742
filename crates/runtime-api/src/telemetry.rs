//! The Telemetry API (2022-07-01) and its predecessor the Logs API (2020-08-15), served on each
//! environment's Runtime API listener: an extension subscribes during INIT to the platform's
//! records, the function's lines or both, and the server sends them in batches to the listener
//! the extension names (`http://sandbox.localdomain:PORT/PATH`, or a TCP port), inside the
//! sandbox.
//!
//! - Subscriptions are taken until INIT ends (`Telemetry.SubscriptionClosed` after). What INIT
//!   produced before a subscription (`platform.initStart`, the function's lines, the other
//!   subscriptions) is kept until then, for environments that launch extensions, and sent to
//!   each subscriber as it comes.
//! - A batch goes once it holds `maxItems` records or `maxBytes`, or `timeoutMs` after its first
//!   record, one at a time per subscription, over one kept-alive connection. A connection that
//!   fails is tried again (25 ms, doubling to 1 s, eight attempts); a batch the listener does
//!   not take (any answer but a success) is dropped. Before `SHUTDOWN`, what is queued is sent,
//!   for up to [`FLUSH_LIMIT`].
//! - A server without root cannot enter its sandboxes' namespaces: subscriptions are answered
//!   `202 Telemetry.NotSupported`, as a local Lambda answers.
//! - The server reaches the listener on `127.0.0.1` in the sandbox's network namespace, which
//!   it finds from the subscribing request's own connection (`SIOCGSKNS`); each connection's
//!   socket is made there by a short-lived thread (`setns`). Sandboxes' `/etc/hosts` name
//!   `sandbox.localdomain` and `sandbox` as `127.0.0.1`.
//!
//! What a function can make the server hold is bounded: one subscription per extension, at
//! most [`MAX_HELD`] bytes of records queued and in flight per environment (records beyond it,
//! or beyond a subscription's share, its `maxBytes` twice over and at most half of that bound,
//! are dropped and counted in a `platform.logsDropped` record), one delivery task and one
//! connection per subscription.

mod deliver;
mod records;
mod validate;

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tokio::sync::Notify;

use crate::extensions::{Refused, identified};
use crate::rapi::{Shared, not_allowed, runtime_error};
pub(crate) use records::{Api, Event};

type Response = hyper::Response<http_body_util::Full<Bytes>>;

/// The Telemetry API's path.
pub(crate) const TELEMETRY: &str = "/2022-07-01/telemetry";
/// The Logs API's path.
pub(crate) const LOGS: &str = "/2020-08-15/logs";
/// Bytes of records one environment's subscriptions hold at once, queued and in flight.
pub const MAX_HELD: usize = 2 * 1024 * 1024;
/// Bytes of INIT's records kept for subscriptions still to come.
const MAX_BACKLOG: usize = 256 * 1024;
/// How long what is queued may take to go out before `SHUTDOWN`.
pub(crate) const FLUSH_LIMIT: Duration = Duration::from_secs(1);
/// The Runtime API's own port, which no destination may name.
const RESERVED_PORT: u16 = crate::env::RUNTIME_API_PORT;

/// One environment's subscriptions, and what is queued for them.
pub(crate) struct Telemetry {
    /// Something to emit to: a subscription, or INIT's records being kept. All that an
    /// environment without either pays per record is this load.
    live: AtomicBool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    closed: bool,
    backlog: Option<Backlog>,
    /// The sandbox's network namespace, once a subscription needed it.
    netns: Option<Arc<OwnedFd>>,
    subs: Vec<Sub>,
    /// The id the next subscription's delivery task knows it by: a task stopped as its
    /// extension subscribed again cannot take the new subscription's batches.
    next_id: u64,
}

impl State {
    /// Bytes queued and in flight over every subscription.
    fn held(&self) -> usize {
        self.subs.iter().map(|x| x.queued + x.in_flight).sum()
    }
}

/// INIT's records, in each API's form, for subscriptions still to come.
#[derive(Default)]
struct Backlog {
    records: Vec<(u8, Vec<Bytes>, Vec<Bytes>)>,
    bytes: usize,
}

/// How a subscription batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffering {
    pub(crate) max_items: usize,
    pub(crate) max_bytes: usize,
    pub(crate) timeout: Duration,
}

struct Sub {
    id: u64,
    extension: String,
    api: Api,
    types: u8,
    buffering: Buffering,
    queue: std::collections::VecDeque<Bytes>,
    queued: usize,
    first_at: Option<Instant>,
    in_flight: usize,
    /// Records and bytes dropped since the last batch, which opens with a record saying so.
    dropped: (u64, u64),
    /// The batch in flight's records, and the drops its opening record says: counted as
    /// dropped again if it does not go.
    flying: (u64, (u64, u64)),
    flush: bool,
    wake: Arc<Notify>,
    task: tokio::task::AbortHandle,
}

/// What a subscription's delivery task is to do next.
pub(crate) enum Due {
    /// Send these (in JSON) now.
    Now(Vec<Bytes>),
    /// Wait until then, or until woken.
    At(Instant),
    Idle,
    /// The subscription is gone.
    Gone,
}

impl Telemetry {
    pub(crate) fn new() -> Self {
        Self {
            live: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// INIT begins: its records are kept for subscriptions to come if `keep` (the environment
    /// launched extensions).
    pub(crate) fn begin_init(&self, keep: bool) {
        if !keep {
            return;
        }
        self.lock().backlog = Some(Backlog::default());
        self.live.store(true, Ordering::Relaxed);
        self.emit(&Event::InitStart);
    }

    /// INIT has ended well: no subscription is taken any more, and subscribers hear of the
    /// extensions and of INIT's report.
    pub(crate) fn end_init(
        &self,
        extensions: impl FnOnce() -> Vec<(String, Vec<&'static str>)>,
        ms: f64,
    ) {
        {
            let mut s = self.lock();
            s.closed = true;
            s.backlog = None;
            let live = !s.subs.is_empty();
            self.live.store(live, Ordering::Relaxed);
            if !live {
                return;
            }
        }
        let extensions = extensions();
        self.emit(&Event::InitDone {
            duration_ms: ms,
            extensions: &extensions,
        });
    }

    /// Whether anything is sent or kept: callers build an event only then.
    pub(crate) fn live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    /// Queues `event` for each subscription that wants its type (and keeps it during INIT).
    pub(crate) fn emit(&self, event: &Event<'_>) {
        if !self.live() {
            return;
        }
        let kind = event.kind();
        let time = crate::platform::now();
        let mut s = self.lock();
        let s = &mut *s;
        // Each API's form, made once, for the subscriptions (and the backlog) that want it.
        let mut forms: [Option<Vec<Bytes>>; 3] = [None, None, None];
        let form = |api: Api, forms: &mut [Option<Vec<Bytes>>; 3]| {
            let i = match api {
                Api::Telemetry => 0,
                Api::Logs {
                    runtime_done: false,
                } => 1,
                Api::Logs { runtime_done: true } => 2,
            };
            forms[i]
                .get_or_insert_with(|| event.render(api, &time))
                .clone()
        };
        let mut held = s.held();
        for sub in s.subs.iter_mut().filter(|x| x.types & kind != 0) {
            let records = form(sub.api, &mut forms);
            sub.push(&mut held, &records);
        }
        if let Some(b) = s.backlog.as_mut().filter(|b| b.bytes < MAX_BACKLOG) {
            let telemetry = form(Api::Telemetry, &mut forms);
            let logs = form(Api::Logs { runtime_done: true }, &mut forms);
            let bytes: usize = telemetry.iter().chain(&logs).map(Bytes::len).sum();
            if b.bytes + bytes <= MAX_BACKLOG {
                b.bytes += bytes;
                b.records.push((kind, telemetry, logs));
            }
        }
    }

    /// An invocation starts: its `platform.start`, where someone listens. Returns its time and
    /// trace then, for its `platform.runtimeDone`.
    pub(crate) fn start(
        &self,
        request_id: &str,
        version: &str,
        trace_id: &str,
    ) -> Option<(String, String)> {
        if !self.live() {
            return None;
        }
        self.emit(&Event::Start {
            request_id,
            version,
            trace_id,
        });
        Some((crate::platform::now(), trace_id.to_owned()))
    }

    /// A line the function wrote (or one of its extensions), for subscriptions to `function`
    /// (or `extension`).
    pub(crate) fn line(&self, text: &str, json: bool, extension: bool) {
        self.emit(&Event::Line {
            text,
            json,
            extension,
        });
    }

    /// The sandbox's network namespace, found from the subscribing request's connection
    /// (`conn`, open until the first await), once it is known that the server can make sockets
    /// in it: not without root, since entering it needs `CAP_SYS_ADMIN` in the server's own user
    /// namespace.
    async fn namespace(&self, conn: RawFd) -> std::io::Result<Arc<OwnedFd>> {
        if let Some(ns) = self.lock().netns.clone() {
            return Ok(ns);
        }
        let ns = Arc::new(namespace_of(conn)?);
        let probe = ns.clone();
        tokio::task::spawn_blocking(move || deliver::socket_in(&probe))
            .await
            .map_err(std::io::Error::other)??;
        self.lock().netns = Some(ns.clone());
        Ok(ns)
    }

    /// Subscribes `extension` (replacing its subscription, if it had one), or says why not.
    fn subscribe(
        self: &Arc<Self>,
        netns: Arc<OwnedFd>,
        extension: &str,
        name: &str,
        req: Subscription,
    ) -> Result<(), (StatusCode, &'static str, String)> {
        let mut s = self.lock();
        if s.closed {
            let (t, what) = match req.api {
                Api::Telemetry => ("Telemetry.SubscriptionClosed", "Telemetry"),
                Api::Logs { .. } => ("Logs.SubscriptionClosed", "Logs"),
            };
            return Err((
                StatusCode::FORBIDDEN,
                t,
                format!("{what} API subscription is closed already"),
            ));
        }
        let other_api =
            |x: &Sub| matches!(x.api, Api::Telemetry) != matches!(req.api, Api::Telemetry);
        if s.subs
            .iter()
            .any(|x| x.extension == extension && other_api(x))
        {
            return Err((
                StatusCode::BAD_REQUEST,
                validation_type(req.api),
                "An extension subscribed to one of the Telemetry and Logs APIs cannot subscribe to the other".into(),
            ));
        }
        if let Some(i) = s.subs.iter().position(|x| x.extension == extension) {
            s.subs.remove(i).task.abort();
        }
        let wake = Arc::new(Notify::new());
        let id = s.next_id;
        s.next_id += 1;
        let task = tokio::spawn(deliver::run(
            Arc::downgrade(self),
            id,
            wake.clone(),
            req.destination.clone(),
            netns,
        ))
        .abort_handle();
        let mut sub = Sub::new(id, extension, &req, wake, task);
        // What INIT produced so far, then this subscription's own record.
        let mut held = s.held();
        if let Some(b) = &s.backlog {
            for (kind, telemetry, logs) in &b.records {
                if sub.types & kind != 0 {
                    let records = match sub.api {
                        Api::Telemetry => telemetry,
                        Api::Logs { .. } => logs,
                    };
                    sub.push(&mut held, records);
                }
            }
        }
        s.subs.push(sub);
        self.live.store(true, Ordering::Relaxed);
        drop(s);
        self.emit(&Event::Subscribed {
            name,
            types: req.types,
        });
        Ok(())
    }

    /// The next batch of subscription `id`, if one is due.
    pub(crate) fn due(&self, id: u64) -> Due {
        let mut s = self.lock();
        let Some(sub) = s.subs.iter_mut().find(|x| x.id == id) else {
            return Due::Gone;
        };
        debug_assert_eq!(sub.in_flight, 0, "one batch at a time");
        let Some(first) = sub.first_at else {
            return Due::Idle;
        };
        let b = sub.buffering;
        let full = sub.queue.len() >= b.max_items || sub.queued >= b.max_bytes;
        if !full && !sub.flush && first.elapsed() < b.timeout {
            return Due::At(first + b.timeout);
        }
        let mut batch = Vec::new();
        let said = std::mem::take(&mut sub.dropped);
        if said.0 > 0 {
            let (records, bytes) = said;
            batch
                .extend(Event::Dropped { records, bytes }.render(sub.api, &crate::platform::now()));
        }
        let opening = batch.len();
        let mut bytes = 0;
        while let Some(r) = sub.queue.front() {
            if !batch.is_empty() && (batch.len() >= b.max_items || bytes + r.len() > b.max_bytes) {
                break;
            }
            bytes += r.len();
            batch.push(sub.queue.pop_front().expect("looked at"));
        }
        sub.queued -= bytes;
        sub.in_flight = bytes;
        sub.flying = ((batch.len() - opening) as u64, said);
        sub.first_at = (!sub.queue.is_empty()).then(Instant::now);
        Due::Now(batch)
    }

    /// Subscription `id`'s batch has gone, or was dropped (`!delivered`; its records are
    /// counted so, and the drops it was to say are said in the next).
    pub(crate) fn sent(&self, id: u64, delivered: bool) {
        if let Some(sub) = self.lock().subs.iter_mut().find(|x| x.id == id) {
            let (records, said) = std::mem::take(&mut sub.flying);
            if !delivered {
                sub.dropped.0 += records + said.0;
                sub.dropped.1 += sub.in_flight as u64 + said.1;
            }
            sub.in_flight = 0;
        }
    }

    /// Sends what is queued now, and what comes from now on as it comes (the environment is
    /// ending), and waits (up to `limit`) until nothing is held.
    pub(crate) async fn flush(&self, limit: Duration) {
        if !self.live() {
            return;
        }
        for sub in self.lock().subs.iter_mut() {
            sub.flush = true;
            sub.wake.notify_one();
        }
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.lock().held() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        for sub in &self.lock().subs {
            sub.task.abort();
        }
    }
}

impl Sub {
    fn new(
        id: u64,
        extension: &str,
        req: &Subscription,
        wake: Arc<Notify>,
        task: tokio::task::AbortHandle,
    ) -> Self {
        Self {
            id,
            extension: extension.to_owned(),
            api: req.api,
            types: req.types,
            buffering: req.buffering,
            queue: Default::default(),
            queued: 0,
            first_at: None,
            in_flight: 0,
            dropped: (0, 0),
            flying: (0, (0, 0)),
            flush: false,
            wake,
            task,
        }
    }

    /// Queues `records`, or counts them dropped past the bounds; wakes the delivery task when a
    /// batch begins or fills.
    fn push(&mut self, held: &mut usize, records: &[Bytes]) {
        let was_empty = self.queue.is_empty();
        for r in records {
            // A subscription's share is at most half of the environment's, so that one stuck
            // listener cannot leave the others nothing.
            let own = (2 * self.buffering.max_bytes).min(MAX_HELD / 2);
            let over = self.queued + self.in_flight + r.len() > own
                || *held + r.len() > MAX_HELD
                || self.queue.len() >= 2 * self.buffering.max_items;
            if over {
                self.dropped.0 += 1;
                self.dropped.1 += r.len() as u64;
                continue;
            }
            self.queued += r.len();
            *held += r.len();
            self.queue.push_back(r.clone());
        }
        if self.queue.is_empty() {
            return;
        }
        self.first_at.get_or_insert_with(Instant::now);
        let full =
            self.queue.len() >= self.buffering.max_items || self.queued >= self.buffering.max_bytes;
        if was_empty || full || self.flush {
            self.wake.notify_one();
        }
    }
}

/// The network namespace of a socket (`SIOCGSKNS`): the subscribing request's connection, whose
/// socket the sandbox's listener made.
fn namespace_of(conn: RawFd) -> std::io::Result<OwnedFd> {
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    // SAFETY: the ioctl takes no argument and returns a new descriptor, owned from here; `conn`
    // is the connection being served, open while its request is.
    let fd = unsafe { libc::ioctl(conn, SIOCGSKNS as _) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just made for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where a subscription's records go, inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// POSTed as a JSON array to this port and path (and `Host`).
    Http {
        port: u16,
        path: String,
        host: String,
    },
    /// Written as a line of JSON each on a connection to this port.
    Tcp { port: u16 },
}

/// A subscription request, validated.
#[derive(Debug)]
pub(crate) struct Subscription {
    api: Api,
    types: u8,
    buffering: Buffering,
    destination: Destination,
}

/// `202` with `Telemetry.NotSupported` (`Logs.NotSupported`), as a local Lambda answers where it
/// cannot send records: what extensions' clients are written to go on without.
fn not_supported(api: Api, why: &std::io::Error) -> Response {
    static TOLD: AtomicBool = AtomicBool::new(false);
    if !TOLD.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            error = %why,
            "extensions' Telemetry and Logs API subscriptions are answered NotSupported: the server cannot enter its sandboxes' network namespaces (it needs root)"
        );
    }
    let (t, what) = match api {
        Api::Telemetry => ("Telemetry.NotSupported", "Telemetry"),
        Api::Logs { .. } => ("Logs.NotSupported", "Logs"),
    };
    let message = format!(
        "{what} API is not supported: this server cannot reach its sandboxes' networks ({why})"
    );
    runtime_error(StatusCode::ACCEPTED, t, &message)
}

fn validation_type(api: Api) -> &'static str {
    match api {
        Api::Telemetry => "ValidationError",
        Api::Logs { .. } => "Logs.ValidationError",
    }
}

/// Serves a subscription request; `conn` is the descriptor of the connection it came on.
pub(crate) async fn route(s: &Arc<Shared>, req: Request<Incoming>, conn: RawFd) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method != Method::PUT {
        return not_allowed("PUT");
    }
    let logs = parts.uri.path() == LOGS;
    let (extension, name) = match identified(&s.extensions, &parts.headers) {
        Ok(who) => who,
        Err(refused) => return refused.answer(),
    };
    let Some(body) = crate::extensions::read(body).await else {
        return Refused::new(
            "InvalidRequestFormat",
            "The request body could not be read, or is over 64 KiB",
        )
        .answer();
    };
    let parsed = validate::parse(&body, logs);
    let req = match parsed {
        Ok(r) => r,
        Err(message) => {
            let api = if logs {
                Api::Logs {
                    runtime_done: false,
                }
            } else {
                Api::Telemetry
            };
            return runtime_error(StatusCode::BAD_REQUEST, validation_type(api), &message);
        }
    };
    // Found before the first await, while the connection is surely open.
    let netns = s.telemetry.namespace(conn);
    let netns = match netns.await {
        Ok(ns) => ns,
        Err(e) => return not_supported(req.api, &e),
    };
    match s.telemetry.subscribe(netns, &extension, &name, req) {
        Ok(()) => {
            let mut r = Response::new(http_body_util::Full::new(Bytes::from_static(b"\"OK\"")));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err((code, t, message)) => runtime_error(code, t, &message),
    }
}

#[cfg(test)]
mod tests;
