//! The Extensions API (2020-01-01), served on each environment's Runtime API listener.
//!
//! External extensions are the programs in the function's `/opt/extensions` (from its layers,
//! or its image): the sandbox starts them just before the runtime ([`external`],
//! `lamina_sandbox::Companions`), with the function's user, limits and filters, in its cgroup,
//! so they share its memory, CPU and freezes. Internal ones register from the runtime's own
//! process. Each registers for `INVOKE` and `SHUTDOWN` events and asks for them on
//! `event/next`:
//! - INIT ends once the runtime and every extension launched or registered have asked for
//!   their next event; registration closes then;
//! - an invocation's `INVOKE` goes to those registered for it when the runtime gets the
//!   invocation, and the invocation ends (its REPORT line, its environment given back) only once
//!   the runtime and each of them have asked for their next event again;
//! - `SHUTDOWN` goes to those registered for it before the environment is destroyed: they have
//!   [`SHUTDOWN_BUDGET`] to ask for their next event.
//!
//! Everything an extension can make the server hold is bounded: at most [`MAX_EXTENSIONS`]
//! registered, two events queued each, bodies read up to [`MAX_BODY`].

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use tokio::sync::{Notify, watch};

use crate::rapi::{Shared, accepted, not_allowed, runtime_error, status};

/// Where the Extensions API's paths begin.
pub(crate) const PREFIX: &str = "/2020-01-01/extension/";
/// Extensions a function may have, as on Lambda.
pub const MAX_EXTENSIONS: usize = 10;
/// The time extensions have for their `SHUTDOWN`, as on Lambda with external extensions.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_millis(2000);
/// How long an extension's exit waits to be seen as the sandbox's own (see [`watch`]).
const SANDBOX_EXIT: Duration = Duration::from_millis(300);
/// The error of an INIT during which an external extension exited.
const CRASH: &str = "Extension.Crash";
/// The largest request body the API reads (registrations and error reports).
const MAX_BODY: usize = 64 * 1024;
/// Where external extensions are, inside the sandbox.
const DIR: &str = "/opt/extensions";
/// Variables the runtime gets and extensions do not, as on Lambda (with every name that begins
/// with `_`).
const RUNTIME_ONLY: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_LOG_FORMAT",
    "AWS_LAMBDA_LOG_LEVEL",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
];

type Response = hyper::Response<Full<Bytes>>;

/// The names of `f`'s external extensions: the entries of its `/opt/extensions` that are not
/// directories, in name order. Read on the host without following a link (the sandbox resolves
/// one in its own root, and executes what it finds there). More than [`MAX_EXTENSIONS`] are
/// not started (the launch fails), so no more than one beyond are read.
pub(crate) fn external(f: &crate::FunctionRuntime) -> Vec<String> {
    let found = match (&f.image, &f.opt_tree) {
        (Some(_), _) => names_in(&f.code_tree, "opt/extensions"),
        (None, Some(opt)) => names_in(opt, "extensions"),
        (None, None) => Ok(Vec::new()),
    };
    let mut names = found.unwrap_or_default();
    names.sort_unstable();
    names
}

/// Watches the processes of the external extensions `launched` (`pidfds` in the same order, as
/// the sandbox gave them): each one's exit is told to [`Extensions::exited`], unless it came with
/// the sandbox's (`exit`) during INIT: a runtime that exits takes every process of the sandbox
/// with it, and their exits may be seen before its own. A task for each, which ends when the
/// process does, at the latest with its environment.
pub(crate) fn watch(
    s: &Arc<Shared>,
    launched: &[String],
    pidfds: Vec<Option<OwnedFd>>,
    exit: &watch::Receiver<Option<i32>>,
) {
    use tokio::io::{Interest, unix::AsyncFd};
    for (name, pidfd) in launched.iter().zip(pidfds) {
        // SAFETY: the pidfd is owned, and kept open by the AsyncFd until it is dropped.
        let registered = |fd| unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        let Some(fd) = pidfd.and_then(|fd| registered(fd).ok()) else {
            tracing::warn!(extension = %name, "an extension's exit cannot be watched");
            continue;
        };
        let (s, name, mut exit) = (s.clone(), name.clone(), exit.clone());
        tokio::spawn(async move {
            let _ = fd.readable().await;
            // Only INIT's error depends on whose exit it was.
            if s.extensions.exit_seen() {
                let sandbox = tokio::time::timeout(SANDBOX_EXIT, exit.wait_for(|e| e.is_some()));
                if sandbox.await.is_ok() {
                    return;
                }
            }
            s.extensions.exited(&s, &name);
        });
    }
}

