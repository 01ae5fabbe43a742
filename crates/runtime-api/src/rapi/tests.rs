//! The Runtime API as a runtime sees it: raw HTTP/1.1 over loopback, one connection per request.

use std::collections::HashMap;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

pub(crate) struct Api {
    pub(crate) addr: std::net::SocketAddr,
    /// The environment's end: taken to see what a waiting `/next` is told when it goes.
    pub(crate) inbox: Option<Outbox>,
    pub(crate) shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub(crate) async fn api() -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shared, inbox) = Shared::new();
    let creds = crate::apis::Credentials::mint("111111111111".into()).unwrap();
    let server = serve(listener, shared.clone(), Door::new(Arc::new(creds), None));
    Api {
        addr,
        inbox: Some(inbox),
        shared,
        server,
    }
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Sends one request (`head` without its blank line) and reads the answer until the server
/// closes the connection.
pub(crate) async fn send(api: &Api, head: &str, body: &[u8]) -> Answer {
    send_to(api.addr, head, body).await
}

/// [`send`] to an address, for a task of its own.
pub(crate) async fn send_to(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> Answer {
    let (mut r, mut w) = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap()
        .into_split();
    let mut req = format!("{head}\r\nHost: rapi\r\nConnection: close\r\n\r\n").into_bytes();
    req.extend_from_slice(body);
    // Written apart, and its errors ignored: a server that refuses a body answers and closes
    // before it has all been sent. The write half stays open until the answer is read.
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&req).await;
        w
    });
    let mut raw = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = r.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the answer came in time");
    writer.abort();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer");
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

pub(crate) fn pending(id: &str) -> (Pending, oneshot::Receiver<Reply>) {
    let (reply, rx) = oneshot::channel();
    let p = Pending {
        request_id: id.into(),
        payload: Bytes::from_static(br#"{"key":"value"}"#),
        deadline_ms: lamina_model::now_millis() + 60_000,
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
        trace_id: "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0".into(),
        client_context: Some(r#"{"custom":{"a":"b"}}"#.into()),
        cognito_identity: None,
        stream: false,
        hops: 0,
        reply,
    };
    (p, rx)
}

/// Puts an invocation in the inbox and takes it with `/next`, as the runtime would.
async fn handed(api: &Api, id: &str) -> (oneshot::Receiver<Reply>, Answer) {
    let (p, reply) = pending(id);
    assert!(api.inbox.as_ref().unwrap().send(p));
    let next = send(api, "GET /2018-06-01/runtime/invocation/next HTTP/1.1", b"").await;
    (reply, next)
}

async fn post(api: &Api, path: &str, extra: &str, body: &[u8]) -> Answer {
    let head = format!(
        "POST /2018-06-01/runtime/{path} HTTP/1.1\r\nContent-Length: {}{extra}",
        body.len()
    );
    send(api, &head, body).await
}

#[tokio::test]
async fn next_hands_over_the_event_and_only_its_own_id_answers_it() {
    let api = api().await;
    let (p, reply) = pending("r-1");
    let deadline = p.deadline_ms;
    assert!(api.inbox.as_ref().unwrap().send(p));
    let next = send(
        &api,
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        b"",
    )
    .await;
    assert_eq!(next.status, 200);
    assert_eq!(next.body, br#"{"key":"value"}"#);
    let h = &next.headers;
    assert_eq!(h["lambda-runtime-aws-request-id"], "r-1");
    assert_eq!(h["lambda-runtime-deadline-ms"], deadline.to_string());
    assert_eq!(
        h["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f"
    );
    assert!(h["lambda-runtime-trace-id"].starts_with("Root=1-5759e988-"));
    assert_eq!(
        h["lambda-runtime-client-context"],
        r#"{"custom":{"a":"b"}}"#
    );
    assert_eq!(h["content-type"], "application/json");
    assert!(!h.contains_key("lambda-runtime-cognito-identity"));
    assert_eq!(*api.shared.next_calls().borrow(), 1);
    // INIT is over: an init error is no longer taken.
    let late = post(&api, "init/error", "", b"{}").await;
    assert_eq!(late.status, 403);
    assert_eq!(late.json()["errorType"], "InvalidStateTransition");
    assert!(api.shared.init_error.lock().unwrap().is_none());

    // Another id is refused before its body is read: this one never comes, and the answer
    // does not wait for it.
    let head = "POST /2018-06-01/runtime/invocation/r-2/response HTTP/1.1\r\nContent-Length: 100";
    let other = send(&api, head, b"").await;
    assert_eq!(other.status, 400);
    assert_eq!(other.json()["errorType"], "InvalidRequestID");

    let ok = post(
        &api,
        "invocation/r-1/response",
        "\r\nContent-Type: text/plain",
        b"hello",
    )
    .await;
    assert_eq!(
        (ok.status, ok.json()),
        (202, serde_json::json!({"status": "OK"}))
    );
    match reply.await.unwrap() {
        Reply::Response { body, content_type } => {
            assert_eq!(
                (&body[..], content_type.as_str()),
                (&b"hello"[..], "text/plain")
            );
        }
        other => panic!("{other:?}"),
    }
    // Answered once: a second answer for the same id is refused.
    let again = post(&api, "invocation/r-1/response", "", b"\"twice\"").await;
    assert_eq!(again.status, 400);
}

#[tokio::test]
async fn a_waiting_next_is_woken_by_its_event_and_told_when_the_environment_goes() {
    let mut api = api().await;
    {
        let next = || {
            send(
                &api,
                "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
                b"",
            )
        };
        // Asked before there is an event: answered once one is handed over.
        let waiting = next();
        let mut waiting = std::pin::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut waiting)
                .await
                .is_err(),
            "/next answered with no event handed over"
        );
        let (p, _reply) = pending("r-1");
        assert!(api.inbox.as_ref().unwrap().send(p));
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("/next not woken by the event");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["lambda-runtime-aws-request-id"], "r-1");
        // An event not yet taken is not replaced by another: the second is refused.
        let (p, _reply) = pending("r-2");
        assert!(api.inbox.as_ref().unwrap().send(p));
        let (p, _reply3) = pending("r-3");
        assert!(!api.inbox.as_ref().unwrap().send(p));
        assert_eq!(next().await.headers["lambda-runtime-aws-request-id"], "r-2");
    }
    // Two of the runtime's threads waiting when the environment goes: both are told, and so
    // is a later one.
    let addr = api.addr;
    let next_at = move || {
        tokio::spawn(async move {
            send_to(
                addr,
                "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
                b"",
            )
            .await
        })
    };
    let waiting = [next_at(), next_at()];
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()));
    drop(api.inbox.take());
    for w in waiting {
        let answer = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a waiting /next was not told the environment went")
            .unwrap();
        assert_eq!(answer.status, 410);
        assert_eq!(answer.json()["errorType"], "Runtime.Shutdown");
    }
    let later = next_at().await.unwrap();
    assert_eq!(later.status, 410);
}

