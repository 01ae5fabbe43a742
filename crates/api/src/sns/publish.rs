//! Publish and PublishBatch: a message is checked, matched against every subscription's filter
//! policy, and made durable before its `MessageId` is returned — as an asynchronous event of each
//! subscribed function (through Lambda's own queue, on behalf of `sns.amazonaws.com`), and as a
//! row of the outbox for each HTTP endpoint and each function delivery that must be retried.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use base64::Engine;
use lamina_model::now_millis;
use lamina_store::{NewDelivery, SubscriptionRecord, TopicRecord};
use serde_json::{Map, Value, json};

use super::filter::{MessageAttribute, Policies, Scope};
use super::wire::{Params, SnsError, SnsResult, leaf, members};
use super::{Ctx, deliver, topic_for};
use crate::lambda::from_service::{self, Refusal};
use crate::{AppState, Caller};

/// The largest message (body and attributes together), bytes.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Message attributes per message.
const MAX_ATTRIBUTES: usize = 10;
/// Entries per `PublishBatch`.
const MAX_BATCH: usize = 10;

/// A checked message, ready to fan out.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub subject: Option<String>,
    /// The message as given (for `MessageStructure=json`, the JSON object of per-protocol
    /// messages).
    pub body: String,
    /// Per-protocol messages (`MessageStructure=json`).
    pub per_protocol: Option<Map<String, Value>>,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub timestamp_ms: i64,
    /// The hops of the invocations its deliveries to functions start (see
    /// `lamina_runtime_api::Invocation::hops`).
    pub hops: u32,
}

impl Message {
    /// The message a protocol receives.
    fn text_for(&self, protocol: &str) -> &str {
        self.per_protocol
            .as_ref()
            .and_then(|m| m.get(protocol).or_else(|| m.get("default")))
            .and_then(Value::as_str)
            .unwrap_or(&self.body)
    }
}

/// Checks one message's parts (shared by Publish and each PublishBatch entry).
fn check(p: &Params, fifo: bool, hops: u32) -> SnsResult<(Message, Option<FifoParts>)> {
    let body = p.get("Message").unwrap_or("");
    if body.is_empty() {
        return Err(SnsError::invalid_parameter("Empty message"));
    }
    let subject = match p.get("Subject") {
        None => None,
        Some(s) => {
            let ok = !s.is_empty()
                && s.chars().count() < 100
                && s.chars().all(|c| !c.is_control())
                && s.chars().next().is_some_and(|c| !c.is_whitespace());
            if !ok {
                return Err(SnsError::invalid_parameter("Subject"));
            }
            Some(s.to_owned())
        }
    };
    let attributes = message_attributes(p)?;
    let size = body.len()
        + attributes
            .iter()
            .map(|(k, a)| k.len() + a.data_type.len() + a.value.len())
            .sum::<usize>();
    if size > MAX_MESSAGE_BYTES {
        return Err(SnsError::invalid_parameter("Message too long"));
    }
    let per_protocol = match p.get("MessageStructure") {
        None => None,
        Some("json") => {
            let parsed: Value = serde_json::from_str(body).map_err(|_| {
                SnsError::invalid_parameter("Message Structure - JSON message body failed to parse")
            })?;
            let Value::Object(m) = parsed else {
                return Err(SnsError::invalid_parameter(
                    "Message Structure - JSON message body failed to parse",
                ));
            };
            if !m.get("default").is_some_and(Value::is_string) {
                return Err(SnsError::invalid_parameter(
                    "Message Structure - No default entry in JSON message body",
                ));
            }
            Some(m)
        }
        Some(_) => {
            return Err(SnsError::invalid_parameter(
                "MessageStructure Reason: the only structure is json",
            ));
        }
    };
    let group = p.get("MessageGroupId");
    let dedup = p.get("MessageDeduplicationId");
    let fifo_parts = if fifo {
        let Some(group) = group else {
            return Err(SnsError::invalid_parameter(
                "The MessageGroupId parameter is required for FIFO topics",
            ));
        };
        for (name, v) in [
            ("MessageGroupId", Some(group)),
            ("MessageDeduplicationId", dedup),
        ] {
            if let Some(v) = v
                && (v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(SnsError::invalid_parameter(format!(
                    "{name} Reason: must be 1 to 128 printable ASCII characters"
                )));
            }
        }
        Some(FifoParts {
            dedup: dedup.map(str::to_owned),
        })
    } else {
        for (name, v) in [("MessageGroupId", group), ("MessageDeduplicationId", dedup)] {
            if v.is_some() {
                return Err(SnsError::invalid_parameter(format!(
                    "{name} Reason: The request includes {name} parameter that is not valid for this topic type"
                )));
            }
        }
        None
    };
    Ok((
        Message {
            id: uuid::Uuid::new_v4().to_string(),
            subject,
            body: body.to_owned(),
            per_protocol,
            attributes,
            timestamp_ms: now_millis(),
            hops,
        },
        fifo_parts,
    ))
}

