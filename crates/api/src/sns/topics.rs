//! Topics: CreateTopic, DeleteTopic, ListTopics, Get/SetTopicAttributes, and tags.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use lamina_store::{StoreError, TopicKey, TopicRecord};

use super::wire::{SnsError, SnsResult, leaf, map, members};
use super::{Ctx, blocking, parse_topic_arn, topic_for, topic_policy};
use crate::{AppState, Caller};

/// Topics per page of `ListTopics`.
const PAGE: usize = 100;
/// Tags per topic.
const MAX_TAGS: usize = 50;

/// The HTTP delivery policy SNS reports when none is set.
pub const DEFAULT_EFFECTIVE_DELIVERY_POLICY: &str = r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#;

/// Attributes a topic may be given (the delivery status logging ones are kept and reported,
/// not acted on).
fn settable(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "DeliveryPolicy",
        "DisplayName",
        "Policy",
        "SignatureVersion",
        "TracingConfig",
        "KmsMasterKeyId",
        "FifoTopic",
        "ContentBasedDeduplication",
        "FifoThroughputScope",
        "ArchivePolicy",
    ];
    const FEEDBACK: &[&str] = &["Application", "Firehose", "HTTP", "Lambda", "SQS"];
    NAMES.contains(&name)
        || FEEDBACK.iter().any(|p| {
            name.strip_prefix(p).is_some_and(|rest| {
                matches!(
                    rest,
                    "SuccessFeedbackRoleArn"
                        | "SuccessFeedbackSampleRate"
                        | "FailureFeedbackRoleArn"
                )
            })
        })
}

/// A topic name: 1–256 of `[A-Za-z0-9_-]`, plus `.fifo` for FIFO topics.
pub fn valid_name(name: &str) -> bool {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    !base.is_empty()
        && name.len() <= 256
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_true(v: &str) -> SnsResult<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SnsError::invalid_parameter(format!(
            "Attributes Reason: {v} is not a valid boolean value"
        ))),
    }
}

/// Checks one attribute's value for a topic that is (or will be) FIFO or not.
fn check_attribute(name: &str, value: &str, fifo: bool) -> SnsResult<()> {
    let bad = |why: &str| SnsError::invalid_parameter(format!("Attributes Reason: {name}: {why}"));
    if value.len() > 30 * 1024 {
        return Err(bad("must be at most 30 KB"));
    }
    match name {
        "DisplayName" if value.chars().count() > 100 => Err(bad("must be at most 100 characters")),
        "Policy" | "DeliveryPolicy" | "ArchivePolicy" if !value.is_empty() => {
            match serde_json::from_str::<serde_json::Value>(value) {
                Ok(serde_json::Value::Object(_)) => Ok(()),
                _ => Err(bad("must be a JSON object")),
            }
        }
        "SignatureVersion" if !matches!(value, "1" | "2") => Err(bad("must be 1 or 2")),
        "TracingConfig" if !matches!(value, "PassThrough" | "Active") => {
            Err(bad("must be PassThrough or Active"))
        }
        "ContentBasedDeduplication" => {
            is_true(value)?;
            if fifo {
                Ok(())
            } else {
                Err(SnsError::invalid_parameter(
                    "Attributes Reason: Content-based deduplication can only be set for FIFO topics",
                ))
            }
        }
        "FifoThroughputScope" | "ArchivePolicy" if !fifo => Err(SnsError::invalid_parameter(
            format!("Attributes Reason: {name} can only be set for FIFO topics"),
        )),
        _ => Ok(()),
    }
}

/// `CreateTopic`.
pub async fn create(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let name = ctx.params.required("Name")?;
    let mut attributes = ctx.params.map("Attributes")?;
    let tags = tags_of(ctx)?;
    if ctx.params.get("DataProtectionPolicy").is_some() {
        return Err(SnsError::invalid_parameter(
            "DataProtectionPolicy: Lamina does not inspect messages for sensitive data",
        ));
    }
    let fifo = match attributes.get("FifoTopic") {
        Some(v) => is_true(v)?,
        None => false,
    };
    if fifo != name.ends_with(".fifo") || !valid_name(name) {
        return Err(SnsError::invalid_parameter("Topic Name"));
    }
    for (k, v) in &attributes {
        if !settable(k) {
            return Err(SnsError::invalid_parameter(format!(
                "Attributes Reason: Unknown attribute {k}"
            )));
        }
        check_attribute(k, v, fifo)?;
    }
    if fifo {
        attributes.insert("FifoTopic".into(), "true".into());
    } else {
        attributes.remove("FifoTopic");
    }
    let key = TopicKey {
        account: caller.account.clone(),
        region: caller.region.clone(),
        name: name.to_owned(),
    };
    let store = ctx.state.store.clone();
    let (given, given_tags) = (attributes.clone(), tags.clone());
    let (topic, created) = blocking(move || {
        let (topic, created) = store.create_topic(&key, &given, &given_tags)?;
        // Made (on the thread that committed it): the series of a namesake deleted lately may
        // be made again, now its.
        if created {
            crate::prometheus::revive(&[("topic", &key.arn())]);
        }
        Ok((topic, created))
    })
    .await?;
    if !created {
        // Idempotent only for the same request.
        if attributes.iter().any(|(k, v)| {
            topic
                .attributes
                .get(k)
                .map_or(v.as_str() != default_of(k), |s| s != v)
        }) {
            return Err(SnsError::invalid_parameter(
                "Attributes Reason: Topic already exists with different attributes",
            ));
        }
        if !tags.is_empty() && tags != topic.tags {
            return Err(SnsError::invalid_parameter(
                "Tags Reason: Topic already exists with different tags",
            ));
        }
    }
    ctx.respond(Some(vec![leaf("TopicArn", topic.key.arn())]))
}