#[tokio::test]
async fn a_next_whose_connection_closed_does_not_take_the_event() {
    let api = api().await;
    // A runtime asks, then goes away before there is an event (its connection closes).
    let addr = api.addr;
    let gone = tokio::spawn(async move {
        send_to(
            addr,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
            b"",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gone.abort();
    let _ = gone.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The event goes to the next request, not to the one nobody reads.
    let (reply, next) = tokio::time::timeout(Duration::from_secs(5), handed(&api, "r-1"))
        .await
        .expect("the event went to the closed connection's /next");
    assert_eq!(next.status, 200);
    assert_eq!(next.headers["lambda-runtime-aws-request-id"], "r-1");
    drop(reply);
}

#[tokio::test]
async fn errors_and_oversized_responses_reach_the_invocation() {
    let api = api().await;
    let (reply, _) = handed(&api, "r-err").await;
    let body = br#"{"errorMessage":"boom","errorType":"ValueError"}"#;
    let e = post(
        &api,
        "invocation/r-err/error",
        "\r\nLambda-Runtime-Function-Error-Type: Unhandled.ValueError",
        body,
    )
    .await;
    assert_eq!(e.status, 202);
    match reply.await.unwrap() {
        Reply::Error {
            body: b,
            error_type,
        } => {
            assert_eq!(
                (&b[..], error_type.as_str()),
                (&body[..], "Unhandled.ValueError")
            );
        }
        other => panic!("{other:?}"),
    }

    // A declared length over the limit is refused without reading the body.
    let (reply, _) = handed(&api, "r-big").await;
    let head = format!(
        "POST /2018-06-01/runtime/invocation/r-big/response HTTP/1.1\r\nContent-Length: {}",
        MAX_RESPONSE + 1
    );
    let big = send(&api, &head, b"").await;
    assert_eq!(big.status, 413);
    assert_eq!(big.json()["errorType"], "RequestEntityTooLarge");
    assert!(matches!(reply.await.unwrap(), Reply::TooLarge));

    // So is a chunked body that grows past it.
    let (reply, _) = handed(&api, "r-chunked").await;
    let chunk = vec![b'x'; 1 << 20];
    let mut body = Vec::new();
    for _ in 0..7 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /2018-06-01/runtime/invocation/r-chunked/response HTTP/1.1\r\nTransfer-Encoding: chunked";
    let big = send(&api, head, &body).await;
    assert_eq!(big.status, 413);
    assert!(matches!(reply.await.unwrap(), Reply::TooLarge));
}

#[tokio::test]
async fn init_error_is_taken_once_and_other_routes_are_refused() {
    let api = api().await;
    let body = br#"{"errorMessage":"no handler","errorType":"Runtime.HandlerNotFound"}"#;
    let first = post(
        &api,
        "init/error",
        "\r\nLambda-Runtime-Function-Error-Type: Runtime.HandlerNotFound",
        body,
    )
    .await;
    assert_eq!(first.status, 202);
    assert!(*api.shared.init_errors().borrow());
    let (error_type, stored) = api.shared.init_error.lock().unwrap().clone().unwrap();
    assert_eq!(
        (error_type.as_str(), &stored[..]),
        ("Runtime.HandlerNotFound", &body[..])
    );
    let second = post(&api, "init/error", "", body).await;
    assert_eq!(second.status, 403);
    assert_eq!(second.json()["errorType"], "InvalidStateTransition");

    let post_next = post(&api, "invocation/next", "", b"").await;
    assert_eq!(
        (post_next.status, post_next.headers["allow"].as_str()),
        (405, "GET")
    );
    let get_response = send(
        &api,
        "GET /2018-06-01/runtime/invocation/r/response HTTP/1.1",
        b"",
    )
    .await;
    assert_eq!(
        (get_response.status, get_response.headers["allow"].as_str()),
        (405, "POST")
    );
    for path in [
        "/2018-06-01/runtime/invocation/r",
        "/2018-06-01/runtime/",
        "/",
    ] {
        let a = send(&api, &format!("GET {path} HTTP/1.1"), b"").await;
        assert_eq!(a.status, 404, "{path}");
    }
}

/// A body of `left` one-byte frames, each counted while alive.
struct TinyFrames {
    left: usize,
}

static LIVE_FRAMES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK_FRAMES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Counted([u8; 1]);

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE_FRAMES.fetch_sub(1, Ordering::SeqCst);
    }
}

impl hyper::body::Body for TinyFrames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        let live = LIVE_FRAMES.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK_FRAMES.fetch_max(live, Ordering::SeqCst);
        let data = Bytes::from_owner(Counted(*b"x"));
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
    }
}