/// The companions of a launch with `env` that starts `extensions`.
pub(crate) fn companions(
    extensions: &[String],
    env: &[(String, String)],
) -> lamina_sandbox::Companions {
    lamina_sandbox::Companions {
        programs: extensions.iter().map(|n| format!("{DIR}/{n}")).collect(),
        hidden: env
            .iter()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with('_') || RUNTIME_ONLY.contains(&name.as_str()))
            .cloned()
            .collect(),
    }
}

fn names_in(base: &Path, dir: &str) -> std::io::Result<Vec<String>> {
    use rustix::fs::{FileType, OFlags};
    let dir = match crate::runtimes::open_beneath(base, dir, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(dir) => dir,
        Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    // A directory of thousands is read no further than a bound: only ten are started.
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy();
        if name == "." || name == ".." || entry.file_type() == FileType::Directory {
            continue;
        }
        names.push(name.into_owned());
        if names.len() > MAX_EXTENSIONS {
            break;
        }
    }
    Ok(names)
}

/// What a registration's answer tells the extension.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    pub function: String,
    pub version: String,
    pub handler: String,
    pub account: String,
}

/// The extensions of one environment.
#[derive(Debug)]
pub(crate) struct Extensions {
    state: std::sync::Mutex<State>,
    /// Woken whenever an event is queued.
    queued: Notify,
    /// How many next-event calls the environment waits for: from each external extension
    /// launched and not yet registered, and from each extension given an event (or just
    /// registered) that has not asked for its next one since.
    owed: watch::Sender<usize>,
    /// Fixed when registration closes: whether any extension wants `INVOKE`, and whether any
    /// registered at all (see [`Extensions::graceful`]).
    invoke: AtomicBool,
    graceful: AtomicBool,
    /// An extension exited, or reported its exit: the environment is not used again.
    reset: AtomicBool,
}

#[derive(Debug)]
struct State {
    identity: Identity,
    /// External extensions launched that have not registered yet.
    launched: Vec<String>,
    open: bool,
    /// External extensions whose process exited while registration was open: INIT cannot end
    /// well any more (it fails with their crash, or with the sandbox's own exit).
    exited: usize,
    registered: Vec<Registered>,
}

#[derive(Debug)]
struct Registered {
    id: String,
    name: String,
    /// One of the programs launched, not an extension of the runtime's own process.
    external: bool,
    invoke: bool,
    shutdown: bool,
    queue: VecDeque<Bytes>,
    owes: bool,
}

impl State {
    fn owed(&self) -> usize {
        self.launched.len() + self.registered.iter().filter(|r| r.owes).count()
    }
}

impl Registered {
    /// The extension is gone (it exited, or said it would): it owes nothing and gets nothing.
    fn leave(&mut self) {
        self.owes = false;
        self.invoke = false;
        self.shutdown = false;
        self.queue.clear();
    }
}

