//! Response streaming: a runtime that posts its `/response` with
//! `Lambda-Runtime-Function-Response-Mode: streaming` sends a chunked body whose bytes go to the
//! caller as they come (`InvokeWithResponseStream`, a `RESPONSE_STREAM` function URL), and may
//! end it with the trailers `Lambda-Runtime-Function-Error-Type` and
//! `Lambda-Runtime-Function-Error-Body` (base64) to report an error after its first bytes.
//!
//! The bytes pass through a channel of a few chunks: a runtime that writes faster than its
//! caller reads waits for it, so a stream holds no more of the server's memory than those
//! chunks, whatever its length. A stream is bounded at [`MAX_STREAMED`] bytes and by the
//! invocation's deadline. A caller that goes away stops nothing: the runtime's bytes are read
//! and dropped until it ends, as its invocation runs to its end on Lambda too.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::HeaderMap;
use tokio::sync::{mpsc, oneshot, watch};

/// The longest streamed response (200 MiB, Lambda's bound since 2025).
pub const MAX_STREAMED: u64 = 200 * 1024 * 1024;
/// How long an environment that timed out or exited waits for its stream to end (its own
/// deadline passed, or its connection closed), so that the stream's bytes and error are counted.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);
/// Chunks waiting for the caller, at most.
const WAITING: usize = 8;
/// Chunks already waiting are joined up to this size before they are handed on, so that a
/// runtime writing a byte at a time costs its caller a frame per batch, not per byte.
const JOINED: usize = 64 * 1024;

/// A streamed response, as its caller reads it.
#[derive(Debug)]
pub struct ResponseStream {
    content_type: String,
    chunks: mpsc::Receiver<Bytes>,
    end: oneshot::Receiver<StreamEnd>,
}

/// How a stream ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEnd {
    /// `None` for a stream the runtime ended cleanly.
    pub error: Option<StreamError>,
    /// The bytes the runtime sent.
    pub bytes: u64,
}

/// An error that ended a stream: the runtime's own (its trailers), or the platform's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub error_type: String,
    pub message: String,
    /// The error's body as the runtime sent it (decoded), if it did.
    pub body: Bytes,
}

impl StreamError {
    fn new(error_type: &str, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.to_owned(),
            message: message.into(),
            body: Bytes::new(),
        }
    }
}

impl ResponseStream {
    /// The stream's content type (`application/octet-stream` unless the runtime set one).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The next bytes, with those already waiting behind them joined; `None` at the end.
    pub async fn next(&mut self) -> Option<Bytes> {
        let first = self.chunks.recv().await?;
        if first.len() >= JOINED {
            return Some(first);
        }
        let mut joined: Option<BytesMut> = None;
        while joined.as_ref().map_or(first.len(), BytesMut::len) < JOINED {
            let Ok(more) = self.chunks.try_recv() else {
                break;
            };
            joined
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&more);
        }
        Some(joined.map_or(first, BytesMut::freeze))
    }

    /// How the stream ended, once it has; what is left of it is dropped.
    pub async fn end(self) -> StreamEnd {
        let Self { chunks, end, .. } = self;
        drop(chunks);
        end.await.unwrap_or_else(|_| StreamEnd {
            error: Some(cut_off()),
            bytes: 0,
        })
    }
}

/// Waits until `open` (whether a stream is open) says none is; at once without one.
pub(crate) async fn closed(open: Option<&mut watch::Receiver<bool>>) {
    if let Some(open) = open {
        let _ = open.wait_for(|o| !*o).await;
    }
}

/// [`closed`], for at most [`SETTLE`].
pub(crate) async fn settled(open: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(SETTLE, closed(Some(open))).await;
}

fn cut_off() -> StreamError {
    StreamError::new("Runtime.StreamError", "The response stream was cut off.")
}

/// The two ends of a stream: what the caller reads, and what the Runtime API writes to.
pub(crate) fn channel(content_type: String) -> (ResponseStream, Writer) {
    let (chunks_tx, chunks) = mpsc::channel(WAITING);
    let (end_tx, end) = oneshot::channel();
    let stream = ResponseStream {
        content_type,
        chunks,
        end,
    };
    (
        stream,
        Writer {
            chunks: Some(chunks_tx),
            end: end_tx,
        },
    )
}

/// The Runtime API's end of a stream.
pub(crate) struct Writer {
    chunks: Option<mpsc::Sender<Bytes>>,
    end: oneshot::Sender<StreamEnd>,
}

impl Writer {
    /// Passes `body` on until it ends, its error trailers come, it passes [`MAX_STREAMED`] or
    /// `deadline_ms` passes; tells the caller how it ended, and returns that.
    pub(crate) async fn forward<B>(mut self, body: B, deadline_ms: i64) -> (StreamEnd, Read)
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
    {
        let mut bytes = 0;
        let left = (deadline_ms - lamina_model::now_millis()).max(0) as u64;
        let pass = self.pass(body, &mut bytes);
        let (error, read) =
            match tokio::time::timeout(std::time::Duration::from_millis(left), pass).await {
                Ok(Ok(error)) => (error, Read::Whole),
                Ok(Err(stopped)) => stopped,
                Err(_) => {
                    let e = StreamError::new(
                        "Sandbox.Timedout",
                        "Task timed out while streaming its response.",
                    );
                    (Some(e), Read::Late)
                }
            };
        let end = StreamEnd { error, bytes };
        let _ = self.end.send(end.clone());
        (end, read)
    }