#[tokio::test]
async fn a_body_of_one_byte_chunks_is_held_in_one_buffer_and_bounded() {
    // Kept frame by frame, 100,000 chunks would be 100,000 buffers held at once.
    let Ok((got, None)) = gather(TinyFrames { left: 100_000 }, 0).await else {
        panic!("a body within the limit is read");
    };
    assert_eq!(got.len(), 100_000);
    assert!(got.iter().all(|b| *b == b'x'));
    let peak = PEAK_FRAMES.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} chunks held at once");
    // Past the limit, however it is cut, the body is refused.
    let over = gather(
        TinyFrames {
            left: MAX_RESPONSE + 1,
        },
        0,
    )
    .await;
    assert!(matches!(over, Err(BodyError::TooLarge)));
}

#[tokio::test]
async fn an_answer_cut_off_leaves_the_invocation_unanswered_and_an_init_error_may_come_again() {
    let api = api().await;
    let (mut reply, next) = handed(&api, "r-1").await;
    assert_eq!(next.status, 200);
    // Ten bytes announced, one sent, and the connection gone.
    let head = "POST /2018-06-01/runtime/invocation/r-1/response HTTP/1.1\r\nContent-Length: 10";
    let cut = send_to_and_close(api.addr, head, b"x").await;
    assert!(cut.is_none_or(|status| status == 400), "{cut:?}");
    // Not read as the runtime's exit: the answer is still to come, and it may.
    assert!(matches!(
        reply.try_recv(),
        Err(oneshot::error::TryRecvError::Empty)
    ));
    let ok = post(&api, "invocation/r-1/response", "", b"\"again\"").await;
    assert_eq!(ok.status, 202);
    assert!(matches!(reply.await, Ok(Reply::Response { .. })));

    // An init error too large to take leaves room for one that fits.
    let init = super::tests::api().await;
    let big = vec![b'x'; MAX_RESPONSE + 1];
    assert_eq!(post(&init, "init/error", "", &big).await.status, 413);
    assert_eq!(post(&init, "init/error", "", b"{}").await.status, 202);
    assert!(init.shared.init_error.lock().unwrap().is_some());
}

