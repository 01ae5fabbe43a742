//! A function URL's streamed response (`InvokeMode: RESPONSE_STREAM`). A runtime that streams
//! with the content type `application/vnd.awslambda.http-integration-response` starts with a
//! prelude, `{"statusCode":…,"headers":{…},"cookies":[…]}` and eight NUL bytes, which becomes the
//! response's status and headers; the rest is the body, passed on as it comes. A stream of any
//! other type is the body itself, with its type. An error reported after the first bytes cuts
//! the response off (its chunked body never ends), so that the client sees it incomplete.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::BytesMut;
use lamina_runtime_api::ResponseStream;

use super::event;

/// The content type of a stream that starts with an HTTP prelude.
const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";
/// The longest prelude read.
const MAX_PRELUDE: usize = 64 * 1024;
/// What ends the prelude.
const DELIMITER: [u8; 8] = [0; 8];

/// The response a stream makes; `Err` when its prelude is not one.
pub(crate) async fn reply(mut s: ResponseStream) -> Result<Response, ()> {
    if s.content_type() != HTTP_INTEGRATION {
        let ct = HeaderValue::from_str(s.content_type())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        let mut resp = Response::new(body_of(s, Bytes::new()));
        resp.headers_mut().insert("content-type", ct);
        return Ok(resp);
    }
    let mut head = BytesMut::new();
    let at = loop {
        let Some(bytes) = s.next().await else {
            // An empty stream is an empty response, unless it ended in an error.
            if head.is_empty() && s.end().await.error.is_none() {
                return Ok(Response::new(Body::empty()));
            }
            return Err(());
        };
        // The delimiter may straddle two chunks.
        let from = head.len().saturating_sub(DELIMITER.len() - 1);
        head.extend_from_slice(&bytes);
        if let Some(i) = head[from..].windows(8).position(|w| w == DELIMITER) {
            break from + i;
        }
        if head.len() > MAX_PRELUDE {
            return Err(());
        }
    };
    let rest = head.split_off(at + DELIMITER.len()).freeze();
    head.truncate(at);
    let mut prelude: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&head).map_err(|_| ())?;
    prelude
        .entry("statusCode")
        .or_insert_with(|| StatusCode::OK.as_u16().into());
    // The prelude is an HTTP API result without a body.
    prelude.remove("body");
    let r = event::reply_v2(serde_json::Value::Object(prelude).to_string().as_bytes())?;
    let mut resp = Response::new(body_of(s, rest));
    *resp.status_mut() = r.status;
    resp.headers_mut().extend(r.headers);
    Ok(resp)
}

/// A body of `first`, then the stream's bytes as they come; cut off if the stream ends with an
/// error.
fn body_of(s: ResponseStream, first: Bytes) -> Body {
    let first = (!first.is_empty()).then_some(first);
    let stream = futures_util::stream::unfold(Some((s, first)), |state| async move {
        let (mut s, first) = state?;
        if let Some(b) = first {
            return Some((Ok(b), Some((s, None))));
        }
        match s.next().await {
            Some(b) => Some((Ok(b), Some((s, None)))),
            None => match s.end().await.error {
                Some(e) => Some((Err(std::io::Error::other(e.message)), None)),
                None => None,
            },
        }
    });
    Body::from_stream(stream)
}
