//! Subscriptions: Subscribe (with the confirmation handshake for HTTP endpoints),
//! ConfirmSubscription, Unsubscribe, ListSubscriptions(ByTopic), Get/SetSubscriptionAttributes.

use std::collections::BTreeMap;

use axum::response::Response;
use lamina_model::{FunctionRef, now_millis};
use lamina_store::{NewDelivery, NewSubscription, SubscriptionRecord};

use super::wire::{SnsError, SnsResult, leaf, map, members};
use super::{Ctx, blocking, deliver, filter, parse_topic_arn, topic_for, topics};
use crate::Caller;

/// Subscriptions per page.
const PAGE: usize = 100;

/// Attributes a subscription may be given.
const SETTABLE: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

/// Checks a subscription's attributes as a whole (a filter policy against its scope, and what
/// its protocol allows). `reason` prefixes the messages (Subscribe says `Attributes Reason: `).
fn check_attributes(protocol: &str, a: &BTreeMap<String, String>, reason: &str) -> SnsResult<()> {
    let invalid = |what: String| SnsError::invalid_parameter(format!("{reason}{what}"));
    let scope = match a.get("FilterPolicyScope").map(String::as_str) {
        None | Some("MessageAttributes") => filter::Scope::MessageAttributes,
        Some("MessageBody") => filter::Scope::MessageBody,
        Some(other) => {
            return Err(invalid(format!(
                "FilterPolicyScope: Invalid value [{other}]. Please use either MessageBody or MessageAttributes"
            )));
        }
    };
    if let Some(raw) = a.get("RawMessageDelivery") {
        match raw.to_ascii_lowercase().as_str() {
            "false" => {}
            "true" if protocol != "lambda" => {}
            "true" => {
                return Err(SnsError::invalid_parameter(format!(
                    "Delivery protocol [{protocol}] does not support raw message delivery."
                )));
            }
            _ => {
                return Err(invalid(format!(
                    "RawMessageDelivery: Invalid value [{raw}]. Must be true or false."
                )));
            }
        }
    }
    if let Some(p) = a.get("FilterPolicy").filter(|p| !p.is_empty()) {
        filter::FilterPolicy::parse(p, scope).map_err(|why| {
            if why.starts_with("FilterPolicy: ") {
                invalid(why)
            } else {
                SnsError::invalid_parameter(why)
            }
        })?;
    }
    if a.get("RedrivePolicy").is_some_and(|p| !p.is_empty()) {
        return Err(invalid(
            "RedrivePolicy: dead-letter queues are SQS queues, and this server has none. Failed deliveries are counted in lamina_sns_deliveries_failed_total and logged.".into(),
        ));
    }
    if a.get("SubscriptionRoleArn").is_some_and(|p| !p.is_empty()) {
        return Err(invalid(
            "SubscriptionRoleArn: only Firehose subscriptions take a role, and this server has no Firehose.".into(),
        ));
    }
    if a.get("ReplayPolicy").is_some_and(|p| !p.is_empty()) {
        return Err(invalid(
            "ReplayPolicy: message replay needs an archive, which only FIFO topics to SQS have."
                .into(),
        ));
    }
    if let Some(p) = a.get("DeliveryPolicy").filter(|p| !p.is_empty()) {
        if p.len() > 30 * 1024 {
            return Err(invalid("DeliveryPolicy: must be at most 30 KB".into()));
        }
        if protocol == "lambda" {
            return Err(invalid(
                "DeliveryPolicy: delivery policies apply to http and https subscriptions only"
                    .into(),
            ));
        }
        deliver::RetryPolicy::from_delivery_policy(p)
            .map_err(|why| invalid(format!("DeliveryPolicy: {why}")))?;
    }
    Ok(())
}

/// A function endpoint: `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
fn check_function_endpoint(endpoint: &str) -> SnsResult<()> {
    let ok = endpoint.starts_with("arn:aws:lambda:")
        && FunctionRef::parse(endpoint).is_ok_and(|r| r.region.is_some() && r.account.is_some());
    if ok {
        Ok(())
    } else {
        Err(SnsError::invalid_parameter("Lambda endpoint ARN"))
    }
}