/// Sends a request whose body is shorter than announced, then closes the connection; the
/// status answered, if any came before the close.
async fn send_to_and_close(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{head}\r\nHost: rapi\r\n\r\n").into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).await.unwrap();
    s.shutdown().await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    // Let the server's side of the cut-off body settle.
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::str::from_utf8(&raw)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// Opens a `/response` of `id` in streaming mode and sends its head, `first` as one chunk.
async fn start_stream(api: &Api, id: &str, first: &str) -> tokio::net::TcpStream {
    let mut conn = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: rapi\r\n\
         Connection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\n\
         Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n\
         {:x}\r\n{first}\r\n",
        first.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn
}

/// The rest of a stream: `more` as one chunk, then its end with an error in its trailers.
async fn end_stream_with_error(conn: &mut tokio::net::TcpStream, more: &str) -> String {
    use base64::Engine as _;
    let error = base64::engine::general_purpose::STANDARD
        .encode(br#"{"errorType":"Custom","errorMessage":"went wrong"}"#);
    let rest = format!(
        "{:x}\r\n{more}\r\n0\r\nLambda-Runtime-Function-Error-Type: Runtime.StreamError\r\n\
         Lambda-Runtime-Function-Error-Body: {error}\r\n\r\n",
        more.len()
    );
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer))
        .await
        .expect("the answer came in time")
        .unwrap();
    answer
}

