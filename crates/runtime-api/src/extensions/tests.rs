//! The Extensions API as an extension sees it: raw HTTP/1.1 over loopback.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::rapi::tests::{Answer, Api, api, pending, send, send_to};

fn identity() -> Identity {
    Identity {
        function: "f".into(),
        version: "$LATEST".into(),
        handler: "app.handler".into(),
        account: "111111111111".into(),
    }
}

async fn register(api: &Api, name: &str, body: &str, extra: &str) -> Answer {
    let head = format!(
        "POST /2020-01-01/extension/register HTTP/1.1\r\nLambda-Extension-Name: {name}\r\nContent-Length: {}{extra}",
        body.len()
    );
    send(api, &head, body.as_bytes()).await
}

fn next_head(id: &str) -> String {
    format!("GET /2020-01-01/extension/event/next HTTP/1.1\r\nLambda-Extension-Identifier: {id}")
}

/// An extension's `event/next`, in a task of its own: it waits for an event.
fn next(api: &Api, id: &str) -> tokio::task::JoinHandle<Answer> {
    let (addr, head) = (api.addr, next_head(id));
    tokio::spawn(async move { send_to(addr, &head, b"").await })
}

fn owed(x: &Extensions) -> usize {
    *x.owed.borrow()
}

/// Waits (a bounded while) until `x` owes `n` next-event calls.
async fn until_owed(x: &Extensions, n: usize) {
    let mut owed = x.owed.subscribe();
    tokio::time::timeout(Duration::from_secs(10), owed.wait_for(|o| *o == n))
        .await
        .unwrap_or_else(|_| panic!("owed {} instead of {n}", *x.owed.borrow()))
        .unwrap();
}