/// The value an attribute has when it was never set.
fn default_of(name: &str) -> &'static str {
    match name {
        "FifoTopic" | "ContentBasedDeduplication" => "false",
        "SignatureVersion" => "1",
        _ => "",
    }
}

fn tags_of(ctx: &Ctx<'_>) -> SnsResult<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for m in ctx.params.members("Tags")? {
        let key = m.get("Key").ok_or_else(|| SnsError::missing("Key"))?;
        let value = m.get("Value").unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(SnsError::invalid_parameter(
                "Tags Reason: a tag key must have 1 to 128 characters and a value at most 256",
            ));
        }
        if key.starts_with("aws:") {
            return Err(SnsError::invalid_parameter(
                "Tags Reason: tag keys may not start with aws:",
            ));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    Ok(tags)
}

fn too_many_tags() -> SnsError {
    SnsError::batch(
        "TagLimitExceeded",
        "Could not complete request: tag quota of per resource exceeded",
    )
}

/// Deletes a topic with its subscriptions and their queued deliveries, whose bytes the outbox's
/// count gives back on the thread that committed (a caller gone meanwhile cannot leave them
/// counted).
async fn delete_topic(state: &Arc<AppState>, key: TopicKey) -> SnsResult<()> {
    let st = state.clone();
    blocking(move || {
        let (existed, gone) = st.store.delete_topic(&key)?;
        st.sns.release(gone);
        if existed {
            let arn = key.arn();
            crate::prometheus::forget(&[("topic", &arn)]);
            st.sns.policies.forget_topic(&arn);
        }
        Ok(())
    })
    .await
}

