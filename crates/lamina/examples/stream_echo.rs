//! A Rust function that streams its response with the official `lambda_runtime` crate
//! (`StreamResponse`), used by the integration tests of response streaming: a prelude (status
//! 201, a header), then `first:<rawPath>` and, a moment later, `second`, so that a test sees the
//! first bytes arrive before the function has finished. An event `{"bytes": n}` streams `n`
//! bytes instead, a MiB at a time.

use std::time::Duration;

use lambda_runtime::streaming::{Body, Response, channel};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

/// How long the function waits between its two chunks.
const PAUSE: Duration = Duration::from_millis(1500);

async fn handler(event: LambdaEvent<Value>) -> Result<Response<Body>, Error> {
    let path = event.payload["rawPath"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    let (mut tx, rx) = channel();
    if let Some(mut n) = event.payload["bytes"].as_u64() {
        tokio::spawn(async move {
            let mib = bytes::Bytes::from(vec![b'x'; 1 << 20]);
            while n > 0 {
                let chunk = mib.slice(..n.min(1 << 20) as usize);
                n -= chunk.len() as u64;
                if tx.send_data(chunk).await.is_err() {
                    return;
                }
            }
        });
        return Ok(Response::from(rx));
    }
    tokio::spawn(async move {
        let _ = tx.send_data(format!("first:{path}\n").into()).await;
        tokio::time::sleep(PAUSE).await;
        let _ = tx.send_data("second\n".into()).await;
    });
    let mut resp = Response::from(rx);
    resp.metadata_prelude.status_code = lambda_http::http::StatusCode::CREATED;
    resp.metadata_prelude.headers.insert(
        "x-streamed",
        lambda_http::http::HeaderValue::from_static("yes"),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
