//! `AddPermission` and `RemovePermission`: statements of a topic's access policy written for
//! the caller, as SNS writes them (the policy [`super::topic_policy`] then evaluates).

use axum::response::Response;
use serde_json::{Value, json};

use super::wire::{SnsError, SnsResult};
use super::{Ctx, blocking, not_authorized, topic_for, topic_policy};
use crate::Caller;

/// The actions `AddPermission` may grant (a topic's own).
const GRANTABLE: [&str; 9] = [
    "GetTopicAttributes",
    "SetTopicAttributes",
    "AddPermission",
    "RemovePermission",
    "DeleteTopic",
    "Subscribe",
    "ListSubscriptionsByTopic",
    "Publish",
    "Receive",
];

/// The longest policy a topic keeps (as for `SetTopicAttributes`).
const MAX_POLICY: usize = 30 * 1024;

/// `AddPermission`: a statement `Label` letting `AWSAccountId`s perform `ActionName`s.
pub async fn add(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let label = ctx.params.required("Label")?.to_owned();
    let accounts = ctx.params.list("AWSAccountId")?;
    let actions = ctx.params.list("ActionName")?;
    let topic = topic_for(ctx, caller, arn, "AddPermission").await?;
    check(&label, &accounts, &actions)?;
    change(ctx, caller, "AddPermission", topic, move |policy, arn| {
        grant(policy, arn, &label, &accounts, &actions)
    })
    .await
}

/// `RemovePermission`: the statement `Label` goes (a label the policy does not have changes
/// nothing).
pub async fn remove(ctx: &Ctx<'_>, caller: &Caller) -> SnsResult<Response> {
    let arn = ctx.params.required("TopicArn")?;
    let label = ctx.params.required("Label")?.to_owned();
    let topic = topic_for(ctx, caller, arn, "RemovePermission").await?;
    change(ctx, caller, "RemovePermission", topic, move |policy, _| {
        revoke(policy, &label)
    })
    .await
}

