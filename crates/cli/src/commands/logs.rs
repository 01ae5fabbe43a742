//! `lamina logs NAME [--follow]`: a function's recent log lines, and new ones as they come,
//! through CloudWatch Logs as `aws logs tail` reads it: the function's group (`/aws/lambda/NAME`
//! or its `LoggingConfig.LogGroup`),
//! `FilterLogEvents` for the recent lines, `StartLiveTail` to follow.
//!
//! Recent lines are the last [`RECENT`] of the past week. They are read newest window first
//! ([`WINDOWS_MS`]: the last minute, then the nine before, ...), each window page by page keeping
//! only its last lines, so a busy function costs one small read and a quiet one a few.
//!
//! To follow, the live tail opens first and the recent lines are read after it, so no line falls
//! between the two; a line both show (stored after the session opened, stamped before the read
//! ended) is printed once.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::Client;
use crate::client::ApiFailure;
use lamina_api::eventstream::{Decoder, MAX_MESSAGE, Message};

/// How many recent lines are printed.
const RECENT: usize = 100;
/// How far back each window reaches from now, in order: a minute, ten, an hour, a day, a week.
const WINDOWS_MS: [i64; 5] = [60_000, 600_000, 3_600_000, 86_400_000, 7 * 86_400_000];
/// The server sends an update every second; this long without a byte means the tail is lost.
const IDLE: Duration = Duration::from_secs(60);

/// One log line, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    timestamp: i64,
    log_stream_name: String,
    message: String,
}