/// What a FIFO message carries besides the message.
struct FifoParts {
    dedup: Option<String>,
}

/// `MessageAttributes.entry.N.{Name, Value.DataType, Value.StringValue, Value.BinaryValue}`.
fn message_attributes(p: &Params) -> SnsResult<BTreeMap<String, MessageAttribute>> {
    let mut out = BTreeMap::new();
    for e in p.indexed("MessageAttributes.entry")? {
        let name = e
            .get("Name")
            .ok_or_else(|| SnsError::missing("MessageAttributes.entry.Name"))?;
        check_attribute_name(name)?;
        let data_type = e.get("Value.DataType").ok_or_else(|| {
            SnsError::validation(format!(
                "1 validation error detected: Value null at 'messageAttributes.{name}.member.dataType' failed to satisfy constraint: Member must not be null"
            ))
        })?;
        let (base, custom) = data_type.split_once('.').unwrap_or((data_type, "x"));
        if !matches!(base, "String" | "Number" | "Binary")
            || custom.is_empty()
            || data_type.len() > 256
        {
            return Err(SnsError::parameter_value_invalid(format!(
                "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
            )));
        }
        let (string, binary) = (e.get("Value.StringValue"), e.get("Value.BinaryValue"));
        let wrong_field = |field: &str| {
            SnsError::parameter_value_invalid(format!(
                "The message attribute '{name}' with type '{base}' must use field '{field}'."
            ))
        };
        let value = match (base, string, binary) {
            ("Binary", Some(_), None) => return Err(wrong_field("Binary")),
            ("Binary", _, b) => b.unwrap_or(""),
            (_, None, Some(_)) => return Err(wrong_field("String")),
            (_, s, _) => s.unwrap_or(""),
        };
        if value.is_empty() {
            return Err(SnsError::parameter_value_invalid(format!(
                "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{base}'."
            )));
        }
        match base {
            "Number" if value.trim().parse::<f64>().map_or(true, |n| !n.is_finite()) => {
                return Err(SnsError::parameter_value_invalid(format!(
                    "Could not cast message attribute '{name}' value to number."
                )));
            }
            "Binary"
                if base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .is_err() =>
            {
                return Err(SnsError::parameter_value_invalid(format!(
                    "The message attribute '{name}' has an invalid binary value: it must be Base64."
                )));
            }
            "String"
                if data_type == "String.Array"
                    && !matches!(serde_json::from_str::<Value>(value), Ok(Value::Array(_))) =>
            {
                return Err(SnsError::parameter_value_invalid(format!(
                    "The message attribute '{name}' with type 'String.Array' has an invalid value: it must be a JSON array."
                )));
            }
            _ => {}
        }
        out.insert(
            name.to_owned(),
            MessageAttribute {
                data_type: data_type.to_owned(),
                value: value.to_owned(),
            },
        );
    }
    if out.len() > MAX_ATTRIBUTES {
        return Err(SnsError::invalid_parameter(format!(
            "MessageAttributes Reason: a message may have at most {MAX_ATTRIBUTES} attributes"
        )));
    }
    Ok(out)
}