#[tokio::test]
async fn a_streamed_response_reaches_its_caller_as_it_comes_and_its_trailers_end_it() {
    let api = api().await;
    let (mut p, reply) = pending("s-1");
    p.stream = true;
    assert!(api.inbox.as_ref().unwrap().send(p));
    send(
        &api,
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        b"",
    )
    .await;
    let mut conn = start_stream(&api, "s-1", "hello").await;
    let Reply::Stream(mut s) = reply.await.unwrap() else {
        panic!("a streaming caller gets a stream");
    };
    assert_eq!(s.content_type(), "text/plain");
    // The first chunk is the caller's while the body is still open. The runtime's own
    // `Runtime.StreamError` is an error it reports, answered `202` as any other.
    assert_eq!(s.next().await.as_deref(), Some(&b"hello"[..]));
    let answer = tokio::spawn(async move { end_stream_with_error(&mut conn, " world").await });
    assert_eq!(s.next().await.as_deref(), Some(&b" world"[..]));
    assert_eq!(s.next().await, None);
    let end = s.end().await;
    assert_eq!(end.bytes, 11);
    let error = end.error.expect("the trailers' error");
    assert_eq!(
        (error.error_type.as_str(), error.message.as_str()),
        ("Runtime.StreamError", "went wrong")
    );
    assert!(answer.await.unwrap().starts_with("HTTP/1.1 202"));
    assert_eq!(api.shared.take_stream_end().map(|e| e.bytes), Some(11));

    // A caller that reads buffered gets the stream gathered, and its error as the invocation's.
    let api = self::api().await;
    let (reply, _) = handed(&api, "s-2").await;
    let mut conn = start_stream(&api, "s-2", "partial").await;
    let answer = end_stream_with_error(&mut conn, "!").await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    match reply.await.unwrap() {
        Reply::Error { body, error_type } => {
            assert_eq!(error_type, "Runtime.StreamError");
            // The runtime's own error body, as it sent it.
            assert_eq!(
                &body[..],
                br#"{"errorType":"Custom","errorMessage":"went wrong"}"#
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_response_mode_other_than_streaming_is_refused_and_the_invocation_stays_open() {
    let api = api().await;
    let (reply, _) = handed(&api, "m-1").await;
    let bad = post(
        &api,
        "invocation/m-1/response",
        "\r\nLambda-Runtime-Function-Response-Mode: chunky",
        b"{}",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["errorType"], "InvalidFunctionResponseMode");
    let ok = post(&api, "invocation/m-1/response", "", b"{}").await;
    assert_eq!(ok.status, 202);
    assert!(matches!(reply.await.unwrap(), Reply::Response { .. }));
}

/// A gateway that answers with the key a request came as and its body's length (or `too
/// large`), in a body that ends only once `opened` is set; counts the requests it got.
#[derive(Default)]
struct Recording {
    calls: std::sync::atomic::AtomicUsize,
    opened: AtomicBool,
    waiting: std::sync::Mutex<Vec<std::task::Waker>>,
}

impl Recording {
    fn open(&self) {
        self.opened.store(true, Ordering::SeqCst);
        for w in self.waiting.lock().unwrap().drain(..) {
            w.wake();
        }
    }
}

/// A body that sends its text once the gateway is opened.
struct Gated(Arc<Recording>, Option<Bytes>);

impl hyper::body::Body for Gated {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let me = self.get_mut();
        me.0.waiting.lock().unwrap().push(cx.waker().clone());
        if !me.0.opened.load(Ordering::SeqCst) {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(me.1.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.1.as_ref().map_or(0, |b| b.len() as u64))
    }
}

use crate::apis::{API_CALLS_AT_ONCE, Credentials, Gateway, MAX_API_BODY};

impl Gateway for Arc<Recording> {
    fn serve(
        &self,
        req: crate::apis::ApiRequest,
        from: Arc<Credentials>,
    ) -> std::pin::Pin<Box<dyn Future<Output = hyper::Response<ApiBody>> + Send>> {
        let me = self.clone();
        Box::pin(async move {
            me.calls.fetch_add(1, Ordering::SeqCst);
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes().len().to_string(),
                Err(_) => "too large".into(),
            };
            let text = Bytes::from(format!("{} {body}", from.access_key_id));
            hyper::Response::new(Gated(me, Some(text)).boxed_unsync())
        })
    }
}

#[tokio::test]
async fn signed_requests_on_other_paths_go_to_the_gateway_as_the_environment_a_few_at_a_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shared, _inbox) = Shared::new();
    let creds = Arc::new(Credentials::mint("111111111111".into()).unwrap());
    let key = creds.access_key_id.clone();
    let gateway = Arc::new(Recording::default());
    let door = Door::new(creds, Some(Arc::new(gateway.clone())));
    let server = serve(listener, shared, door);

    const SIGNED: &str = "Authorization: AWS4-HMAC-SHA256 Credential=x";
    let head = format!("POST /2015-03-31/functions HTTP/1.1\r\n{SIGNED}\r\nContent-Length: 2");
    let calls: Vec<_> = (0..API_CALLS_AT_ONCE)
        .map(|_| {
            let head = head.clone();
            tokio::spawn(async move { send_to(addr, &head, b"{}").await })
        })
        .collect();
    let all_taken = async {
        while gateway.calls.load(Ordering::SeqCst) < API_CALLS_AT_ONCE {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all_taken)
        .await
        .expect("the gateway got its requests");
    // Until their answers' bodies have been sent, another is refused at once rather than held.
    let refused = send_to(addr, &head, b"{}").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.headers["x-amzn-errortype"],
        "TooManyRequestsException"
    );
    assert_eq!(gateway.calls.load(Ordering::SeqCst), API_CALLS_AT_ONCE);
    gateway.open();
    for call in calls {
        let a = call.await.unwrap();
        assert_eq!(
            (a.status, String::from_utf8(a.body).unwrap()),
            (200, format!("{key} 2"))
        );
    }

    // A body is read up to twice the services' limit, for them to drain what they refuse.
    let head = |len: usize| {
        format!("POST /2015-03-31/functions HTTP/1.1\r\n{SIGNED}\r\nContent-Length: {len}")
    };
    let big = vec![b'x'; 2 * MAX_API_BODY + 1];
    let a = send_to(addr, &head(big.len()), &big).await;
    assert_eq!(
        String::from_utf8(a.body).unwrap(),
        format!("{key} too large")
    );
    let a = send_to(addr, &head(MAX_API_BODY + 1), &big[..MAX_API_BODY + 1]).await;
    assert_eq!(
        String::from_utf8(a.body).unwrap(),
        format!("{key} {}", MAX_API_BODY + 1)
    );
    // Each answer closes its connection: an SDK's idle ones take no runtime's place.
    assert_eq!(a.headers["connection"], "close");
    // Without a signature, another path is not the APIs': `404`.
    let a = send_to(
        addr,
        "PUT /2099-01-01/unknown HTTP/1.1\r\nContent-Length: 3",
        b"abc",
    )
    .await;
    assert_eq!(a.status, 404);
    // The Telemetry API's path is the Telemetry API's, which wants an extension's identifier.
    let a = send_to(
        addr,
        "PUT /2022-07-01/telemetry HTTP/1.1\r\nContent-Length: 3",
        b"abc",
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(gateway.calls.load(Ordering::SeqCst), API_CALLS_AT_ONCE + 2);
    server.abort();
}