/// `DeleteTopic`: its subscriptions go with it; a topic that does not exist is no error.
pub async fn delete(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let key = parse_topic_arn("TopicArn", arn)?;
    // Deduplication is kept by the ARN as this server writes it (`arn:aws:`...).
    let canonical = key.arn();
    if key.account == caller.account && key.region == caller.region {
        delete_topic(ctx.state, key).await?;
    } else {
        match topic_for(ctx, caller, arn, "DeleteTopic").await {
            Ok(t) => delete_topic(ctx.state, t.key).await?,
            Err(e) if e.code == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    ctx.state.sns.fifo_forget(&canonical);
    ctx.respond(None)
}

/// `ListTopics`, 100 a page.
pub async fn list(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let after = ctx.params.get("NextToken").map(str::to_owned);
    if after.as_deref().is_some_and(|t| !valid_name(t)) {
        return Err(SnsError::invalid_parameter("NextToken"));
    }
    let store = ctx.state.store.clone();
    let (account, region) = (caller.account.clone(), caller.region.clone());
    let mut topics =
        blocking(move || Ok(store.topics(&account, &region, after.as_deref(), PAGE + 1)?)).await?;
    let next = (topics.len() > PAGE).then(|| {
        topics.truncate(PAGE);
        topics[PAGE - 1].key.name.clone()
    });
    let mut result = vec![members(
        "Topics",
        topics.iter().map(|t| vec![leaf("TopicArn", t.key.arn())]),
    )];
    if let Some(n) = next {
        result.push(leaf("NextToken", n));
    }
    ctx.respond(Some(result))
}

/// Every attribute of a topic, set or default.
async fn attributes_of(ctx: &Ctx<'_>, topic: &TopicRecord) -> SnsResult<BTreeMap<String, String>> {
    let store = ctx.state.store.clone();
    let id = topic.id;
    let (confirmed, pending) = blocking(move || Ok(store.subscription_counts(id)?)).await?;
    let arn = topic.key.arn();
    let mut a = BTreeMap::from([
        ("Owner".to_string(), topic.key.account.to_string()),
        (
            "Policy".to_string(),
            topic_policy::default_policy(&arn, topic.key.account.as_str()),
        ),
        (
            "EffectiveDeliveryPolicy".to_string(),
            DEFAULT_EFFECTIVE_DELIVERY_POLICY.to_string(),
        ),
        ("DisplayName".to_string(), String::new()),
        ("SubscriptionsConfirmed".to_string(), confirmed.to_string()),
        ("SubscriptionsPending".to_string(), pending.to_string()),
        ("SubscriptionsDeleted".to_string(), "0".to_string()),
        ("TopicArn".to_string(), arn),
    ]);
    if topic.attributes.contains_key("FifoTopic") {
        a.insert("ContentBasedDeduplication".into(), "false".into());
    }
    for (k, v) in &topic.attributes {
        a.insert(k.clone(), v.clone());
        if k == "DeliveryPolicy" && !v.is_empty() {
            a.insert("EffectiveDeliveryPolicy".into(), v.clone());
        }
    }
    Ok(a)
}

/// `GetTopicAttributes`.
pub async fn get_attributes(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let topic = topic_for(ctx, caller, arn, "GetTopicAttributes").await?;
    let a = attributes_of(ctx, &topic).await?;
    ctx.respond(Some(vec![map(
        "Attributes",
        a.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )]))
}

/// `SetTopicAttributes`: one attribute; an empty value removes it.
pub async fn set_attributes(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let name = ctx.params.required("AttributeName")?.to_owned();
    let value = ctx.params.get("AttributeValue").unwrap_or("").to_owned();
    if !settable(&name) || name == "FifoTopic" {
        return Err(SnsError::invalid_parameter("AttributeName"));
    }
    let topic = topic_for(ctx, caller, arn, "SetTopicAttributes").await?;
    let fifo = topic.attributes.contains_key("FifoTopic");
    if !value.is_empty() {
        check_attribute(&name, &value, fifo)?;
    }
    let store = ctx.state.store.clone();
    blocking(move || {
        store.update_topic(&topic.key, |t| {
            if value.is_empty() {
                t.attributes.remove(&name);
            } else {
                t.attributes.insert(name, value);
            }
            Ok(())
        })?;
        Ok(())
    })
    .await?;
    ctx.respond(None)
}

/// The topic a tagging call names (tags are only on topics here).
async fn tagged(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<TopicRecord> {
    let arn = ctx.params.required("ResourceArn")?;
    let not_found = || SnsError {
        code: "ResourceNotFound",
        message: "Resource does not exist".into(),
        status: axum::http::StatusCode::NOT_FOUND,
    };
    let key = parse_topic_arn("ResourceArn", arn).map_err(|_| not_found())?;
    if key.account != caller.account || key.region != caller.region {
        return Err(not_found());
    }
    let store = ctx.state.store.clone();
    blocking(move || Ok(store.topic(&key)?))
        .await?
        .ok_or_else(not_found)
}

/// `TagResource`.
pub async fn tag(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let topic = tagged(ctx, caller).await?;
    let tags = tags_of(ctx)?;
    let store = ctx.state.store.clone();
    blocking(move || {
        store
            .update_topic(&topic.key, |t| {
                t.tags.extend(tags);
                if t.tags.len() > MAX_TAGS {
                    return Err(StoreError::Corrupt("tags".into()));
                }
                Ok(())
            })
            .map_err(|e| match e {
                StoreError::Corrupt(_) => too_many_tags(),
                e => e.into(),
            })
    })
    .await?;
    ctx.respond(Some(Vec::new()))
}

/// `UntagResource`.
pub async fn untag(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let topic = tagged(ctx, caller).await?;
    let keys = ctx.params.list("TagKeys")?;
    let store = ctx.state.store.clone();
    blocking(move || {
        store.update_topic(&topic.key, |t| {
            for k in &keys {
                t.tags.remove(k);
            }
            Ok(())
        })?;
        Ok(())
    })
    .await?;
    ctx.respond(Some(Vec::new()))
}

/// `ListTagsForResource`.
pub async fn list_tags(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let topic = tagged(ctx, caller).await?;
    ctx.respond(Some(vec![members(
        "Tags",
        topic
            .tags
            .iter()
            .map(|(k, v)| vec![leaf("Key", k.as_str()), leaf("Value", v.as_str())]),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("orders_v2-x"));
        assert!(valid_name("t.fifo"));
        assert!(!valid_name(".fifo"));
        assert!(!valid_name("a.b"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(257)));
        assert!(valid_name(&"a".repeat(256)));
    }

    #[test]
    fn attributes() {
        assert!(settable("LambdaSuccessFeedbackRoleArn"));
        assert!(!settable("Owner"));
        assert!(check_attribute("Policy", "[]", false).is_err());
        assert!(check_attribute("ContentBasedDeduplication", "true", false).is_err());
        assert!(check_attribute("ContentBasedDeduplication", "true", true).is_ok());
    }
}