/// Rewrites the topic's policy (its default when none is set) in one transaction, where the
/// caller's right to `action` is checked again (a concurrent change may have revoked it);
/// nothing is written when the edit is refused or changes nothing.
async fn change(
    ctx: &Ctx<'_>,
    caller: &Caller,
    action: &'static str,
    topic: lamina_store::TopicRecord,
    edit: impl FnOnce(&str, &str) -> SnsResult<Option<String>> + Send + 'static,
) -> SnsResult<Response> {
    let store = ctx.state.store.clone();
    let caller = caller.clone();
    blocking(move || {
        let arn = topic.key.arn();
        let mut outcome = Ok(());
        store.update_topic_if(&topic.key, |t| {
            if t.key.account != caller.account
                && !topic_policy::allows(t, action, caller.account.as_str())
            {
                outcome = Err(not_authorized(&caller, action, &arn));
                return Ok(false);
            }
            let policy =
                t.attributes.get("Policy").cloned().unwrap_or_else(|| {
                    topic_policy::default_policy(&arn, topic.key.account.as_str())
                });
            match edit(&policy, &arn) {
                Ok(Some(p)) => {
                    t.attributes.insert("Policy".into(), p);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => {
                    outcome = Err(e);
                    Ok(false)
                }
            }
        })?;
        outcome
    })
    .await?;
    ctx.respond(None)
}

/// Checks what `AddPermission` was given (once the topic is found and the caller may change it).
fn check(label: &str, accounts: &[String], actions: &[String]) -> SnsResult<()> {
    if label.is_empty() {
        return Err(SnsError::invalid_parameter("Label"));
    }
    if accounts.is_empty() || !accounts.iter().all(|a| is_account(a)) {
        return Err(SnsError::invalid_parameter("AWSAccountId"));
    }
    if actions.is_empty() {
        return Err(SnsError::invalid_parameter("ActionName"));
    }
    if !actions.iter().all(|a| GRANTABLE.contains(&a.as_str())) {
        return Err(SnsError::invalid_parameter(
            "Policy statement action out of service scope!",
        ));
    }
    Ok(())
}

fn is_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// The statements of a policy document.
fn statements(doc: &mut Value) -> SnsResult<&mut Vec<Value>> {
    let bad = || SnsError::invalid_parameter("Policy: the topic's policy has no statement list");
    let obj = doc.as_object_mut().ok_or_else(bad)?;
    let list = obj
        .entry("Statement")
        .or_insert_with(|| Value::Array(Vec::new()));
    if list.is_object() {
        *list = Value::Array(vec![list.take()]);
    }
    list.as_array_mut().ok_or_else(bad)
}

fn parse(policy: &str) -> SnsResult<Value> {
    serde_json::from_str(policy)
        .map_err(|_| SnsError::invalid_parameter("Policy: the topic's policy is not JSON"))
}

/// One value, or a list of several (as SNS writes principals and actions).
fn one_or_list(mut items: Vec<String>) -> Value {
    match items.len() {
        1 => Value::String(items.remove(0)),
        _ => items.into_iter().map(Value::String).collect(),
    }
}

/// `policy` with the statement `label` added for the topic `arn`.
fn grant(
    policy: &str,
    arn: &str,
    label: &str,
    accounts: &[String],
    actions: &[String],
) -> SnsResult<Option<String>> {
    let mut doc = parse(policy)?;
    let list = statements(&mut doc)?;
    if list.iter().any(|s| s["Sid"] == label) {
        return Err(SnsError::invalid_parameter("Statement already exists"));
    }
    let principals = accounts.iter().map(|a| format!("arn:aws:iam::{a}:root"));
    list.push(json!({
        "Sid": label,
        "Effect": "Allow",
        "Principal": {"AWS": one_or_list(principals.collect())},
        "Action": one_or_list(actions.iter().map(|a| format!("SNS:{a}")).collect()),
        "Resource": arn,
    }));
    let written = doc.to_string();
    if written.len() > MAX_POLICY {
        return Err(SnsError::invalid_parameter(
            "Policy: the topic's policy would be longer than 30 KB",
        ));
    }
    Ok(Some(written))
}

/// `policy` without the statement `label`; `None` when it has none.
fn revoke(policy: &str, label: &str) -> SnsResult<Option<String>> {
    let mut doc = parse(policy)?;
    let list = statements(&mut doc)?;
    let before = list.len();
    list.retain(|s| s["Sid"] != label);
    Ok((list.len() != before).then(|| doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:sns:us-east-1:111111111111:t";

    fn statements_of(policy: &str) -> Vec<Value> {
        serde_json::from_str::<Value>(policy).unwrap()["Statement"]
            .as_array()
            .unwrap()
            .clone()
    }

    #[test]
    fn a_grant_is_written_as_sns_writes_it_and_revoked_by_its_label() {
        let base = topic_policy::default_policy(ARN, "111111111111");
        let one = grant(
            &base,
            ARN,
            "pub",
            &["222222222222".into()],
            &["Publish".into()],
        )
        .unwrap()
        .unwrap();
        let added = &statements_of(&one)[1];
        assert_eq!(
            *added,
            json!({"Sid": "pub", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                "Action": "SNS:Publish", "Resource": ARN})
        );
        let two = grant(
            &one,
            ARN,
            "two",
            &["222222222222".into(), "333333333333".into()],
            &["Subscribe".into(), "Receive".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            statements_of(&two)[2]["Action"],
            json!(["SNS:Subscribe", "SNS:Receive"])
        );
        let e = grant(
            &two,
            ARN,
            "pub",
            &["222222222222".into()],
            &["Publish".into()],
        );
        assert!(e.unwrap_err().message.contains("Statement already exists"));
        let back = revoke(&two, "two").unwrap().unwrap();
        assert_eq!(statements_of(&back), statements_of(&one));
        assert_eq!(revoke(&back, "nope").unwrap(), None);
    }

    #[test]
    fn bad_input_is_refused_with_sns_words() {
        let ok = |a: &[&str], b: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            let b: Vec<String> = b.iter().map(|s| s.to_string()).collect();
            check("l", &a, &b)
        };
        assert!(ok(&["222222222222"], &["Publish"]).is_ok());
        assert!(ok(&[], &["Publish"]).is_err());
        assert!(ok(&["2222"], &["Publish"]).is_err());
        assert!(ok(&["222222222222"], &[]).is_err());
        let e = ok(&["222222222222"], &["CreateTopic"]).unwrap_err();
        assert!(e.message.contains("out of service scope"), "{}", e.message);
        assert!(check("", &["222222222222".into()], &["Publish".into()]).is_err());
    }
}