impl Event {
    /// An event of `FilterLogEvents` or of a live tail's `sessionResults`.
    fn of(v: &Value) -> Self {
        Self {
            timestamp: v["timestamp"].as_i64().unwrap_or_default(),
            log_stream_name: v["logStreamName"].as_str().unwrap_or_default().to_owned(),
            message: v["message"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// What identifies a line printed twice.
    fn key(&self) -> (String, i64, String) {
        (
            self.log_stream_name.clone(),
            self.timestamp,
            self.message.clone(),
        )
    }
}

/// The function's log group: its `LoggingConfig.LogGroup`, else `/aws/lambda/NAME` (also for a
/// function that is gone, whose lines stay until they expire).
async fn group_of(client: &Client, function: &str) -> String {
    let path = format!(
        "/2015-03-31/functions/{}/configuration",
        crate::client::label(function)
    );
    let custom = match client
        .send(reqwest::Method::GET, &path, "", Vec::new())
        .await
    {
        Ok(reply) => reply
            .json()
            .ok()
            .and_then(|c| c["LoggingConfig"]["LogGroup"].as_str().map(str::to_owned)),
        Err(_) => None,
    };
    custom.unwrap_or_else(|| format!("/aws/lambda/{function}"))
}

pub async fn run(client: &Client, name: &str, follow: bool, json: bool) -> anyhow::Result<()> {
    let function = function_name(name);
    let group = group_of(client, function).await;
    if !follow {
        let events = recent(client, &group, now_ms())
            .await
            .map_err(|e| explain(e, function))?;
        for e in &events {
            if !print(e, json)? {
                break;
            }
        }
        return Ok(());
    }
    tokio::select! {
        r = follow_group(client, &group, function, json) => r,
        // Ctrl-C ends following; it is how a user stops it, so it is no error.
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// The function a name or ARN (`arn:aws:lambda:...:function:NAME[:QUALIFIER]`) names.
fn function_name(name: &str) -> &str {
    match name.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => name,
    }
}

/// A missing group means there is no such function (a function's group exists from its
/// creation, and while it has logs).
fn explain(e: anyhow::Error, function: &str) -> anyhow::Error {
    match e.downcast_ref::<ApiFailure>() {
        Some(f) if f.error_type == "ResourceNotFoundException" => {
            anyhow!("function '{function}' does not exist and has no logs (see `lamina ls`)")
        }
        _ => e.context(format!("cannot read the logs of '{function}'")),
    }
}

/// The last [`RECENT`] lines stamped from a week before `end` to `end`, oldest first.
async fn recent(client: &Client, group: &str, end: i64) -> anyhow::Result<Vec<Event>> {
    let mut found: Vec<Event> = Vec::new();
    let mut upto = end;
    for span in WINDOWS_MS {
        let from = end - span;
        let mut older = last_of(client, group, from, upto, RECENT - found.len()).await?;
        older.append(&mut found);
        found = older;
        if found.len() >= RECENT {
            break;
        }
        // Both ends are inclusive.
        upto = from - 1;
    }
    Ok(found)
}

/// The last `n` lines stamped within `[from, to]`, oldest first, read page by page.
async fn last_of(
    client: &Client,
    group: &str,
    from: i64,
    to: i64,
    n: usize,
) -> anyhow::Result<Vec<Event>> {
    let mut kept = VecDeque::with_capacity(n + 1);
    let mut token: Option<String> = None;
    loop {
        let mut input = json!({ "logGroupName": group, "startTime": from, "endTime": to });
        if let Some(t) = &token {
            input["nextToken"] = json!(t);
        }
        let page = client.logs("FilterLogEvents", &input).await?;
        for e in page["events"].as_array().into_iter().flatten() {
            kept.push_back(Event::of(e));
            if kept.len() > n {
                kept.pop_front();
            }
        }
        match page["nextToken"].as_str() {
            None => return Ok(kept.into()),
            Some(t) if token.as_deref() == Some(t) => {
                bail!("the server answered the same nextToken twice")
            }
            Some(t) => token = Some(t.to_owned()),
        }
    }
}

/// Prints the recent lines, then every new one until the session fails.
async fn follow_group(
    client: &Client,
    group: &str,
    function: &str,
    json: bool,
) -> anyhow::Result<()> {
    let mut tail = LiveTail::open(client, group)
        .await
        .map_err(|e| explain(e, function))?;
    let end = now_ms();
    let mut printed: HashMap<(String, i64, String), usize> = HashMap::new();
    for e in recent(client, group, end)
        .await
        .map_err(|e| explain(e, function))?
    {
        if !print(&e, json)? {
            return Ok(());
        }
        *printed.entry(e.key()).or_default() += 1;
    }
    loop {
        let events = match tail.next().await? {
            Tail::Lines(events) => events,
            Tail::TimedOut => {
                // Sessions last three hours; a new one takes over.
                tail = LiveTail::open(client, group)
                    .await
                    .map_err(|e| explain(e, function))?;
                continue;
            }
        };
        for e in events {
            if e.timestamp <= end
                && let Some(n) = printed.get_mut(&e.key())
                && *n > 0
            {
                *n -= 1;
                continue;
            }
            if !print(&e, json)? {
                return Ok(());
            }
        }
    }
}

/// What a live tail brings next.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    /// The lines of a `sessionUpdate` (none, when nothing new was logged).
    Lines(Vec<Event>),
    /// The session's end after its time (`SessionTimeoutException`).
    TimedOut,
}

/// A `StartLiveTail` session: its response body, read as event-stream messages.
struct LiveTail {
    response: reqwest::Response,
    decoder: Decoder,
}

impl LiveTail {
    /// Opens a session on one group. The server names groups by name or by ARN; the name works
    /// whether or not requests are signed, and needs no account id.
    async fn open(client: &Client, group: &str) -> anyhow::Result<Self> {
        let input = json!({ "logGroupIdentifiers": [group] });
        let response = client.logs_stream("StartLiveTail", &input).await?;
        Ok(Self {
            response,
            decoder: Decoder::new(MAX_MESSAGE),
        })
    }

    /// The next update, or the session's timeout.
    async fn next(&mut self) -> anyhow::Result<Tail> {
        loop {
            while let Some(m) = self.decoder.next_message()? {
                if let Some(update) = session_update(&m)? {
                    return Ok(update);
                }
            }
            let chunk = tokio::time::timeout(IDLE, self.response.chunk())
                .await
                .map_err(|_| anyhow!("the live tail sent nothing for {}s", IDLE.as_secs()))?
                .context("the live tail's connection failed")?;
            match chunk {
                Some(bytes) => self.decoder.push(&bytes),
                None if !self.decoder.is_empty() => {
                    bail!("the live tail's connection ended within a message")
                }
                None => bail!("the server ended the live tail"),
            }
        }
    }
}

/// What a message means to the session: `None` for messages without lines
/// (`initial-response`, `sessionStart`), an error for an exception other than the timeout.
fn session_update(m: &Message) -> anyhow::Result<Option<Tail>> {
    match m.header(":message-type") {
        Some("event") if m.header(":event-type") == Some("sessionUpdate") => {
            let update: Value = serde_json::from_slice(&m.payload)
                .context("the live tail sent an update that is not JSON")?;
            let events = update["sessionResults"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Event::of)
                .collect();
            Ok(Some(Tail::Lines(events)))
        }
        Some("exception") => {
            let kind = m.header(":exception-type").unwrap_or("an exception");
            if kind == "SessionTimeoutException" {
                return Ok(Some(Tail::TimedOut));
            }
            let message = serde_json::from_slice::<Value>(&m.payload)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            bail!("the live tail ended: {kind}: {message}")
        }
        Some("error") => bail!(
            "the live tail failed: {}: {}",
            m.header(":error-code").unwrap_or("an error"),
            m.header(":error-message").unwrap_or_default()
        ),
        _ => Ok(None),
    }
}

/// Prints one line (its message, or the event as JSON); false once stdout is closed (as by
/// `| head`), which ends the command quietly.
fn print(e: &Event, json: bool) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    let written = if json {
        writeln!(out, "{}", serde_json::to_string(e)?)
    } else {
        writeln!(out, "{}", e.message)
    };
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_api::eventstream::Value as Header;

    fn message(headers: &[(&str, &str)], payload: &str) -> Message {
        Message {
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), Header::String(v.to_string())))
                .collect(),
            payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
        }
    }

    #[test]
    fn names_and_arns_name_the_function() {
        assert_eq!(function_name("f"), "f");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:f:live"),
            "f"
        );
        assert_eq!(function_name("000000000000:function:f"), "f");
    }

    #[test]
    fn updates_carry_lines_and_other_messages_do_not() {
        let event = |kind: &str, payload: &str| {
            message(
                &[(":message-type", "event"), (":event-type", kind)],
                payload,
            )
        };
        assert!(
            session_update(&event("initial-response", "{}"))
                .unwrap()
                .is_none()
        );
        assert!(
            session_update(&event("sessionStart", "{}"))
                .unwrap()
                .is_none()
        );
        let update = event(
            "sessionUpdate",
            r#"{"sessionResults":[{"message":"hi","timestamp":5,"logStreamName":"s","ingestionTime":5}]}"#,
        );
        assert_eq!(
            session_update(&update).unwrap(),
            Some(Tail::Lines(vec![Event {
                timestamp: 5,
                log_stream_name: "s".into(),
                message: "hi".into()
            }]))
        );
        let exception = |kind: &str| {
            message(
                &[(":message-type", "exception"), (":exception-type", kind)],
                r#"{"message":"The server is shutting down."}"#,
            )
        };
        assert_eq!(
            session_update(&exception("SessionTimeoutException")).unwrap(),
            Some(Tail::TimedOut)
        );
        let e = session_update(&exception("SessionStreamingException")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the live tail ended: SessionStreamingException: The server is shutting down."
        );
    }

    #[test]
    fn json_lines_name_their_fields_as_cloudwatch_does() {
        let e = Event::of(
            &json!({"timestamp": 7, "logStreamName": "s", "message": "m", "eventId": "1"}),
        );
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"timestamp": 7, "logStreamName": "s", "message": "m"})
        );
    }
}
