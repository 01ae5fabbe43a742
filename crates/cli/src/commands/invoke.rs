//! `lamina invoke NAME [--payload JSON|@file] [--log | --async]`: a synchronous invocation, or
//! an event queued for an asynchronous one.

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
