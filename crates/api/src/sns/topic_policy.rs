//! Topic access policies, as far as another account's calls need them: a call from an account
//! other than the topic's owner is allowed only by an `Allow` statement that names that account
//! (or `*`) for the action, on this topic (or `*`), with no condition beyond the caller's own
//! account, and no `Deny` statement that matches. The default policy (owner only) allows no
//! other account.

use lamina_store::TopicRecord;
use serde_json::Value;

/// The policy a topic gets when none is set (as SNS writes it).
pub fn default_policy(arn: &str, owner: &str) -> String {
    serde_json::json!({
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "SNS:GetTopicAttributes",
                "SNS:SetTopicAttributes",
                "SNS:AddPermission",
                "SNS:RemovePermission",
                "SNS:DeleteTopic",
                "SNS:Subscribe",
                "SNS:ListSubscriptionsByTopic",
                "SNS:Publish"
            ],
            "Resource": arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": owner}}
        }]
    })
    .to_string()
}

/// Whether the topic's policy lets `account` (not the owner) perform `SNS:<action>`.
pub fn allows(topic: &TopicRecord, action: &str, account: &str) -> bool {
    let arn = topic.key.arn();
    let policy = topic
        .attributes
        .get("Policy")
        .cloned()
        .unwrap_or_else(|| default_policy(&arn, topic.key.account.as_str()));
    let Ok(doc) = serde_json::from_str::<Value>(&policy) else {
        return false;
    };
    let statements: Vec<&Value> = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => return false,
    };
    let request = Request {
        arn: &arn,
        action,
        account,
    };
    let allowed = statements
        .iter()
        .any(|s| s["Effect"] == "Allow" && request.matches(s, false));
    // What cannot be evaluated here counts against the caller in a Deny: it fails closed.
    let denied = statements
        .iter()
        .any(|s| s["Effect"] != "Allow" && request.matches(s, true));
    allowed && !denied
}

fn one_or_many(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The call a statement is matched against.
struct Request<'a> {
    arn: &'a str,
    action: &'a str,
    account: &'a str,
}

impl Request<'_> {
    /// Whether statement `s` applies; `unknown` is the answer for what cannot be evaluated
    /// (`Not*` elements, conditions on anything but the caller's account).
    fn matches(&self, s: &Value, unknown: bool) -> bool {
        let account = self.account;
        let principal = if s["NotPrincipal"].is_null() {
            match &s["Principal"] {
                Value::String(p) => p == "*",
                p => one_or_many(&p["AWS"]).iter().any(|a| {
                    *a == "*" || *a == account || *a == format!("arn:aws:iam::{account}:root")
                }),
            }
        } else {
            unknown
        };
        let wanted = format!("sns:{}", self.action).to_ascii_lowercase();
        let action = if s["NotAction"].is_null() {
            one_or_many(&s["Action"])
                .iter()
                .any(|a| super::filter::wildcard(&a.to_ascii_lowercase(), &wanted))
        } else {
            unknown
        };
        let resource = if s["NotResource"].is_null() {
            one_or_many(&s["Resource"])
                .iter()
                .any(|r| super::filter::wildcard(r, self.arn))
        } else {
            unknown
        };
        principal && action && resource && conditions_hold(&s["Condition"], account, unknown)
    }
}

/// Only conditions on the caller's account can be checked here; any other is `unknown`.
fn conditions_hold(c: &Value, account: &str, unknown: bool) -> bool {
    let Value::Object(ops) = c else {
        return c.is_null() || unknown;
    };
    ops.iter().all(|(op, keys)| {
        let Value::Object(keys) = keys else {
            return unknown;
        };
        keys.iter().all(|(k, v)| {
            let on_account = k.eq_ignore_ascii_case("AWS:SourceOwner")
                || k.eq_ignore_ascii_case("AWS:SourceAccount");
            if op == "StringEquals" && on_account {
                one_or_many(v).contains(&account)
            } else {
                unknown
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lamina_model::{AccountId, Region};
    use lamina_store::TopicKey;

    use super::*;

    fn topic(policy: Option<Value>) -> TopicRecord {
        let mut attributes = BTreeMap::new();
        if let Some(p) = policy {
            attributes.insert("Policy".to_string(), p.to_string());
        }
        TopicRecord {
            id: 1,
            key: TopicKey {
                account: AccountId::parse("111111111111").unwrap(),
                region: Region::parse("us-east-1").unwrap(),
                name: "t".into(),
            },
            attributes,
            tags: BTreeMap::new(),
            created_ms: 0,
        }
    }

    #[test]
    fn the_default_policy_admits_no_other_account() {
        assert!(!allows(&topic(None), "Publish", "222222222222"));
    }

    #[test]
    fn a_statement_for_the_account_admits_it_for_its_actions_only() {
        let t = topic(Some(serde_json::json!({"Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
            "Action": "sns:Publish",
            "Resource": "arn:aws:sns:us-east-1:111111111111:t"
        }]})));
        assert!(allows(&t, "Publish", "222222222222"));
        assert!(!allows(&t, "Subscribe", "222222222222"));
        assert!(!allows(&t, "Publish", "333333333333"));
    }

    #[test]
    fn wildcards_match_and_a_deny_that_cannot_be_evaluated_denies() {
        let t = topic(Some(serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sns:Pub*", "Resource": "arn:aws:sns:us-east-1:111111111111:*"},
            {"Effect": "Deny", "NotPrincipal": {"AWS": "333333333333"}, "Action": "sns:Subscribe", "Resource": "*"}
        ]})));
        assert!(allows(&t, "Publish", "222222222222"));
        assert!(!allows(&t, "Subscribe", "222222222222"));
        let t = topic(Some(serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "SNS:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "SNS:Publish", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
        ]})));
        assert!(!allows(&t, "Publish", "222222222222"));
    }

    #[test]
    fn deny_wins_and_unknown_conditions_do_not_hold() {
        let t = topic(Some(serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "SNS:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "222222222222"}, "Action": "SNS:Publish", "Resource": "*"}
        ]})));
        assert!(!allows(&t, "Publish", "222222222222"));
        assert!(allows(&t, "Subscribe", "222222222222"));
        let t = topic(Some(serde_json::json!({"Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "SNS:Publish", "Resource": "*",
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::b"}}
        }]})));
        assert!(!allows(&t, "Publish", "222222222222"));
    }
}