impl Extensions {
    pub(crate) fn new() -> Self {
        Self {
            state: std::sync::Mutex::new(State {
                identity: Identity::default(),
                launched: Vec::new(),
                open: true,
                exited: 0,
                registered: Vec::new(),
            }),
            queued: Notify::new(),
            owed: watch::channel(0).0,
            invoke: AtomicBool::new(false),
            graceful: AtomicBool::new(false),
            reset: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state, then publishes what is owed.
    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.lock();
        let out = f(&mut state);
        self.owed.send_replace(state.owed());
        out
    }

    /// The external extensions the sandbox was launched with, and what their registrations
    /// answer.
    pub(crate) fn expect(&self, launched: Vec<String>, identity: Identity) {
        self.change(|s| {
            s.launched = launched;
            s.identity = identity;
        });
    }

    /// Ends INIT's registrations, if nothing is owed and no extension has exited; false (and
    /// still open) otherwise.
    pub(crate) fn close_registration(&self) -> bool {
        let mut s = self.lock();
        if s.owed() > 0 || s.exited > 0 {
            return false;
        }
        s.open = false;
        let wants = |f: fn(&Registered) -> bool| s.registered.iter().any(f);
        self.invoke.store(wants(|r| r.invoke), Ordering::Relaxed);
        self.graceful.store(wants(|_| true), Ordering::Relaxed);
        true
    }

    /// The extensions registered, each with the events it registered for: what the platform's
    /// `platform.extension` records say once INIT has ended.
    pub(crate) fn ready(&self) -> Vec<(String, Vec<&'static str>)> {
        let s = self.lock();
        let events = |r: &Registered| {
            let mut e = Vec::new();
            if r.invoke {
                e.push("INVOKE");
            }
            if r.shutdown {
                e.push("SHUTDOWN");
            }
            e
        };
        s.registered
            .iter()
            .map(|r| (r.name.clone(), events(r)))
            .collect()
    }

    /// An external extension's process has exited: during INIT, counted at once, so that INIT
    /// cannot end well while whose exit it was is judged. Returns whether INIT was on.
    fn exit_seen(&self) -> bool {
        let mut s = self.lock();
        s.exited += usize::from(s.open);
        s.open
    }

    /// Whether an extension that registered for `INVOKE` events is there, once INIT has ended:
    /// otherwise an invocation costs nothing here.
    pub(crate) fn want_invokes(&self) -> bool {
        self.invoke.load(Ordering::Relaxed)
    }

    /// Whether any extension registered during INIT (an internal one too): the environment's
    /// end is then graceful, as on Lambda, with `SIGTERM` for the runtime and `SHUTDOWN` for
    /// the extensions registered for it.
    pub(crate) fn graceful(&self) -> bool {
        self.graceful.load(Ordering::Relaxed)
    }

    /// An external extension's process (`name`, its program's) exited. During INIT, that fails
    /// it with `Extension.Crash` (unless an error was reported first), as on Lambda. After INIT
    /// the extension owes nothing more, as after its `exit/error`, and the environment is not
    /// used again. Either way, what waited for it is released.
    pub(crate) fn exited(&self, s: &Shared, name: &str) {
        self.change(|st| {
            // Before what it owed is released: whatever waited for it sees the reset.
            self.reset.store(true, Ordering::Relaxed);
            if st.open {
                let message = format!("Extension {name} exited before INIT ended");
                let body = serde_json::json!({ "errorType": CRASH, "errorMessage": message });
                s.fail_init(CRASH, Bytes::from(body.to_string()));
                st.launched.retain(|l| l != name);
            }
            if let Some(r) = st
                .registered
                .iter_mut()
                .find(|r| r.external && r.name == name)
            {
                r.leave();
            }
        });
    }

    /// Whether an extension exited or reported its exit.
    pub(crate) fn reset(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
    }

    /// Until no next-event call is owed.
    pub(crate) async fn settled(&self) {
        let _ = self.owed.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Hands `event` to every extension `wants` it.
    fn deliver(&self, event: &Bytes, wants: fn(&Registered) -> bool) {
        self.change(|s| {
            for r in s.registered.iter_mut().filter(|r| wants(r)) {
                // Two at most: an `INVOKE` not yet taken, and the `SHUTDOWN` after it.
                if r.queue.len() < 2 {
                    r.queue.push_back(event.clone());
                }
                r.owes = true;
            }
        });
        self.queued.notify_waiters();
    }

    /// The invocation's `INVOKE` event, for the extensions registered for it.
    pub(crate) fn invoke(&self, p: &crate::rapi::Pending) {
        let event = Event::Invoke {
            deadline_ms: p.deadline_ms,
            request_id: &p.request_id,
            invoked_function_arn: &p.invoked_arn,
            tracing: Tracing {
                kind: "X-Amzn-Trace-Id",
                value: &p.trace_id,
            },
        };
        self.deliver(&event.to_json(), |r| r.invoke);
    }

    /// Sends `SHUTDOWN` (for `reason`: `spindown`, `timeout` or `failure`) to the extensions
    /// registered for it, and waits until they have asked for their next event, for at most
    /// [`SHUTDOWN_BUDGET`]. Nothing to wait for without them.
    pub(crate) async fn shut_down(&self, reason: &str) {
        let event = Event::Shutdown {
            deadline_ms: lamina_model::now_millis() + SHUTDOWN_BUDGET.as_millis() as i64,
            shutdown_reason: reason,
        };
        self.deliver(&event.to_json(), |r| r.shutdown);
        let _ = tokio::time::timeout(SHUTDOWN_BUDGET, self.settled()).await;
    }
}

/// An event, as `event/next` gives it.
#[derive(serde::Serialize)]
#[serde(tag = "eventType", rename_all = "UPPERCASE")]
enum Event<'a> {
    #[serde(rename_all = "camelCase")]
    Invoke {
        deadline_ms: i64,
        request_id: &'a str,
        invoked_function_arn: &'a str,
        tracing: Tracing<'a>,
    },
    #[serde(rename_all = "camelCase")]
    Shutdown {
        deadline_ms: i64,
        shutdown_reason: &'a str,
    },
}

#[derive(serde::Serialize)]
struct Tracing<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    value: &'a str,
}

