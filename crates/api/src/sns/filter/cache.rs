//! Filter policies parsed once, not for every message: by subscription, with the text and
//! scope each was parsed from, so that a changed policy is parsed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{FilterPolicy, Scope};

/// At most this many bytes of policies are kept, as text and parsed; past it the cache starts
/// again empty.
const MAX_BYTES: usize = 64 << 20;

/// What an entry costs beyond its texts and its parsed policy: the map's slot, the key's and
/// the text's allocations and the reference counts.
const ENTRY_OVERHEAD: usize = 128;

/// One subscription's policy: its text and scope, and what they parse to (`None`: they do not,
/// and the policy lets nothing through).
#[derive(Clone)]
struct Entry {
    text: Arc<str>,
    scope: Scope,
    parsed: Option<Arc<FilterPolicy>>,
    cost: usize,
}

#[derive(Default)]
struct Inner {
    by_subscription: HashMap<Arc<str>, Entry>,
    bytes: usize,
}

/// Parsed filter policies, by subscription ARN.
#[derive(Default)]
pub struct Policies {
    inner: Mutex<Inner>,
}

impl Policies {
    /// The policy `text` of subscription `arn` for `scope`, parsed (`None`: it does not parse).
    pub fn get(&self, arn: &str, text: &str, scope: Scope) -> Option<Arc<FilterPolicy>> {
        // Compared outside the lock: texts are up to 256 KiB, and every publish takes it.
        let cached = self.lock().by_subscription.get(arn).cloned();
        if let Some(e) = cached
            && e.scope == scope
            && *e.text == *text
        {
            return e.parsed;
        }
        // Another publish may parse it too meanwhile, which is only work done twice.
        let parsed = FilterPolicy::parse(text, scope).ok().map(Arc::new);
        // At most 4.25 MiB (`MAX_WEIGHT`, and the text): sixteen such fill the cache.
        let cost =
            ENTRY_OVERHEAD + arn.len() + text.len() + parsed.as_ref().map_or(0, |p| p.weight());
        let mut inner = self.lock();
        if inner.bytes + cost > MAX_BYTES {
            inner.by_subscription.clear();
            inner.bytes = 0;
        }
        let entry = Entry {
            text: text.into(),
            scope,
            parsed: parsed.clone(),
            cost,
        };
        if let Some(old) = inner.by_subscription.insert(arn.into(), entry) {
            inner.bytes -= old.cost;
        }
        inner.bytes += cost;
        parsed
    }

    /// Forgets the policy of subscription `arn` (unsubscribed).
    pub fn forget(&self, arn: &str) {
        let mut inner = self.lock();
        if let Some(old) = inner.by_subscription.remove(arn) {
            inner.bytes -= old.cost;
        }
    }

    /// Forgets the policies of every subscription of topic `topic_arn` (deleted with it).
    pub fn forget_topic(&self, topic_arn: &str) {
        let mut inner = self.lock();
        let mut freed = 0;
        inner.by_subscription.retain(|arn, e| {
            let of_topic = arn
                .strip_prefix(topic_arn)
                .is_some_and(|rest| rest.starts_with(':'));
            if of_topic {
                freed += e.cost;
            }
            !of_topic
        });
        inner.bytes -= freed;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_parsed_again_only_when_it_changes() {
        let cache = Policies::default();
        let a = r#"{"color":["red"]}"#;
        let first = cache.get("arn:1", a, Scope::MessageAttributes).unwrap();
        let again = cache.get("arn:1", a, Scope::MessageAttributes).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same text is parsed once");
        // A changed text or scope is parsed again, and the cache holds the last.
        let b = r#"{"color":["blue"]}"#;
        let changed = cache.get("arn:1", b, Scope::MessageAttributes).unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(
            *changed,
            FilterPolicy::parse(b, Scope::MessageAttributes).unwrap()
        );
        let body = cache.get("arn:1", b, Scope::MessageBody).unwrap();
        assert_eq!(*body, FilterPolicy::parse(b, Scope::MessageBody).unwrap());
        assert_eq!(
            cache.lock().bytes,
            ENTRY_OVERHEAD + "arn:1".len() + b.len() + body.weight()
        );
        // A policy that does not parse lets nothing through, and is remembered so.
        assert!(cache.get("arn:2", "{", Scope::MessageBody).is_none());
        assert!(cache.get("arn:2", "{", Scope::MessageBody).is_none());
    }

    #[test]
    fn the_cache_is_bounded_by_what_its_policies_hold_parsed() {
        let cache = Policies::default();
        let big = format!(r#"{{"k":["{}"]}}"#, "x".repeat(200 * 1024));
        for i in 0..(MAX_BYTES / big.len() + 8) {
            cache
                .get(&format!("arn:{i}"), &big, Scope::MessageAttributes)
                .unwrap();
            assert!(cache.lock().bytes <= MAX_BYTES);
        }
        // A 250 KiB key in the body scope, under 75 alternatives (150 combinations): its
        // conditions would carry the key 75 times, about 19 MB parsed. It is refused, as when
        // it is set, and lets nothing through.
        let key = "k".repeat(250 * 1024);
        let alternatives: Vec<String> = (0..75).map(|i| format!(r#"{{"a":[{i}]}}"#)).collect();
        let heavy = format!(r#"{{"{key}":{{"$or":[{}]}}}}"#, alternatives.join(","));
        let refused = FilterPolicy::parse(&heavy, Scope::MessageBody).unwrap_err();
        assert!(refused.contains("too complex"), "{refused}");
        assert!(cache.get("arn:heavy", &heavy, Scope::MessageBody).is_none());
        // Ten alternatives of it stay within the bound and are kept.
        let lighter = format!(
            r#"{{"{key}":{{"$or":[{}]}}}}"#,
            alternatives[..10].join(",")
        );
        let parsed = cache
            .get("arn:lighter", &lighter, Scope::MessageBody)
            .unwrap();
        assert!(parsed.weight() > 10 * key.len(), "{}", parsed.weight());
        assert!(cache.lock().bytes <= MAX_BYTES);
    }

    #[test]
    fn an_unsubscribed_or_deleted_subscriptions_policy_is_forgotten() {
        let cache = Policies::default();
        let policy = r#"{"k":["v"]}"#;
        let topic = "arn:aws:sns:us-east-1:000000000000:t";
        for arn in [
            format!("{topic}:1"),
            format!("{topic}:2"),
            format!("{topic}2:3"),
        ] {
            cache.get(&arn, policy, Scope::MessageAttributes).unwrap();
        }
        cache.forget(&format!("{topic}:1"));
        assert_eq!(cache.lock().by_subscription.len(), 2);
        // A topic's subscriptions go with it, and those of a topic whose name it begins do not.
        cache.forget_topic(topic);
        let inner = cache.lock();
        let left: Vec<&str> = inner.by_subscription.keys().map(|k| &**k).collect();
        assert_eq!(left, [format!("{topic}2:3")]);
        assert_eq!(
            inner.bytes,
            inner
                .by_subscription
                .values()
                .map(|e| e.cost)
                .sum::<usize>()
        );
    }
}
