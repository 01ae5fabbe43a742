//! `lamina invoke NAME [--payload JSON|@file] [--log] [--async | --stream]`: a synchronous
//! invocation, an event queued for an asynchronous one, or an invocation whose response is
//! printed as the function streams it (`InvokeWithResponseStream`).

use anyhow::{Context, bail};
use base64::Engine;
use reqwest::Method;

use crate::Client;
use crate::client::label;

/// How to invoke.
#[derive(Debug, Clone, Copy)]
pub enum How {
    /// Wait for the response; `log`: print the invocation's log too.
    Sync { log: bool },
    /// Queue the event and return.
    Async,
    /// Print the response as it streams; `log`: print the invocation's log too.
    Stream { log: bool },
}

pub async fn run(
    client: &Client,
    name: &str,
    payload: Option<&str>,
    how: How,
    json: bool,
) -> anyhow::Result<()> {
    let body = match payload {
        None => b"{}".to_vec(),
        Some(p) => match p.strip_prefix('@') {
            Some(file) => {
                std::fs::read(file).with_context(|| format!("cannot read payload file {file}"))?
            }
            None => p.as_bytes().to_vec(),
        },
    };
    let (kind, log) = match how {
        How::Sync { log } => ("RequestResponse", log),
        How::Async => ("Event", false),
        How::Stream { log } => return stream(client, name, body, log, json).await,
    };
    let mut headers = vec![("x-amz-invocation-type", kind.to_string())];
    if log {
        headers.push(("x-amz-log-type", "Tail".to_string()));
    }
    let reply = client
        .send_with(
            Method::POST,
            &format!("/2015-03-31/functions/{}/invocations", label(name)),
            "",
            body,
            &headers,
        )
        .await?;
    if matches!(how, How::Async) {
        let id = reply
            .headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if json {
            println!(
                "{}",
                serde_json::json!({ "StatusCode": reply.status.as_u16(), "RequestId": id })
            );
        } else {
            println!("queued: request {id}");
        }
        return Ok(());
    }
    let error = reply
        .headers
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let tail = reply
        .headers
        .get("x-amz-log-result")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .map(|b: Vec<u8>| String::from_utf8_lossy(&b).into_owned());
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    if json {
        let payload: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        println!(
            "{}",
            serde_json::json!({ "StatusCode": reply.status.as_u16(), "FunctionError": error, "Payload": payload, "LogResult": tail })
        );
    } else {
        if let Some(t) = &tail {
            eprint!("{t}");
        }
        println!("{text}");
    }
    if let Some(e) = error {
        bail!("the function failed ({e})");
    }
    Ok(())
}

/// `InvokeWithResponseStream`: the payload's chunks written to stdout as they come (with
/// `json`, gathered into one object at the end), the log tail to stderr, and the function's
/// error, if it ended with one.
async fn stream(
    client: &Client,
    name: &str,
    body: Vec<u8>,
    log: bool,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;

    use lamina_api::eventstream::{Decoder, MAX_MESSAGE};

    let mut headers = Vec::new();
    if log {
        headers.push(("x-amz-log-type", "Tail".to_string()));
    }
    let path = format!(
        "/2021-11-15/functions/{}/response-streaming-invocations",
        label(name)
    );
    let mut response = client.lambda_stream(&path, body, &headers).await?;
    let mut decoder = Decoder::new(MAX_MESSAGE);
    let mut gathered = Vec::new();
    let mut out = std::io::stdout();
    let complete = 'read: loop {
        while let Some(m) = decoder.next_message()? {
            match (m.header(":message-type"), m.header(":event-type")) {
                (Some("event"), Some("PayloadChunk")) if json => {
                    gathered.extend_from_slice(&m.payload);
                }
                (Some("event"), Some("PayloadChunk")) => {
                    out.write_all(&m.payload)?;
                    out.flush()?;
                }
                (Some("event"), Some("InvokeComplete")) => {
                    break 'read serde_json::from_slice::<serde_json::Value>(&m.payload)
                        .context("the server sent an InvokeComplete that is not JSON")?;
                }
                (Some("exception" | "error"), _) => bail!(
                    "the stream failed: {}",
                    m.header(":exception-type")
                        .or(m.header(":error-code"))
                        .unwrap_or("an error")
                ),
                _ => {}
            }
        }
        match response
            .chunk()
            .await
            .context("the stream's connection failed")?
        {
            Some(bytes) => decoder.push(&bytes),
            None => bail!("the stream ended before the invocation did"),
        }
    };
    let tail = complete["LogResult"]
        .as_str()
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let error = complete["ErrorCode"].as_str();
    if json {
        let text = String::from_utf8_lossy(&gathered);
        println!(
            "{}",
            serde_json::json!({ "Payload": text, "ErrorCode": error, "ErrorDetails": complete["ErrorDetails"], "LogResult": tail })
        );
    } else if let Some(t) = &tail {
        eprint!("{t}");
    }
    if let Some(e) = error {
        let details = complete["ErrorDetails"].as_str().unwrap_or_default();
        bail!("the function failed ({e}): {details}");
    }
    Ok(())
}