fn error_type(a: &Answer) -> String {
    a.json()["errorType"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_extension_registers_during_init_and_gets_each_invocation_then_its_shutdown() {
    let api = api().await;
    let x = &api.shared.extensions;
    x.expect(vec!["probe".into()], identity());
    // INIT cannot end while a launched extension has not registered and asked for an event.
    assert_eq!(owed(x), 1);
    assert!(!x.close_registration());

    // Refused registrations: no name, an unknown event, SHUTDOWN for an internal extension,
    // a body that is not a registration.
    let events = r#"{"events":["INVOKE","SHUTDOWN"]}"#;
    let no_name = send(
        &api,
        &format!(
            "POST /2020-01-01/extension/register HTTP/1.1\r\nContent-Length: {}",
            events.len()
        ),
        events.as_bytes(),
    )
    .await;
    assert_eq!(
        (no_name.status, error_type(&no_name)),
        (403, "Extension.InvalidExtensionName".into())
    );
    let foo = register(&api, "probe", r#"{"events":["FOO"]}"#, "").await;
    assert_eq!(foo.json()["errorMessage"], "FOO: ErrorInvalidEventType");
    let internal = register(&api, "inner", events, "").await;
    assert_eq!(error_type(&internal), "Extension.InvalidEventType");
    let garbage = register(&api, "probe", "{", "").await;
    assert_eq!(error_type(&garbage), "InvalidRequestFormat");

    // The launched one registers, and is told the function's identity (the account only when
    // it accepts the feature), in Lambda's order.
    let ok = register(
        &api,
        "probe",
        events,
        "\r\nLambda-Extension-Accept-Feature: accountId",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        std::str::from_utf8(&ok.body).unwrap(),
        r#"{"accountId":"111111111111","functionName":"f","functionVersion":"$LATEST","handler":"app.handler"}"#
    );
    let id = ok.headers["lambda-extension-identifier"].clone();
    let again = register(&api, "probe", events, "").await;
    assert_eq!(error_type(&again), "Extension.InvalidExtensionState");
    // An internal one, for INVOKE only, without the account.
    let inner = register(&api, "inner", r#"{"events":["INVOKE"]}"#, "").await;
    assert_eq!(inner.status, 200);
    assert!(inner.json().get("accountId").is_none());
    let inner_id = inner.headers["lambda-extension-identifier"].clone();
    assert_eq!(
        owed(x),
        2,
        "both registered, neither has asked for an event"
    );

    // Requests that name no registered extension.
    let missing = send(&api, "GET /2020-01-01/extension/event/next HTTP/1.1", b"").await;
    assert_eq!(error_type(&missing), "Extension.MissingExtensionIdentifier");
    let invalid = send(&api, &next_head("not-an-id"), b"").await;
    assert_eq!(error_type(&invalid), "Extension.InvalidExtensionIdentifier");
    let unknown = send(&api, &next_head(&uuid::Uuid::new_v4().to_string()), b"").await;
    assert_eq!(
        (unknown.status, error_type(&unknown)),
        (403, "Extension.UnknownExtensionIdentifier".into())
    );

    // Both ask for an event: INIT may end, and registration closes with it.
    let probe_next = next(&api, &id);
    let inner_next = next(&api, &inner_id);
    until_owed(x, 0).await;
    // Too late for it to fail INIT: it has asked for its first event.
    let head = format!(
        "POST /2020-01-01/extension/init/error HTTP/1.1\r\nLambda-Extension-Identifier: {id}\r\nLambda-Extension-Function-Error-Type: Extension.Late\r\nContent-Length: 0"
    );
    let late = send(&api, &head, b"").await;
    assert_eq!(error_type(&late), "Extension.InvalidExtensionState");
    assert!(api.shared.init_error.lock().unwrap().is_none());
    assert!(x.close_registration());
    let late = register(&api, "late", r#"{"events":["INVOKE"]}"#, "").await;
    assert_eq!(error_type(&late), "Extension.RegistrationClosed");
    assert!(x.want_invokes() && x.graceful());

    // An invocation: each is given it, and owes a call until it asks for the next one.
    let (p, _reply) = pending("request-1");
    x.invoke(&p);
    for waiting in [probe_next, inner_next] {
        let event = waiting.await.unwrap();
        assert_eq!(event.status, 200);
        assert!(
            event
                .headers
                .contains_key("lambda-extension-event-identifier")
        );
        let e = event.json();
        assert_eq!(e["eventType"], "INVOKE");
        assert_eq!(e["requestId"], "request-1");
        assert_eq!(e["deadlineMs"], p.deadline_ms);
        assert_eq!(e["invokedFunctionArn"], p.invoked_arn.as_str());
        assert_eq!(e["tracing"]["value"], p.trace_id.as_str());
    }
    assert_eq!(owed(x), 2);
    let probe_next = next(&api, &id);
    until_owed(x, 1).await;
    let inner_next = next(&api, &inner_id);
    until_owed(x, 0).await;
    tokio::time::timeout(Duration::from_secs(10), x.settled())
        .await
        .unwrap();

    // The end: only the external one, registered for it, is told, and the shutdown waits until
    // it has asked for its next event again.
    let shut = {
        let shared = Arc::clone(&api.shared);
        tokio::spawn(async move { shared.extensions.shut_down("spindown").await })
    };
    let event = probe_next.await.unwrap().json();
    assert_eq!(event["eventType"], "SHUTDOWN");
    assert_eq!(event["shutdownReason"], "spindown");
    assert!(event["deadlineMs"].as_i64().unwrap() > lamina_model::now_millis());
    // Owed by the external one alone: the internal one was given nothing.
    assert_eq!(owed(x), 1);
    let _last = next(&api, &id);
    tokio::time::timeout(Duration::from_secs(10), shut)
        .await
        .unwrap()
        .unwrap();
    inner_next.abort();
}

#[tokio::test]
async fn an_extensions_error_reports_fail_init_or_end_the_environment() {
    let api = api().await;
    let x = &api.shared.extensions;
    x.expect(vec!["probe".into()], identity());
    let events = r#"{"events":["INVOKE"]}"#;
    let id =
        register(&api, "probe", events, "").await.headers["lambda-extension-identifier"].clone();
    let report = |path: &str, extra: &str| {
        format!(
            "POST /2020-01-01/extension/{path} HTTP/1.1\r\nLambda-Extension-Identifier: {id}\r\nContent-Length: 0{extra}"
        )
    };
    let untyped = send(&api, &report("init/error", ""), b"").await;
    assert_eq!(error_type(&untyped), "Extension.MissingHeader");
    assert!(api.shared.init_error.lock().unwrap().is_none());

    let typed = "\r\nLambda-Extension-Function-Error-Type: Extension.ConfigInvalid";
    let failed = send(&api, &report("init/error", typed), b"").await;
    assert_eq!(failed.status, 202);
    let (error_type_seen, body) = api.shared.init_error.lock().unwrap().clone().unwrap();
    assert_eq!(error_type_seen, "Extension.InitError");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "Extension.InitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("probe failed to initialize: Extension.ConfigInvalid"),
        "{body}"
    );
    assert!(*api.shared.init_errors().borrow());
    // A second report is taken and left: the first error stands.
    let other = "\r\nLambda-Extension-Function-Error-Type: Other";
    let twice = send(&api, &report("init/error", other), b"").await;
    assert_eq!(twice.status, 202);
    let kept = api.shared.init_error.lock().unwrap().clone().unwrap().1;
    assert!(String::from_utf8_lossy(&kept).contains("Extension.ConfigInvalid"));

    // An exit reported: the extension owes nothing more, and the environment is not reused.
    assert_eq!(owed(x), 1);
    assert!(!x.reset());
    let exited = send(&api, &report("exit/error", typed), b"").await;
    assert_eq!(exited.status, 202);
    assert!(x.reset());
    assert_eq!(owed(x), 0);
}

#[test]
fn extensions_are_the_programs_in_the_trees_extensions_directory_read_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    let opt = dir.path().join("opt");
    std::fs::create_dir_all(opt.join("extensions/a-directory")).unwrap();
    for name in ["b", "a"] {
        std::fs::write(opt.join("extensions").join(name), "").unwrap();
    }
    std::os::unix::fs::symlink("/usr/bin/true", opt.join("extensions/c")).unwrap();
    let mut names = names_in(&opt, "extensions").unwrap();
    names.sort();
    // Directories are not programs; a link is the sandbox's to resolve, in its own root.
    assert_eq!(names, ["a", "b", "c"]);
    // An image's root: its `opt/extensions`.
    let mut names = names_in(dir.path(), "opt/extensions").unwrap();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    // None at all.
    assert!(names_in(dir.path(), "elsewhere").unwrap().is_empty());
    // A linked directory on the way is not followed onto the host.
    let linked = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(opt.join("extensions"), linked.path().join("extensions")).unwrap();
    assert!(names_in(linked.path(), "extensions").is_err());
    // Many: read only until one more than a function may have.
    for i in 0..100 {
        std::fs::write(opt.join("extensions").join(format!("x{i}")), "").unwrap();
    }
    assert_eq!(
        names_in(&opt, "extensions").unwrap().len(),
        MAX_EXTENSIONS + 1
    );
}

#[tokio::test]
async fn an_exit_reported_during_init_fails_it_and_registrations_are_bounded() {
    let api = api().await;
    let x = &api.shared.extensions;
    x.expect(Vec::new(), identity());
    let events = r#"{"events":["INVOKE"]}"#;
    let mut ids = Vec::new();
    for i in 0..MAX_EXTENSIONS {
        let a = register(&api, &format!("x{i}"), events, "").await;
        ids.push(a.headers["lambda-extension-identifier"].clone());
    }
    let over = register(&api, "one-too-many", events, "").await;
    assert_eq!(over.status, 403);
    assert_eq!(error_type(&over), "Extension.TooManyExtensions");
    assert_eq!(over.json()["errorMessage"], "Extension limit (10) reached");
    let head = format!(
        "POST /2020-01-01/extension/exit/error HTTP/1.1\r\nLambda-Extension-Identifier: {}\r\nLambda-Extension-Function-Error-Type: Extension.Gone\r\nContent-Length: 2",
        ids[3]
    );
    assert_eq!(send(&api, &head, b"{}").await.status, 202);
    let (error_type_seen, body) = api.shared.init_error.lock().unwrap().clone().unwrap();
    assert_eq!(error_type_seen, "Extension.ExitError");
    assert!(String::from_utf8_lossy(&body).contains("Extension x3 exited: Extension.Gone"));
    assert!(x.reset());
}

#[tokio::test]
async fn an_extensions_exit_fails_init_with_a_crash_or_releases_what_waits_for_it() {
    // During INIT, before it registered: INIT fails with `Extension.Crash`.
    let early = api().await;
    let x = &early.shared.extensions;
    x.expect(vec!["early".into()], identity());
    assert_eq!(owed(x), 1);
    x.exited(&early.shared, "early");
    assert_eq!(owed(x), 0);
    assert!(*early.shared.init_errors().borrow());
    let (error_type_seen, body) = early.shared.init_error.lock().unwrap().clone().unwrap();
    assert_eq!(error_type_seen, "Extension.Crash");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "Extension.Crash");
    assert_eq!(
        body["errorMessage"],
        "Extension early exited before INIT ended"
    );
    assert!(x.reset());

    // During INIT, after its first event/next: nothing is owed, but INIT cannot end well once
    // its exit has been seen, while whose exit it was is judged.
    let judged = api().await;
    let x = &judged.shared.extensions;
    x.expect(vec!["ready".into()], identity());
    let events = r#"{"events":["INVOKE"]}"#;
    let ready =
        register(&judged, "ready", events, "").await.headers["lambda-extension-identifier"].clone();
    let waiting = next(&judged, &ready);
    until_owed(x, 0).await;
    assert!(x.exit_seen());
    assert!(!x.close_registration());
    waiting.abort();

    // After INIT, given an invocation: it owes nothing more and gets nothing, and the
    // environment is not used again.
    let later = api().await;
    let x = &later.shared.extensions;
    x.expect(vec!["probe".into()], identity());
    let both = r#"{"events":["INVOKE","SHUTDOWN"]}"#;
    let probe =
        register(&later, "probe", both, "").await.headers["lambda-extension-identifier"].clone();
    let first = next(&later, &probe);
    until_owed(x, 0).await;
    assert!(x.close_registration());
    first.abort();
    x.invoke(&pending("r1").0);
    assert_eq!(owed(x), 1);
    x.exited(&later.shared, "probe");
    assert_eq!(owed(x), 0);
    assert!(x.reset());
    assert!(later.shared.init_error.lock().unwrap().is_none());
    // Its SHUTDOWN has nobody to wait for.
    tokio::time::timeout(Duration::from_millis(500), x.shut_down("spindown"))
        .await
        .expect("nothing owed");
}
