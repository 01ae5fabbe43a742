//! Filter policies parsed once, not for every message: by subscription, with the text and
//! scope each was parsed from, so that a changed policy is parsed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{FilterPolicy, Scope};

/// At most this much policy text is kept parsed; past it the cache starts again empty (a
/// topic's 200 policies of up to 256 KiB each fit).
const MAX_BYTES: usize = 64 << 20;

/// One subscription's policy: its text and scope, and what they parse to (`None`: they do not,
/// and the policy lets nothing through).
struct Entry {
    text: Arc<str>,
    scope: Scope,
    parsed: Option<Arc<FilterPolicy>>,
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
        if let Some(e) = self.lock().by_subscription.get(arn)
            && e.scope == scope
            && *e.text == *text
        {
            return e.parsed.clone();
        }
        // Parsed outside the lock: another publish may parse it too meanwhile, which is only
        // work done twice.
        let parsed = FilterPolicy::parse(text, scope).ok().map(Arc::new);
        let mut inner = self.lock();
        let cost = arn.len() + text.len();
        if inner.bytes + cost > MAX_BYTES {
            inner.by_subscription.clear();
            inner.bytes = 0;
        }
        let entry = Entry {
            text: text.into(),
            scope,
            parsed: parsed.clone(),
        };
        if let Some(old) = inner.by_subscription.insert(arn.into(), entry) {
            inner.bytes -= arn.len() + old.text.len();
        }
        inner.bytes += cost;
        parsed
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
        assert_eq!(cache.lock().bytes, "arn:1".len() + b.len());
        // A policy that does not parse lets nothing through, and is remembered so.
        assert!(cache.get("arn:2", "{", Scope::MessageBody).is_none());
        assert!(cache.get("arn:2", "{", Scope::MessageBody).is_none());
    }

    #[test]
    fn the_cache_is_bounded_by_the_text_it_holds() {
        let cache = Policies::default();
        let big = format!(r#"{{"k":["{}"]}}"#, "x".repeat(200 * 1024));
        for i in 0..(MAX_BYTES / big.len() + 8) {
            cache
                .get(&format!("arn:{i}"), &big, Scope::MessageAttributes)
                .unwrap();
            assert!(cache.lock().bytes <= MAX_BYTES);
        }
    }
}