/// A message attribute's name, with SNS's messages.
fn check_attribute_name(name: &str) -> SnsResult<()> {
    let bad = |m: String| Err(SnsError::parameter_value_invalid(m));
    if name.len() > 256 {
        return bad("Length of message attribute name must be less than 256 bytes.".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return bad(format!(
            "Invalid non-alphanumeric character '#x{:X}' was found in the message attribute name. Can only include alphanumeric characters, hyphens, underscores, or dots.",
            c as u32
        ));
    }
    if name.is_empty() {
        return bad("The message attribute name must not be empty.".into());
    }
    if name.starts_with('.') {
        return bad("Invalid message attribute name starting with character '.' was found.".into());
    }
    if name.ends_with('.') {
        return bad("Invalid message attribute name ending with character '.' was found.".into());
    }
    if name.contains("..") {
        return bad("Message attribute name can not have successive '.' character.".into());
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return bad(format!(
            "The message attribute name '{name}' starts with a prefix reserved for AWS (AWS. or Amazon.)."
        ));
    }
    Ok(())
}

/// The topic a publish names: `TopicArn` or `TargetArn` (SMS is not sent here).
fn target(p: &Params) -> SnsResult<&str> {
    if p.get("PhoneNumber").is_some() {
        return Err(SnsError::invalid_parameter(
            "PhoneNumber Reason: this server does not send SMS",
        ));
    }
    match (p.get("TopicArn"), p.get("TargetArn")) {
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (Some(_), Some(_)) => Err(SnsError::invalid_parameter(
            "TopicArn or TargetArn Reason: Only one of TopicArn and TargetArn may be given",
        )),
        (None, None) => Err(SnsError::invalid_parameter(
            "TopicArn or TargetArn Reason: Neither was given",
        )),
    }
}

/// `Publish`.
pub async fn publish(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = target(ctx.params)?;
    let topic = topic_for(ctx, caller, arn, "Publish").await?;
    let fifo = topic.attributes.contains_key("FifoTopic");
    // A function's message carries its invocation's hops on, to the functions it reaches.
    let (message, fifo_parts) = check(ctx.params, fifo, caller.invocation_hops())?;
    let published = send(ctx.state, &topic, message, fifo_parts).await?;
    let mut result = vec![leaf("MessageId", published.message_id)];
    if let Some(seq) = published.sequence_number {
        result.push(leaf("SequenceNumber", seq));
    }
    ctx.respond(Some(result))
}

/// `PublishBatch`: up to ten messages, each succeeding or failing on its own.
pub async fn publish_batch(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let entries = ctx.params.members("PublishBatchRequestEntries")?;
    if entries.is_empty() {
        return Err(SnsError::batch(
            "EmptyBatchRequest",
            "The batch request doesn't contain any entries.",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(SnsError::batch(
            "TooManyEntriesInBatchRequest",
            "The batch request contains more entries than permissible.",
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for e in &entries {
        let id = e.get("Id").unwrap_or("");
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SnsError::batch(
                "InvalidBatchEntryId",
                format!(
                    "The Id of a batch entry in the batch request contains an impermissible character: {id}"
                ),
            ));
        }
        if id.len() > 80 {
            return Err(SnsError::batch(
                "InvalidBatchEntryId",
                format!("The Id of a batch entry in the batch request is too long: {id}"),
            ));
        }
        if !ids.insert(id) {
            return Err(SnsError::batch(
                "BatchEntryIdsNotDistinct",
                "Two or more batch entries in the request have the same Id.",
            ));
        }
    }
    let total: usize = entries
        .iter()
        .map(|e| e.get("Message").map_or(0, str::len))
        .sum();
    if total > MAX_MESSAGE_BYTES {
        return Err(SnsError::batch(
            "BatchRequestTooLong",
            "The length of all the messages put together is more than the limit.",
        ));
    }
    let topic = topic_for(ctx, caller, arn, "Publish").await?;
    let fifo = topic.attributes.contains_key("FifoTopic");
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for e in &entries {
        let id = e.get("Id").unwrap_or_default().to_owned();
        let outcome = match check(e, fifo, caller.invocation_hops()) {
            Ok((m, f)) => send(ctx.state, &topic, m, f).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(p) => {
                let mut m = vec![leaf("Id", id), leaf("MessageId", p.message_id)];
                if let Some(s) = p.sequence_number {
                    m.push(leaf("SequenceNumber", s));
                }
                ok.push(m);
            }
            Err(err) => failed.push(vec![
                leaf("Id", id),
                leaf("Code", err.code),
                leaf("Message", err.message.clone()),
                leaf("SenderFault", (!err.status.is_server_error()).to_string()),
            ]),
        }
    }
    ctx.respond(Some(vec![
        members("Successful", ok),
        members("Failed", failed),
    ]))
}

/// What a publish returned.
#[derive(Debug, Clone)]
pub struct Published {
    /// The message's id.
    pub message_id: String,
    /// Its sequence number in a FIFO topic.
    pub sequence_number: Option<String>,
}

/// Publishes for one of Lamina's own services (a function's destination): the message goes to
/// the topic of `topic_arn` if it exists in `account`.
pub async fn publish_from_service(
    state: &Arc<AppState>,
    topic_arn: &str,
    body: String,
    attributes: BTreeMap<String, MessageAttribute>,
    hops: u32,
) -> SnsResult<Published> {
    let key = super::parse_topic_arn("TopicArn", topic_arn)?;
    let store = state.store.clone();
    let topic = super::blocking(move || Ok(store.topic(&key)?))
        .await?
        .ok_or_else(super::no_topic)?;
    if topic.attributes.contains_key("FifoTopic") {
        return Err(SnsError::invalid_parameter(
            "TopicArn Reason: FIFO topics take messages with a MessageGroupId only",
        ));
    }
    let message = Message {
        id: uuid::Uuid::new_v4().to_string(),
        subject: None,
        body,
        per_protocol: None,
        attributes,
        timestamp_ms: now_millis(),
        hops,
    };
    send(state, &topic, message, None).await
}

/// Deduplicates (FIFO), fans out, and returns once every delivery is durable.
async fn send(
    state: &Arc<AppState>,
    topic: &TopicRecord,
    message: Message,
    fifo: Option<FifoParts>,
) -> SnsResult<Published> {
    let topic_arn = topic.key.arn();
    let mut fifo_dedup = None;
    if let Some(f) = fifo {
        let content_based = topic
            .attributes
            .get("ContentBasedDeduplication")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let dedup = match f.dedup {
            Some(d) => d,
            None if content_based => {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(message.body.as_bytes()))
            }
            None => {
                return Err(SnsError::invalid_parameter(
                    "The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                ));
            }
        };
        if let Some(p) = state.sns.fifo_seen(&topic_arn, &dedup) {
            return Ok(p);
        }
        fifo_dedup = Some(dedup);
    }
    let key = topic.key.clone();
    let store = state.store.clone();
    let subs = super::blocking(move || Ok(store.topic_with_subscriptions(&key)?))
        .await?
        .map(|(_, s)| s)
        .unwrap_or_default();
    metrics::counter!("lamina_sns_messages_published_total", "topic" => topic_arn.clone())
        .increment(1);
    fan_out(
        state,
        &topic_arn,
        topic.key.account.as_str(),
        subs,
        &message,
    )
    .await?;
    // Remembered once the message is durable: a retry of a failed publish publishes it.
    let sequence_number = fifo_dedup.map(|d| state.sns.fifo_record(&topic_arn, d, &message.id));
    Ok(Published {
        message_id: message.id,
        sequence_number,
    })
}

/// Whether a subscription's filter policy lets the message through.
fn wanted(policies: &Policies, sub: &SubscriptionRecord, message: &Message) -> bool {
    let Some(policy) = sub.attributes.get("FilterPolicy").filter(|p| !p.is_empty()) else {
        return true;
    };
    let scope = match sub.attributes.get("FilterPolicyScope").map(String::as_str) {
        Some("MessageBody") => Scope::MessageBody,
        _ => Scope::MessageAttributes,
    };
    match policies.get(&sub.arn, policy, scope) {
        Some(f) => match scope {
            Scope::MessageAttributes => f.matches_attributes(&message.attributes),
            Scope::MessageBody => f.matches_body(message.text_for(&sub.protocol)),
        },
        // Policies are checked when set; one that no longer parses lets nothing through.
        None => false,
    }
}

async fn fan_out(
    state: &Arc<AppState>,
    topic_arn: &str,
    topic_account: &str,
    subs: Vec<SubscriptionRecord>,
    message: &Message,
) -> SnsResult<()> {
    let mut signatures = Signatures::default();
    let mut outbox = Vec::new();
    let mut to_functions = Vec::new();
    // Room for every delivery that may need the outbox, before any is made durable: a publish
    // refused for want of room has delivered nothing. Taken as each body is made, so that the
    // bodies a publish holds (one per subscriber) are bounded by the outbox's room too.
    let mut room = deliver::Reservation::take(&state.sns, 0)?;
    for sub in subs.iter().filter(|s| s.confirmed) {
        if !wanted(&state.sns.policies, sub, message) {
            metrics::counter!("lamina_sns_messages_filtered_total", "topic" => topic_arn.to_owned())
                .increment(1);
            continue;
        }
        if sub.protocol == "lambda" {
            let body = lambda_event(state, topic_arn, sub, message, &mut signatures);
            room.grow(body.len() as u64)?;
            to_functions.push((sub, body));
        } else {
            let body = http_body(state, topic_arn, sub, message, &mut signatures);
            room.grow(body.len() as u64)?;
            outbox.push(delivery(sub, message, body, 0));
        }
    }
    let source = from_service::Source {
        service: "sns.amazonaws.com",
        arn: topic_arn,
        account: topic_account,
    };
    let mut outcomes = Vec::with_capacity(to_functions.len());
    for chunk in to_functions.chunks(FUNCTIONS_AT_ONCE) {
        let attempts = chunk.iter().map(|(sub, body)| {
            from_service::invoke_async(state, &sub.endpoint, body.clone(), message.hops, source)
        });
        outcomes.extend(futures_util::future::join_all(attempts).await);
    }
    for ((sub, body), outcome) in to_functions.into_iter().zip(outcomes) {
        match outcome {
            Ok(_) => {
                metrics::counter!("lamina_sns_deliveries_total", "topic" => topic_arn.to_owned())
                    .increment(1);
            }
            Err(r) if r.retryable() => {
                metrics::counter!("lamina_sns_delivery_retries_total", "topic" => topic_arn.to_owned())
                    .increment(1);
                outbox.push(delivery(sub, message, body, 1));
            }
            Err(r) => refused(state, topic_arn, topic_account, sub, message, &r).await,
        }
    }
    deliver::enqueue(state, outbox, room).await
}

/// Deliveries to functions a publish makes at once.
const FUNCTIONS_AT_ONCE: usize = 64;

/// Signatures of a message, one per distinct text (they do not depend on the subscription).
#[derive(Default)]
struct Signatures(Vec<(String, String, String)>);

impl Signatures {
    /// The timestamp and signature of `message` with `text`.
    fn of(
        &mut self,
        state: &AppState,
        topic_arn: &str,
        message: &Message,
        text: &str,
    ) -> (String, String) {
        if let Some((_, ts, sig)) = self.0.iter().find(|(t, _, _)| t == text) {
            return (ts.clone(), sig.clone());
        }
        let (ts, sig) = signed_fields(state, topic_arn, message, text);
        self.0.push((text.to_owned(), ts.clone(), sig.clone()));
        (ts, sig)
    }
}

/// A delivery to the outbox, due at once (`attempts`: those already made).
fn delivery(
    sub: &SubscriptionRecord,
    message: &Message,
    body: Vec<u8>,
    attempts: u32,
) -> NewDelivery {
    NewDelivery {
        subscription_id: sub.id,
        kind: "Notification".into(),
        message_id: message.id.clone(),
        body,
        due_ms: now_millis(),
        attempts,
        hops: message.hops,
    }
}

/// A delivery to a function that can never succeed: counted, logged, and said in the function's
/// log.
async fn refused(
    state: &Arc<AppState>,
    topic_arn: &str,
    topic_account: &str,
    sub: &SubscriptionRecord,
    message: &Message,
    r: &Refusal,
) {
    metrics::counter!("lamina_sns_deliveries_failed_total", "topic" => topic_arn.to_owned())
        .increment(1);
    tracing::warn!(topic = %topic_arn, subscription = %sub.arn, message_id = %message.id, "SNS delivery failed: {}", r.message());
    deliver::function_log(
        state,
        topic_account,
        &sub.endpoint,
        &message.id,
        topic_arn,
        r.message(),
    )
    .await;
}

fn unsubscribe_url(state: &AppState, sub: &SubscriptionRecord) -> String {
    format!(
        "{}/?Action=Unsubscribe&SubscriptionArn={}",
        state.sns.settings.public_url, sub.arn
    )
}

/// `{"name": {"Type": ..., "Value": ...}}` (Binary values stay Base64).
fn attributes_json(message: &Message) -> Value {
    Value::Object(
        message
            .attributes
            .iter()
            .map(|(k, a)| (k.clone(), json!({"Type": a.data_type, "Value": a.value})))
            .collect(),
    )
}

fn signed_fields(
    state: &AppState,
    topic_arn: &str,
    message: &Message,
    text: &str,
) -> (String, String) {
    let timestamp = lamina_model::iso8601_millis(message.timestamp_ms);
    let mut fields = vec![("Message", text), ("MessageId", message.id.as_str())];
    if let Some(s) = &message.subject {
        fields.push(("Subject", s));
    }
    fields.push(("Timestamp", &timestamp));
    fields.push(("TopicArn", topic_arn));
    fields.push(("Type", "Notification"));
    let sig = state.sns.sign(&fields);
    (timestamp, sig)
}

/// The event a function receives (one record per invocation).
fn lambda_event(
    state: &AppState,
    topic_arn: &str,
    sub: &SubscriptionRecord,
    message: &Message,
    signatures: &mut Signatures,
) -> Vec<u8> {
    let text = message.text_for("lambda");
    let (timestamp, signature) = signatures.of(state, topic_arn, message, text);
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": sub.arn,
        "Sns": {
            "Type": "Notification",
            "MessageId": message.id,
            "TopicArn": topic_arn,
            "Subject": message.subject,
            "Message": text,
            "Timestamp": timestamp,
            "SignatureVersion": super::signing::SIGNATURE_VERSION,
            "Signature": signature,
            "SigningCertUrl": state.sns.cert_url(),
            "UnsubscribeUrl": unsubscribe_url(state, sub),
            "MessageAttributes": attributes_json(message),
        }
    }]})
    .to_string()
    .into_bytes()
}

/// The body an HTTP endpoint receives: the JSON notification, or the bare message when the
/// subscription asked for raw delivery.
fn http_body(
    state: &AppState,
    topic_arn: &str,
    sub: &SubscriptionRecord,
    message: &Message,
    signatures: &mut Signatures,
) -> Vec<u8> {
    let text = message.text_for(&sub.protocol);
    if sub
        .attributes
        .get("RawMessageDelivery")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return text.as_bytes().to_vec();
    }
    let (timestamp, signature) = signatures.of(state, topic_arn, message, text);
    let mut m = Map::new();
    m.insert("Type".into(), "Notification".into());
    m.insert("MessageId".into(), message.id.clone().into());
    m.insert("TopicArn".into(), topic_arn.into());
    if let Some(s) = &message.subject {
        m.insert("Subject".into(), s.clone().into());
    }
    m.insert("Message".into(), text.into());
    m.insert("Timestamp".into(), timestamp.into());
    m.insert(
        "SignatureVersion".into(),
        super::signing::SIGNATURE_VERSION.into(),
    );
    m.insert("Signature".into(), signature.into());
    m.insert("SigningCertURL".into(), state.sns.cert_url().into());
    m.insert("UnsubscribeURL".into(), unsubscribe_url(state, sub).into());
    if !message.attributes.is_empty() {
        m.insert("MessageAttributes".into(), attributes_json(message));
    }
    Value::Object(m).to_string().into_bytes()
}