/// `Subscribe`.
pub async fn subscribe(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let protocol = ctx.params.required("Protocol")?;
    let endpoint = ctx.params.get("Endpoint").unwrap_or("");
    let attributes = ctx.params.map("Attributes")?;
    let return_arn = ctx.params.flag("ReturnSubscriptionArn")?.unwrap_or(false);
    match protocol {
        "lambda" => check_function_endpoint(endpoint)?,
        "http" | "https" => {
            let scheme = format!("{protocol}://");
            if !endpoint.to_ascii_lowercase().starts_with(&scheme)
                || reqwest::Url::parse(endpoint).is_err()
                || endpoint.len() > 2048
            {
                return Err(SnsError::invalid_parameter(
                    "Endpoint must match the specified protocol",
                ));
            }
            if ctx.state.sns.settings.deny.denies_url(endpoint) {
                return Err(SnsError::invalid_parameter(
                    "Endpoint Reason: this server does not deliver to that network (sns_http_deny)",
                ));
            }
        }
        "email" | "email-json" | "sms" | "sqs" | "application" | "firehose" => {
            return Err(SnsError::invalid_parameter(format!(
                "Lamina delivers to lambda, http and https endpoints only, not to {protocol}"
            )));
        }
        other => {
            return Err(SnsError::invalid_parameter(format!(
                "Amazon SNS does not support this protocol string: {other}"
            )));
        }
    }
    for k in attributes.keys() {
        if !SETTABLE.contains(&k.as_str()) {
            return Err(SnsError::invalid_parameter(format!(
                "Attributes Reason: Unknown attribute {k}"
            )));
        }
    }
    check_attributes(protocol, &attributes, "Attributes Reason: ")?;
    let topic = topic_for(ctx, caller, arn, "Subscribe").await?;
    if topic.attributes.contains_key("FifoTopic") {
        // FIFO topics deliver to SQS queues only, which this server does not have.
        return Err(SnsError::invalid_parameter(format!(
            "Invalid protocol type: {protocol}"
        )));
    }
    let confirmed = protocol == "lambda";
    let mut attributes = attributes;
    if confirmed {
        // Made by a signed call and needing no confirmation: unsubscribing needs a signature too.
        attributes.insert("ConfirmationWasAuthenticated".into(), "true".into());
    }
    let new = NewSubscription {
        arn: format!("{}:{}", topic.key.arn(), uuid::Uuid::new_v4()),
        owner: caller.account.to_string(),
        protocol: protocol.to_owned(),
        endpoint: endpoint.to_owned(),
        attributes: attributes.clone(),
        token: (!confirmed).then(token),
        confirmed,
    };
    let store = ctx.state.store.clone();
    let key = topic.key.clone();
    let (sub, created) = blocking(move || Ok(store.subscribe(&key, &new)?)).await?;
    if !created
        && attributes
            .iter()
            .any(|(k, v)| sub.attributes.get(k).is_none_or(|s| s != v))
    {
        return Err(SnsError::invalid_parameter(
            "Attributes Reason: Subscription already exists with different attributes",
        ));
    }
    if !sub.confirmed && (created || !return_arn) {
        send_confirmation(ctx, &sub).await?;
    }
    let shown = if sub.confirmed || return_arn {
        sub.arn.clone()
    } else {
        "pending confirmation".into()
    };
    ctx.respond(Some(vec![leaf("SubscriptionArn", shown)]))
}

/// A confirmation token: 256 hex digits, unguessable.
fn token() -> String {
    (0..8)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect()
}

/// Queues the `SubscriptionConfirmation` message for a pending HTTP subscription.
async fn send_confirmation(ctx: &Ctx<'_>, sub: &SubscriptionRecord) -> SnsResult<()> {
    let Some(token) = sub.token.clone() else {
        return Ok(());
    };
    let topic_arn = sub.topic.arn();
    let message_id = uuid::Uuid::new_v4().to_string();
    let body = deliver::confirmation_body(
        &ctx.state.sns,
        &topic_arn,
        &message_id,
        &token,
        now_millis(),
    );
    let room = deliver::Reservation::take(&ctx.state.sns, body.len() as u64)?;
    deliver::enqueue(
        ctx.state,
        vec![NewDelivery {
            subscription_id: sub.id,
            kind: "SubscriptionConfirmation".into(),
            message_id,
            body,
            due_ms: now_millis(),
            attempts: 0,
            hops: 0,
        }],
        room,
    )
    .await
}