    /// The body passed on: `Ok` with the error its trailers report once it has all been read,
    /// `Err` with why it was not.
    async fn pass<B>(
        &mut self,
        mut body: B,
        bytes: &mut u64,
    ) -> Result<Option<StreamError>, (Option<StreamError>, Read)>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
    {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err((Some(cut_off()), Read::CutOff));
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Some(e) = frame.trailers_ref().and_then(error_of) {
                        return Ok(Some(e));
                    }
                    continue;
                }
            };
            *bytes += data.len() as u64;
            if *bytes > MAX_STREAMED {
                let e = StreamError::new(
                    "Function.ResponseSizeTooLarge",
                    format!(
                        "Response payload size exceeded maximum allowed payload streaming size ({MAX_STREAMED} bytes)."
                    ),
                );
                return Err((Some(e), Read::TooLarge));
            }
            // A caller gone: the rest is read and dropped.
            if let Some(tx) = &self.chunks
                && tx.send(data).await.is_err()
            {
                self.chunks = None;
            }
        }
        Ok(None)
    }
}

/// How much of a stream's body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Whole,
    /// The connection failed first.
    CutOff,
    /// Past [`MAX_STREAMED`].
    TooLarge,
    /// Past the deadline.
    Late,
}

/// The error a stream's trailers report, if any: its type, and its body (base64, usually of a
/// JSON error) decoded, its `errorMessage` if it is one.
pub(crate) fn error_of(trailers: &HeaderMap) -> Option<StreamError> {
    let t = trailers
        .get("lambda-runtime-function-error-type")?
        .to_str()
        .unwrap_or("Runtime.StreamError");
    let body = trailers
        .get("lambda-runtime-function-error-body")
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()
        })
        .unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Error {
        #[serde(rename = "errorMessage")]
        error_message: Option<String>,
    }
    let message = serde_json::from_slice::<Error>(&body)
        .ok()
        .and_then(|e| e.error_message)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let mut e = StreamError::new(crate::outcome::bounded_error_type(t), message);
    e.body = Bytes::from(body);
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `left` frames of one shared MiB.
    struct Mebibytes {
        left: usize,
        chunk: Bytes,
    }

    impl hyper::body::Body for Mebibytes {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            self.left -= 1;
            let data = self.chunk.clone();
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
        }
    }

    fn mebibytes(n: usize) -> Mebibytes {
        Mebibytes {
            left: n,
            chunk: Bytes::from(vec![b'x'; 1 << 20]),
        }
    }

    #[tokio::test]
    async fn a_stream_whose_caller_went_away_is_read_to_its_bound() {
        let deadline = lamina_model::now_millis() + 60_000;
        // The caller reads one chunk and goes: the runtime is not held up, and its stream is
        // still bounded.
        let (mut stream, writer) = channel("application/octet-stream".into());
        let forward = tokio::spawn(writer.forward(mebibytes(300), deadline));
        assert_eq!(stream.next().await.map(|b| b.len()), Some(1 << 20));
        drop(stream);
        let (end, read) = forward.await.unwrap();
        assert_eq!(read, Read::TooLarge);
        assert_eq!(end.bytes, MAX_STREAMED + (1 << 20));
        let error = end.error.expect("past the bound");
        assert_eq!(error.error_type, "Function.ResponseSizeTooLarge");

        // Within the bound, every byte reaches a caller that reads, and the end is clean.
        let (mut stream, writer) = channel("application/octet-stream".into());
        let forward = tokio::spawn(writer.forward(mebibytes(20), deadline));
        let mut read = 0;
        while let Some(b) = stream.next().await {
            read += b.len();
        }
        assert_eq!(read, 20 << 20);
        assert_eq!(
            stream.end().await,
            StreamEnd {
                error: None,
                bytes: 20 << 20
            }
        );
        assert_eq!(
            forward.await.unwrap(),
            (
                StreamEnd {
                    error: None,
                    bytes: 20 << 20
                },
                Read::Whole
            )
        );
    }

    #[tokio::test]
    async fn a_stream_past_its_deadline_ends_as_timed_out() {
        /// A body that never ends.
        struct Silent;
        impl hyper::body::Body for Silent {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>>
            {
                std::task::Poll::Pending
            }
        }
        let (stream, writer) = channel("text/plain".into());
        let (end, read) = writer
            .forward(Silent, lamina_model::now_millis() + 100)
            .await;
        assert_eq!(read, Read::Late);
        assert_eq!(
            end.error.map(|e| e.error_type).as_deref(),
            Some("Sandbox.Timedout")
        );
        assert_eq!(stream.end().await.bytes, 0);
    }
}
