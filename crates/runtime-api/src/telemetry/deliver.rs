//! A subscription's delivery: one task, one batch at a time, over one connection kept alive to
//! the extension's listener in the sandbox's network namespace.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::{Destination, Due, Telemetry};

/// The first pause after a failed connection or request; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// Attempts at a batch over connections that failed (pauses of about 2.6 s in all) before it is
/// dropped.
const MAX_ATTEMPTS: u32 = 8;
/// How long a connection may take to be made.
const CONNECT_LIMIT: Duration = Duration::from_secs(1);
/// What of a listener's answer is read (the rest closes the connection).
const MAX_ANSWER: usize = 64 * 1024;

/// A connection to the listener.
enum Conn {
    Http {
        sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        driver: tokio::task::JoinHandle<()>,
    },
    Tcp(TcpStream),
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Conn::Http { driver, .. } = self {
            driver.abort();
        }
    }
}

/// Why a batch did not go.
enum Failed {
    /// The connection failed: try again.
    Connection(std::io::Error),
    /// The listener answered with an error: the batch is dropped.
    Refused(u16),
}

/// Delivers subscription `id`'s batches until it (or the environment) is gone.
pub(super) async fn run(
    telemetry: Weak<Telemetry>,
    id: u64,
    wake: Arc<Notify>,
    to: Destination,
    netns: Arc<OwnedFd>,
) {
    let mut conn: Option<Conn> = None;
    loop {
        let batch = loop {
            let Some(t) = telemetry.upgrade() else { return };
            let due = t.due(id);
            drop(t);
            match due {
                Due::Now(batch) => break batch,
                Due::At(when) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(when.into()) => {}
                        () = wake.notified() => {}
                    }
                }
                Due::Idle => wake.notified().await,
                Due::Gone => return,
            }
        };
        let body = encode(&batch, &to);
        drop(batch);
        let mut pause = FIRST_PAUSE;
        let mut attempts = 0;
        let delivered = loop {
            // A connection kept from an earlier batch that the listener has closed since is
            // made again at once.
            let kept = conn.is_some();
            match send(&mut conn, &to, &netns, body.clone()).await {
                Ok(()) => break true,
                Err(Failed::Refused(code)) => {
                    tracing::debug!(id, code, "a telemetry listener refused a batch");
                    break false;
                }
                Err(Failed::Connection(e)) => {
                    tracing::debug!(id, error = %e, "a telemetry listener could not be reached");
                    conn = None;
                    if kept {
                        continue;
                    }
                    attempts += 1;
                    if attempts == MAX_ATTEMPTS {
                        break false;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        };
        let Some(t) = telemetry.upgrade() else { return };
        t.sent(id, delivered);
    }
}

/// A batch as the destination takes it: a JSON array, or a line each.
fn encode(batch: &[Bytes], to: &Destination) -> Bytes {
    let size = batch.iter().map(|r| r.len() + 1).sum::<usize>() + 2;
    let mut out = BytesMut::with_capacity(size);
    match to {
        Destination::Http { .. } => {
            out.extend_from_slice(b"[");
            for (i, r) in batch.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",");
                }
                out.extend_from_slice(r);
            }
            out.extend_from_slice(b"]");
        }
        Destination::Tcp { .. } => {
            for r in batch {
                out.extend_from_slice(r);
                out.extend_from_slice(b"\n");
            }
        }
    }
    out.freeze()
}

async fn send(
    conn: &mut Option<Conn>,
    to: &Destination,
    netns: &Arc<OwnedFd>,
    body: Bytes,
) -> Result<(), Failed> {
    if let Some(Conn::Tcp(stream)) = conn {
        let mut byte = [0u8; 1];
        match stream.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // Whatever a listener writes back is not read; its end (or an error) is.
            Ok(n) if n > 0 => {}
            _ => *conn = None,
        }
    }
    let c = match conn {
        Some(c) => c,
        None => {
            let port = match to {
                Destination::Http { port, .. } | Destination::Tcp { port } => *port,
            };
            let stream = connect(netns, port).await.map_err(Failed::Connection)?;
            conn.insert(match to {
                Destination::Http { .. } => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let (sender, driver) = hyper::client::conn::http1::handshake(io)
                        .await
                        .map_err(|e| Failed::Connection(std::io::Error::other(e)))?;
                    Conn::Http {
                        sender,
                        driver: tokio::spawn(async move {
                            let _ = driver.await;
                        }),
                    }
                }
                Destination::Tcp { .. } => Conn::Tcp(stream),
            })
        }
    };
    let lost = |e: hyper::Error| Failed::Connection(std::io::Error::other(e));
    match (c, to) {
        (Conn::Tcp(stream), _) => stream.write_all(&body).await.map_err(Failed::Connection),
        (Conn::Http { sender, .. }, Destination::Http { path, host, .. }) => {
            sender.ready().await.map_err(lost)?;
            let mut req = hyper::Request::post(path.as_str())
                .body(Full::new(body))
                .map_err(|e| Failed::Connection(std::io::Error::other(e)))?;
            let headers = req.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Ok(h) = HeaderValue::from_str(host) {
                headers.insert(HOST, h);
            }
            let answer = sender.send_request(req).await.map_err(lost)?;
            let code = answer.status();
            // Read to its end, so that the connection serves the next batch.
            if Limited::new(answer.into_body(), MAX_ANSWER)
                .collect()
                .await
                .is_err()
            {
                *conn = None;
            }
            if code.is_success() {
                Ok(())
            } else {
                Err(Failed::Refused(code.as_u16()))
            }
        }
        (Conn::Http { .. }, Destination::Tcp { .. }) => unreachable!("made for its destination"),
    }
}

/// A connection to `127.0.0.1:port` in the sandbox's network namespace.
async fn connect(netns: &Arc<OwnedFd>, port: u16) -> std::io::Result<TcpStream> {
    let ns = netns.clone();
    let fd = tokio::task::spawn_blocking(move || socket_in(&ns))
        .await
        .map_err(std::io::Error::other)??;
    let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = tokio::time::timeout(CONNECT_LIMIT, socket.connect(to))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A TCP socket made in the namespace `ns`, by a thread of its own that enters it (a socket
/// stays in the namespace it was made in) and then ends, so no thread of the server's is ever
/// left in a sandbox's namespace.
pub(super) fn socket_in(ns: &OwnedFd) -> std::io::Result<OwnedFd> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns with a namespace descriptor we hold; it moves only this thread,
                // which ends right after.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: socket(2) with constant arguments.
                let fd = unsafe {
                    libc::socket(
                        libc::AF_INET,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                        0,
                    )
                };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: a descriptor just made, owned from here.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the namespace's thread panicked")))
    })
}