/// `ConfirmSubscription`, signed or from the link in the confirmation message.
pub async fn confirm(ctx: &Ctx<'_>, caller: Option<&Caller>) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let token = ctx.params.required("Token")?.to_owned();
    // Only a signed confirmation can make unsubscribing need a signature too.
    let authenticate = ctx
        .params
        .flag("AuthenticateOnUnsubscribe")?
        .unwrap_or(false)
        && caller.is_some();
    let key = parse_topic_arn("TopicArn", arn).map_err(|_| SnsError::invalid_parameter("Topic"))?;
    if caller.is_some_and(|c| c.region != key.region) {
        return Err(SnsError::invalid_parameter("Topic"));
    }
    if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SnsError {
            code: "InvalidParameter",
            message: "Invalid token".into(),
            status: axum::http::StatusCode::BAD_REQUEST,
        });
    }
    let store = ctx.state.store.clone();
    let sub = blocking(move || {
        let Some(sub) = store.confirm_subscription(&key, &token)? else {
            return Ok(None);
        };
        if authenticate {
            return Ok(Some(store.update_subscription(&sub.arn, |s| {
                s.attributes
                    .insert("ConfirmationWasAuthenticated".into(), "true".into());
                Ok(())
            })?));
        }
        Ok(Some(sub))
    })
    .await?
    .ok_or_else(|| SnsError::invalid_parameter("Token"))?;
    ctx.respond(Some(vec![leaf("SubscriptionArn", sub.arn)]))
}

/// `Unsubscribe`: by the subscriber, the topic's owner, or the link in a message (unless the
/// subscription was confirmed with `AuthenticateOnUnsubscribe`). An unknown subscription is no
/// error.
pub async fn unsubscribe(ctx: &Ctx<'_>, caller: Option<&Caller>) -> SnsResult<Response> {
    let arn = ctx.params.get("SubscriptionArn").ok_or_else(|| {
        SnsError::invalid_parameter("SubscriptionArn Reason: no value for required parameter")
    })?;
    let parts = arn.split(':').count();
    if parts < 6 {
        return Err(SnsError::invalid_parameter(format!(
            "SubscriptionArn Reason: An ARN must have at least 6 elements, not {parts}"
        )));
    }
    if parts < 7 {
        return Err(SnsError::invalid_parameter("SubscriptionId"));
    }
    let arn = arn.to_owned();
    let store = ctx.state.store.clone();
    let a = arn.clone();
    let Some(sub) = blocking(move || Ok(store.subscription(&a)?)).await? else {
        return ctx.respond(None);
    };
    let allowed = match caller {
        Some(c) => {
            c.account.as_str() == sub.owner
                || (c.account == sub.topic.account && c.region == sub.topic.region)
        }
        None => {
            sub.attributes
                .get("ConfirmationWasAuthenticated")
                .map(String::as_str)
                != Some("true")
        }
    };
    if !allowed {
        let who = caller.map_or_else(
            || "An unauthenticated caller".to_string(),
            |c| format!("User: arn:aws:iam::{}:root", c.account),
        );
        return Err(SnsError::authorization(format!(
            "{who} is not authorized to perform: SNS:Unsubscribe on resource: {arn}"
        )));
    }
    let st = ctx.state.clone();
    // The outbox's count is told on the thread that committed, so that a caller gone meanwhile
    // cannot leave it counting deliveries that went.
    blocking(move || {
        let (_, gone) = st.store.unsubscribe(&arn)?;
        st.sns.release(gone);
        st.sns.policies.forget(&arn);
        Ok(())
    })
    .await?;
    ctx.respond(None)
}

