//! Where an asynchronous event's outcome goes: the destination record (as Lambda writes it) to a
//! function or an SNS topic, and the original event to the function's dead-letter topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lamina_model::{FunctionRef, Qualifier, now_millis};
use lamina_store::{FunctionKey, NewEvent, QueuedEvent};
use serde_json::{Value, json};

use super::attempt::Response;
use super::{AppState, arn};
use crate::sns::filter::MessageAttribute;

/// The largest record an SNS destination takes (SNS's message limit).
const MAX_TOPIC_RECORD: usize = 262_144;

/// The destination record for an event that ended with `condition`.
pub(crate) fn record(e: &QueuedEvent, condition: &str, last: Option<&Response>) -> Value {
    let invoked = e
        .qualifier
        .as_deref()
        .and_then(|q| Qualifier::parse(q).ok())
        .unwrap_or(Qualifier::Latest);
    let mut record = json!({
        "version": "1.0",
        "timestamp": lamina_model::iso8601_millis(now_millis()),
        "requestContext": {
            "requestId": e.request_id,
            "functionArn": arn(&e.function, Some(&invoked)),
            "condition": condition,
            "approximateInvokeCount": e.attempts + u32::from(condition == "Success"),
        },
        "requestPayload": as_json(&e.payload),
    });
    if let Some(r) = last {
        let mut context = json!({ "statusCode": 200, "executedVersion": r.executed_version });
        if r.function_error {
            context["functionError"] = json!("Unhandled");
        }
        record["responseContext"] = context;
        record["responsePayload"] = as_json(&r.body);
    }
    record
}

fn as_json(b: &[u8]) -> Value {
    serde_json::from_slice::<Value>(b)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
}

/// The record as a new event of the destination function, unless the chain is too long or the
/// record too large.
pub(crate) fn function_event(
    e: &QueuedEvent,
    destination: &str,
    record: &Value,
) -> Option<NewEvent> {
    if e.hops >= super::queue::MAX_HOPS {
        return None;
    }
    let target = FunctionRef::parse(destination).ok()?;
    let function = FunctionKey {
        account: target
            .account
            .clone()
            .unwrap_or_else(|| e.function.account.clone()),
        region: target
            .region
            .clone()
            .unwrap_or_else(|| e.function.region.clone()),
        name: target.name.clone(),
    };
    let payload = record.to_string().into_bytes();
    // A record is an event like any other: no larger than an Event invoke's payload.
    if payload.len() > super::invoke::MAX_EVENT_PAYLOAD {
        return None;
    }
    Some(NewEvent {
        request_id: super::invoke::new_request_id(),
        function,
        qualifier: target.qualifier.map(|q| q.to_string()),
        payload,
        received_ms: now_millis(),
        hops: e.hops + 1,
    })
}

/// Counts a record or event that could not be delivered.
pub(crate) fn failed(e: &QueuedEvent, what: &str) {
    let metric = if what == "dead-letter" {
        "lamina_async_dead_letter_errors_total"
    } else {
        "lamina_async_destination_delivery_failures_total"
    };
    metrics::counter!(metric, crate::prometheus::labels_of(&e.function, &[])).increment(1);
}

/// The attributes of an event sent to a dead-letter topic: `RequestID`, `ErrorCode` and
/// `ErrorMessage`, as Lambda sets them.
pub(crate) fn dead_letter_attributes(
    e: &QueuedEvent,
    condition: &str,
    last: Option<&Response>,
) -> BTreeMap<String, MessageAttribute> {
    let (code, message) = match last {
        Some(r) => {
            let message = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
            ("200", message)
        }
        None => ("429", format!("The event was not processed: {condition}")),
    };
    let attribute = |t: &str, v: String| MessageAttribute {
        data_type: t.into(),
        value: v,
    };
    BTreeMap::from([
        (
            "RequestID".into(),
            attribute("String", e.request_id.clone()),
        ),
        ("ErrorCode".into(), attribute("Number", code.into())),
        (
            "ErrorMessage".into(),
            attribute(
                "String",
                if message.is_empty() {
                    condition.into()
                } else {
                    message
                },
            ),
        ),
    ])
}

/// Publishes to a topic for an event. A full outbox or an internal failure is tried again (five
/// times, 1 s to 16 s apart, while the event stays leased); failures are counted and logged.
pub(crate) async fn to_topic(
    state: &Arc<AppState>,
    e: &QueuedEvent,
    topic: &str,
    body: String,
    attributes: BTreeMap<String, MessageAttribute>,
    what: &str,
) {
    if e.hops >= super::queue::MAX_HOPS || body.len() > MAX_TOPIC_RECORD || body.is_empty() {
        failed(e, what);
        return;
    }
    let mut delay = Duration::from_secs(1);
    loop {
        let sent = crate::sns::publish_from_service(
            state,
            topic,
            body.clone(),
            attributes.clone(),
            e.hops + 1,
        )
        .await;
        match sent {
            Ok(_) => return,
            Err(err) if retryable(&err) && delay <= Duration::from_secs(16) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(err) => {
                tracing::warn!(function = %e.function.name, topic, error = %err.message, "sending an asynchronous event's {what} to its topic failed");
                failed(e, what);
                return;
            }
        }
    }
}

fn retryable(e: &crate::sns::wire::SnsError) -> bool {
    e.status.as_u16() == 429 || e.status.is_server_error()
}