impl Event<'_> {
    fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Serves one request of the Extensions API.
pub(crate) async fn route(s: &Arc<Shared>, req: Request<Incoming>) -> Response {
    let (parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let get = parts.method == Method::GET;
    match rest {
        "event/next" if get => next(&s.extensions, &parts.headers).await,
        "event/next" => not_allowed("GET"),
        "register" | "init/error" | "exit/error" if parts.method != Method::POST => {
            not_allowed("POST")
        }
        "register" => register(&s.extensions, &parts.headers, body).await,
        "init/error" => error_report(s, &parts.headers, body, false).await,
        "exit/error" => error_report(s, &parts.headers, body, true).await,
        _ => status(StatusCode::NOT_FOUND),
    }
}

/// A request refused: `403`, as every refusal of the API's, with an error type and message.
pub(crate) struct Refused(&'static str, String);

impl Refused {
    pub(crate) fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        Self(error_type, message.into())
    }

    pub(crate) fn answer(self) -> Response {
        runtime_error(StatusCode::FORBIDDEN, self.0, &self.1)
    }
}

fn refused(error_type: &'static str, message: &str) -> Response {
    Refused::new(error_type, message).answer()
}

/// The id and name of the registered extension `headers` name, or the answer for a request
/// that names none.
pub(crate) fn identified(x: &Extensions, headers: &HeaderMap) -> Result<(String, String), Refused> {
    let Some(id) = headers
        .get("lambda-extension-identifier")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return Err(Refused::new(
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        ));
    };
    if uuid::Uuid::try_parse(id).is_err() {
        return Err(Refused::new(
            "Extension.InvalidExtensionIdentifier",
            "Invalid Lambda-Extension-Identifier",
        ));
    }
    match x.lock().registered.iter().find(|r| r.id == id) {
        Some(r) => Ok((r.id.clone(), r.name.clone())),
        None => Err(Refused::new(
            "Extension.UnknownExtensionIdentifier",
            format!("Unknown extension {id}"),
        )),
    }
}

/// The error type an error report names.
fn reported_type(headers: &HeaderMap) -> Result<&str, Refused> {
    headers
        .get("lambda-extension-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Refused::new(
                "Extension.MissingHeader",
                "Lambda-Extension-Function-Error-Type not found",
            )
        })
}

pub(crate) async fn read(body: Incoming) -> Option<Bytes> {
    Some(
        Limited::new(body, MAX_BODY)
            .collect()
            .await
            .ok()?
            .to_bytes(),
    )
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registration {
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    configuration_keys: Vec<serde_json::Value>,
}

/// A registration's answer, in Lambda's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    function_name: &'a str,
    function_version: &'a str,
    handler: &'a str,
}