/// `ListSubscriptions` (the caller's) or `ListSubscriptionsByTopic`.
pub async fn list(ctx: &Ctx<'_>, caller: &Caller, by_topic: bool) -> SnsResult<Response> {
    let after = match ctx.params.get("NextToken") {
        None => 0,
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| SnsError::invalid_parameter("NextToken"))?,
    };
    let topic = if by_topic {
        let arn = ctx.params.required("TopicArn")?;
        Some(
            topic_for(ctx, caller, arn, "ListSubscriptionsByTopic")
                .await?
                .key,
        )
    } else {
        None
    };
    let store = ctx.state.store.clone();
    let (account, region) = (caller.account.clone(), caller.region.clone());
    let mut subs = blocking(move || {
        Ok(store.subscriptions(&account, &region, topic.as_ref(), after, PAGE + 1)?)
    })
    .await?;
    let next = (subs.len() > PAGE).then(|| {
        subs.truncate(PAGE);
        subs[PAGE - 1].id.to_string()
    });
    let mut result = vec![members(
        "Subscriptions",
        subs.iter().map(|s| {
            vec![
                leaf(
                    "SubscriptionArn",
                    if s.confirmed {
                        s.arn.as_str()
                    } else {
                        "PendingConfirmation"
                    },
                ),
                leaf("Owner", s.owner.as_str()),
                leaf("Protocol", s.protocol.as_str()),
                leaf("Endpoint", s.endpoint.as_str()),
                leaf("TopicArn", s.topic.arn()),
            ]
        }),
    )];
    if let Some(n) = next {
        result.push(leaf("NextToken", n));
    }
    ctx.respond(Some(result))
}

/// A subscription the caller may see or change: its own, or one to the caller's topic.
async fn owned(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<SubscriptionRecord> {
    let arn = ctx.params.required("SubscriptionArn")?.to_owned();
    let store = ctx.state.store.clone();
    let sub = blocking(move || Ok(store.subscription(&arn)?))
        .await?
        .filter(|s| {
            caller.account.as_str() == s.owner
                || (caller.account == s.topic.account && caller.region == s.topic.region)
        })
        .ok_or_else(|| SnsError::not_found("Subscription does not exist"))?;
    Ok(sub)
}

/// `GetSubscriptionAttributes`.
pub async fn get_attributes(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let sub = owned(ctx, caller).await?;
    let mut a = BTreeMap::from([
        (
            "ConfirmationWasAuthenticated".to_string(),
            "false".to_string(),
        ),
        ("Endpoint".to_string(), sub.endpoint.clone()),
        ("Owner".to_string(), sub.owner.clone()),
        (
            "PendingConfirmation".to_string(),
            (!sub.confirmed).to_string(),
        ),
        ("Protocol".to_string(), sub.protocol.clone()),
        ("RawMessageDelivery".to_string(), "false".to_string()),
        ("SubscriptionArn".to_string(), sub.arn.clone()),
        (
            "SubscriptionPrincipal".to_string(),
            format!("arn:aws:iam::{}:root", sub.owner),
        ),
        ("TopicArn".to_string(), sub.topic.arn()),
    ]);
    if sub.protocol != "lambda" {
        a.insert(
            "EffectiveDeliveryPolicy".into(),
            topics::DEFAULT_EFFECTIVE_DELIVERY_POLICY.into(),
        );
    }
    for (k, v) in &sub.attributes {
        a.insert(k.clone(), v.clone());
    }
    if let Some(p) = sub.attributes.get("DeliveryPolicy") {
        a.insert("EffectiveDeliveryPolicy".into(), p.clone());
    }
    if sub.attributes.contains_key("FilterPolicy")
        && !sub.attributes.contains_key("FilterPolicyScope")
    {
        a.insert("FilterPolicyScope".into(), "MessageAttributes".into());
    }
    ctx.respond(Some(vec![map(
        "Attributes",
        a.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )]))
}

/// `SetSubscriptionAttributes`: one attribute; an empty value removes it.
pub async fn set_attributes(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let name = ctx.params.required("AttributeName")?.to_owned();
    let value = ctx.params.get("AttributeValue").unwrap_or("").to_owned();
    if !SETTABLE.contains(&name.as_str()) {
        return Err(SnsError::invalid_parameter("AttributeName"));
    }
    let sub = owned(ctx, caller).await?;
    let store = ctx.state.store.clone();
    blocking(move || {
        let mut checked = Ok(());
        let updated = store.update_subscription(&sub.arn, |s| {
            if value.is_empty() {
                s.attributes.remove(&name);
            } else {
                s.attributes.insert(name, value);
            }
            checked = check_attributes(&s.protocol, &s.attributes, "");
            if checked.is_err() {
                // Nothing is written: the transaction rolls back.
                return Err(lamina_store::StoreError::Corrupt("refused".into()));
            }
            Ok(())
        });
        checked?;
        updated?;
        Ok(())
    })
    .await?;
    ctx.respond(None)
}