async fn register(x: &Extensions, headers: &HeaderMap, body: Incoming) -> Response {
    let name = headers
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return refused("Extension.InvalidExtensionName", "Empty extension name");
    }
    let Some(body) = read(body).await else {
        return refused(
            "InvalidRequestFormat",
            "The request body could not be read, or is over 64 KiB",
        );
    };
    let events = match serde_json::from_slice::<Registration>(&body) {
        Ok(r) if !r.configuration_keys.is_empty() => {
            return refused(
                "InvalidRequestFormat",
                "configurationKeys are deprecated; use environment variables instead",
            );
        }
        Ok(r) => r.events,
        Err(e) => {
            return refused("InvalidRequestFormat", &e.to_string());
        }
    };
    if let Some(bad) = events
        .iter()
        .find(|e| !matches!(e.as_str(), "INVOKE" | "SHUTDOWN"))
    {
        return refused(
            "Extension.InvalidEventType",
            &format!("{bad}: ErrorInvalidEventType"),
        );
    }
    let account = headers
        .get_all("lambda-extension-accept-feature")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|f| f.trim() == "accountId"));
    let registered = x.change(|s| {
        if s.registered.iter().any(|r| r.name == name) {
            return Err(Refused::new(
                "Extension.InvalidExtensionState",
                "Extension with this name already registered",
            ));
        }
        if !s.open {
            return Err(Refused::new(
                "Extension.RegistrationClosed",
                "Extension registration closed already",
            ));
        }
        if s.registered.len() >= MAX_EXTENSIONS {
            return Err(Refused::new(
                "Extension.TooManyExtensions",
                format!("Extension limit ({MAX_EXTENSIONS}) reached"),
            ));
        }
        let external = match s.launched.iter().position(|l| *l == name) {
            Some(i) => {
                s.launched.swap_remove(i);
                true
            }
            None => false,
        };
        let shutdown = events.iter().any(|e| e == "SHUTDOWN");
        if shutdown && !external {
            return Err(Refused::new(
                "Extension.InvalidEventType",
                "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension",
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        s.registered.push(Registered {
            id: id.clone(),
            name: name.clone(),
            external,
            invoke: events.iter().any(|e| e == "INVOKE"),
            shutdown,
            queue: VecDeque::new(),
            owes: true,
        });
        let i = &s.identity;
        let answer = Answer {
            account_id: account.then_some(i.account.as_str()),
            function_name: &i.function,
            function_version: &i.version,
            handler: &i.handler,
        };
        Ok((id, serde_json::to_vec(&answer).unwrap_or_default()))
    });
    match registered {
        Ok((id, answer)) => {
            let mut r = Response::new(Full::new(Bytes::from(answer)));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Ok(id) = HeaderValue::from_str(&id) {
                h.insert(HeaderName::from_static("lambda-extension-identifier"), id);
            }
            r
        }
        Err(refused) => refused.answer(),
    }
}

/// An extension's next event: one already queued, else the next one queued for it. Asking
/// settles what it owed for the last one.
async fn next(x: &Extensions, headers: &HeaderMap) -> Response {
    let (id, _) = match identified(x, headers) {
        Ok(id) => id,
        Err(refused) => return refused.answer(),
    };
    let mut asked = false;
    let event = loop {
        let queued = x.queued.notified();
        let mut queued = std::pin::pin!(queued);
        queued.as_mut().enable();
        let event = x.change(|s| {
            let r = s.registered.iter_mut().find(|r| r.id == id)?;
            match r.queue.pop_front() {
                Some(event) => Some(event),
                None => {
                    // This call answers the last event; a queued one is the answer to the call
                    // that is owed for it.
                    if !asked {
                        r.owes = false;
                    }
                    None
                }
            }
        });
        if let Some(event) = event {
            break event;
        }
        asked = true;
        queued.await;
    };
    let mut r = Response::new(Full::new(event));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert(
            HeaderName::from_static("lambda-extension-event-identifier"),
            v,
        );
    }
    r
}

/// An extension's `init/error` (`exit`: its `exit/error`). Before it has asked for its first
/// event, either fails INIT, with `Extension.InitError` or `Extension.ExitError` (only the first
/// error INIT reports is kept; a later one is taken and left). After that, `init/error` is
/// refused, and an exit is taken: the extension owes nothing more, and the environment is not
/// used again. The body is read (within bounds) and left, as on Lambda.
async fn error_report(s: &Shared, headers: &HeaderMap, body: Incoming, exit: bool) -> Response {
    let ((id, name), reported) =
        match identified(&s.extensions, headers).and_then(|id| Ok((id, reported_type(headers)?))) {
            Ok(found) => found,
            Err(refused) => return refused.answer(),
        };
    let _ = read(body).await;
    let (error_type, what) = match exit {
        true => ("Extension.ExitError", "exited"),
        false => ("Extension.InitError", "failed to initialize"),
    };
    let x = &s.extensions;
    // Under the state's lock: INIT cannot end while this extension still owes its first call.
    let taken = x.change(|st| {
        let open = st.open;
        let r = st.registered.iter_mut().find(|r| r.id == id)?;
        if open && r.owes && r.queue.is_empty() {
            let message = format!("Extension {name} {what}: {reported}");
            let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
            s.fail_init(error_type, Bytes::from(body.to_string()));
        } else if !exit {
            return None;
        }
        if exit {
            // Before what it owed is released: whatever waited for it sees the reset.
            x.reset.store(true, Ordering::Relaxed);
            r.leave();
        }
        Some(())
    });
    if taken.is_none() {
        return refused(
            "Extension.InvalidExtensionState",
            "init/error is accepted only before the extension's first event/next",
        );
    }
    accepted()
}

#[cfg(test)]
mod tests;
