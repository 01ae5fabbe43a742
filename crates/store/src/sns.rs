//! SNS: topics, subscriptions, and the outbox of deliveries that wait for a retry or go to HTTP
//! endpoints. Attributes and tags are kept as JSON maps of strings; what they mean is the API's
//! business.
//!
//! A delivery acknowledged by `Publish` is either an asynchronous event of its function (see
//! `events.rs`) or a row of `sns_deliveries`, committed before the answer. The deliverer leases
//! due rows (`leased = 1`) and settles them (the row goes, or comes back due later); at start
//! every lease belongs to a process that is gone, and [`Store::release_delivery_leases`] makes
//! those rows due at once. A delivery is therefore attempted at least once, and never lost while
//! its subscription exists.

use std::collections::BTreeMap;

use lamina_model::{AccountId, Region, now_millis};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError};

/// A topic's account, region and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicKey {
    pub account: AccountId,
    pub region: Region,
    pub name: String,
}

impl TopicKey {
    /// `arn:aws:sns:<region>:<account>:<name>`.
    pub fn arn(&self) -> String {
        format!("arn:aws:sns:{}:{}:{}", self.region, self.account, self.name)
    }
}

/// A stored topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub id: i64,
    pub key: TopicKey,
    /// The attributes set on it (defaults are the API's).
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_ms: i64,
}

/// A subscription to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub arn: String,
    /// The subscriber's account.
    pub owner: String,
    pub protocol: String,
    pub endpoint: String,
    pub attributes: BTreeMap<String, String>,
    /// The confirmation token, for endpoints that must confirm.
    pub token: Option<String>,
    pub confirmed: bool,
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub id: i64,
    pub arn: String,
    pub topic: TopicKey,
    pub owner: String,
    pub protocol: String,
    pub endpoint: String,
    pub attributes: BTreeMap<String, String>,
    pub token: Option<String>,
    pub confirmed: bool,
    pub created_ms: i64,
}

/// A delivery to make (or retry) later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub subscription_id: i64,
    /// `Notification` or `SubscriptionConfirmation`.
    pub kind: String,
    pub message_id: String,
    /// What to send: the HTTP body, or the function's event.
    pub body: Vec<u8>,
    pub due_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// How many destination records led to the message (see `events.rs`).
    pub hops: u32,
}

/// A leased delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub subscription: SubscriptionRecord,
    pub kind: String,
    pub message_id: String,
    pub body: Vec<u8>,
    pub attempts: u32,
    pub hops: u32,
    pub created_ms: i64,
}

/// What becomes of a leased delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleDelivery {
    /// Delivered, or given up: the row goes.
    Done(i64),
    /// Due again at `due_ms`, after `attempts` attempts.
    Retry { id: i64, due_ms: i64, attempts: u32 },
}

fn map_of(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored attributes: {e}")))
}

fn json_of(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

fn topic_key(account: &str, region: &str, name: String) -> Result<TopicKey, StoreError> {
    Ok(TopicKey {
        account: AccountId::parse(account)
            .map_err(|e| StoreError::Corrupt(format!("stored account: {}", e.message)))?,
        region: Region::parse(region)
            .map_err(|e| StoreError::Corrupt(format!("stored region: {}", e.message)))?,
        name,
    })
}

/// id, subscription id, kind, message id, body, attempts, hops, created.
type DeliveryRow = (i64, i64, String, String, Vec<u8>, u32, u32, i64);

const TOPIC_COLUMNS: &str = "id, account, region, name, attributes, tags, created_ms";

fn topic_row(r: &Row<'_>) -> rusqlite::Result<(i64, String, String, String, String, String, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn topic_of(
    (id, account, region, name, attributes, tags, created_ms): (
        i64,
        String,
        String,
        String,
        String,
        String,
        i64,
    ),
) -> Result<TopicRecord, StoreError> {
    Ok(TopicRecord {
        id,
        key: topic_key(&account, &region, name)?,
        attributes: map_of(&attributes)?,
        tags: map_of(&tags)?,
        created_ms,
    })
}

const SUB_COLUMNS: &str = "s.id, s.arn, t.account, t.region, t.name, s.owner, s.protocol, s.endpoint, s.attributes, s.token, s.confirmed, s.created_ms";

type SubRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    bool,
    i64,
);

fn sub_row(r: &Row<'_>) -> rusqlite::Result<SubRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
    ))
}

fn sub_of(row: SubRow) -> Result<SubscriptionRecord, StoreError> {
    let (
        id,
        arn,
        account,
        region,
        name,
        owner,
        protocol,
        endpoint,
        attributes,
        token,
        confirmed,
        created_ms,
    ) = row;
    Ok(SubscriptionRecord {
        id,
        arn,
        topic: topic_key(&account, &region, name)?,
        owner,
        protocol,
        endpoint,
        attributes: map_of(&attributes)?,
        token,
        confirmed,
        created_ms,
    })
}

fn find_topic(
    conn: &rusqlite::Connection,
    key: &TopicKey,
) -> Result<Option<TopicRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TOPIC_COLUMNS} FROM sns_topics WHERE account = ?1 AND region = ?2 AND name = ?3"
    ))?
    .query_row(
        params![key.account.as_str(), key.region.as_str(), key.name],
        topic_row,
    )
    .optional()?
    .map(topic_of)
    .transpose()
}

fn find_subscription(
    conn: &rusqlite::Connection,
    arn: &str,
) -> Result<Option<SubscriptionRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {SUB_COLUMNS} FROM sns_subscriptions s JOIN sns_topics t ON t.id = s.topic_id
         WHERE s.arn = ?1"
    ))?
    .query_row(params![arn], sub_row)
    .optional()?
    .map(sub_of)
    .transpose()
}

/// Subscriptions with a filter policy a topic may have, and an account's topics in a region in
/// all (SNS's default quotas): each is matched against every message published to its topic.
pub const FILTER_POLICIES_PER_TOPIC: u64 = 200;
#[cfg(not(test))]
pub const FILTER_POLICIES_PER_ACCOUNT: u64 = 10_000;
/// Three topics' worth here: each subscription is a commit to disk.
#[cfg(test)]
pub const FILTER_POLICIES_PER_ACCOUNT: u64 = 600;

fn has_filter_policy(attributes: &BTreeMap<String, String>) -> bool {
    attributes
        .get("FilterPolicy")
        .is_some_and(|p| !p.is_empty())
}

/// Whether one more subscription with a filter policy fits on topic `topic_id`, named `key`.
fn room_for_filter_policy(
    tx: &rusqlite::Transaction<'_>,
    topic_id: i64,
    key: &TopicKey,
) -> Result<(), StoreError> {
    // As the partial index `sns_subscriptions_filtered` says it, so that both counts read it.
    const WITH_POLICY: &str = "json_extract(s.attributes, '$.FilterPolicy') <> ''";
    let on_topic: i64 = tx.query_row(
        &format!(
            "SELECT COUNT(*) FROM sns_subscriptions s WHERE s.topic_id = ?1 AND {WITH_POLICY}"
        ),
        params![topic_id],
        |r| r.get(0),
    )?;
    if on_topic as u64 >= FILTER_POLICIES_PER_TOPIC {
        return Err(StoreError::FilterPolicyLimit(format!(
            "Filter policy limit exceeded: a topic may have at most {FILTER_POLICIES_PER_TOPIC} subscriptions with a filter policy"
        )));
    }
    let in_account: i64 = tx.query_row(
        &format!(
            "SELECT COUNT(*) FROM sns_subscriptions s JOIN sns_topics t ON t.id = s.topic_id
             WHERE t.account = ?1 AND t.region = ?2 AND {WITH_POLICY}"
        ),
        params![key.account.as_str(), key.region.as_str()],
        |r| r.get(0),
    )?;
    if in_account as u64 >= FILTER_POLICIES_PER_ACCOUNT {
        return Err(StoreError::FilterPolicyLimit(format!(
            "Filter policy limit exceeded: an account's topics in a region may have at most {FILTER_POLICIES_PER_ACCOUNT} subscriptions with a filter policy in all"
        )));
    }
    Ok(())
}

impl Store {
    /// Creates a topic, or returns the one of that name (`false`: it already existed, and the
    /// caller decides whether the request matches it).
    pub fn create_topic(
        &self,
        key: &TopicKey,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
    ) -> Result<(TopicRecord, bool), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(existing) = find_topic(&tx, key)? {
            return Ok((existing, false));
        }
        let now = now_millis();
        tx.execute(
            "INSERT INTO sns_topics (account, region, name, attributes, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.account.as_str(),
                key.region.as_str(),
                key.name,
                json_of(attributes),
                json_of(tags),
                now
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok((
            TopicRecord {
                id,
                key: key.clone(),
                attributes: attributes.clone(),
                tags: tags.clone(),
                created_ms: now,
            },
            true,
        ))
    }

    /// A topic, if it exists.
    pub fn topic(&self, key: &TopicKey) -> Result<Option<TopicRecord>, StoreError> {
        find_topic(&self.conn(), key)
    }

    /// Topics of an account and region by name, after `after`, at most `limit`.
    pub fn topics(
        &self,
        account: &AccountId,
        region: &Region,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TOPIC_COLUMNS} FROM sns_topics WHERE account = ?1 AND region = ?2 AND name > ?3
             ORDER BY name LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![
                account.as_str(),
                region.as_str(),
                after.unwrap_or(""),
                limit as i64
            ],
            topic_row,
        )?;
        rows.map(|r| topic_of(r?)).collect()
    }

    /// Changes a topic's attributes or tags atomically.
    pub fn update_topic(
        &self,
        key: &TopicKey,
        change: impl FnOnce(&mut TopicRecord) -> Result<(), StoreError>,
    ) -> Result<TopicRecord, StoreError> {
        self.update_topic_if(key, |t| change(t).map(|()| true))?
            .ok_or(StoreError::NotFound)
    }

    /// Changes a topic's attributes or tags atomically, if `change` says it changed anything
    /// (nothing is written otherwise); returns the topic as written, if it was.
    pub fn update_topic_if(
        &self,
        key: &TopicKey,
        change: impl FnOnce(&mut TopicRecord) -> Result<bool, StoreError>,
    ) -> Result<Option<TopicRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut topic = find_topic(&tx, key)?.ok_or(StoreError::NotFound)?;
        if !change(&mut topic)? {
            return Ok(None);
        }
        tx.execute(
            "UPDATE sns_topics SET attributes = ?1, tags = ?2 WHERE id = ?3",
            params![json_of(&topic.attributes), json_of(&topic.tags), topic.id],
        )?;
        tx.commit()?;
        Ok(Some(topic))
    }

    /// Deletes a topic with its subscriptions and their pending deliveries; returns whether
    /// there was one, and the bytes of deliveries that went with it.
    pub fn delete_topic(&self, key: &TopicKey) -> Result<(bool, u64), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let bytes: i64 = tx.query_row(
            "SELECT COALESCE(SUM(LENGTH(d.body)), 0) FROM sns_deliveries d
             JOIN sns_subscriptions s ON s.id = d.subscription_id
             JOIN sns_topics t ON t.id = s.topic_id
             WHERE t.account = ?1 AND t.region = ?2 AND t.name = ?3",
            params![key.account.as_str(), key.region.as_str(), key.name],
            |r| r.get(0),
        )?;
        let deleted = tx.execute(
            "DELETE FROM sns_topics WHERE account = ?1 AND region = ?2 AND name = ?3",
            params![key.account.as_str(), key.region.as_str(), key.name],
        )? > 0;
        tx.commit()?;
        Ok((deleted, bytes as u64))
    }

    /// Subscribes to a topic, or returns the subscription of the same protocol and endpoint
    /// (`false`: it already existed).
    pub fn subscribe(
        &self,
        topic: &TopicKey,
        new: &NewSubscription,
    ) -> Result<(SubscriptionRecord, bool), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let t = find_topic(&tx, topic)?.ok_or(StoreError::NotFound)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT arn FROM sns_subscriptions WHERE topic_id = ?1 AND protocol = ?2 AND endpoint = ?3",
                params![t.id, new.protocol, new.endpoint],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(arn) = existing {
            let sub = find_subscription(&tx, &arn)?.ok_or(StoreError::NotFound)?;
            return Ok((sub, false));
        }
        if has_filter_policy(&new.attributes) {
            room_for_filter_policy(&tx, t.id, topic)?;
        }
        tx.execute(
            "INSERT INTO sns_subscriptions (arn, topic_id, owner, protocol, endpoint, attributes, token, confirmed, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                new.arn,
                t.id,
                new.owner,
                new.protocol,
                new.endpoint,
                json_of(&new.attributes),
                new.token,
                new.confirmed,
                now_millis()
            ],
        )?;
        let sub = find_subscription(&tx, &new.arn)?.ok_or(StoreError::NotFound)?;
        tx.commit()?;
        Ok((sub, true))
    }

    /// A subscription by ARN.
    pub fn subscription(&self, arn: &str) -> Result<Option<SubscriptionRecord>, StoreError> {
        find_subscription(&self.conn(), arn)
    }

    /// Changes a subscription's attributes atomically.
    pub fn update_subscription(
        &self,
        arn: &str,
        change: impl FnOnce(&mut SubscriptionRecord) -> Result<(), StoreError>,
    ) -> Result<SubscriptionRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut sub = find_subscription(&tx, arn)?.ok_or(StoreError::NotFound)?;
        let had = has_filter_policy(&sub.attributes);
        change(&mut sub)?;
        if !had && has_filter_policy(&sub.attributes) {
            let topic_id: i64 = tx.query_row(
                "SELECT topic_id FROM sns_subscriptions WHERE id = ?1",
                params![sub.id],
                |r| r.get(0),
            )?;
            room_for_filter_policy(&tx, topic_id, &sub.topic)?;
        }
        tx.execute(
            "UPDATE sns_subscriptions SET attributes = ?1, confirmed = ?2 WHERE id = ?3",
            params![json_of(&sub.attributes), sub.confirmed, sub.id],
        )?;
        tx.commit()?;
        Ok(sub)
    }

    /// Confirms the subscription of a topic that `token` was sent to.
    pub fn confirm_subscription(
        &self,
        topic: &TopicKey,
        token: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let arn: Option<String> = tx
            .query_row(
                "SELECT s.arn FROM sns_subscriptions s JOIN sns_topics t ON t.id = s.topic_id
                 WHERE t.account = ?1 AND t.region = ?2 AND t.name = ?3 AND s.token = ?4",
                params![
                    topic.account.as_str(),
                    topic.region.as_str(),
                    topic.name,
                    token
                ],
                |r| r.get(0),
            )
            .optional()?;
        let Some(arn) = arn else { return Ok(None) };
        tx.execute(
            "UPDATE sns_subscriptions SET confirmed = 1 WHERE arn = ?1",
            params![arn],
        )?;
        let sub = find_subscription(&tx, &arn)?;
        tx.commit()?;
        Ok(sub)
    }

    /// Removes a subscription and its pending deliveries; returns what it was, and the bytes
    /// of deliveries that went with it.
    pub fn unsubscribe(&self, arn: &str) -> Result<(Option<SubscriptionRecord>, u64), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sub = find_subscription(&tx, arn)?;
        let bytes: i64 = tx.query_row(
            "SELECT COALESCE(SUM(LENGTH(d.body)), 0) FROM sns_deliveries d
             JOIN sns_subscriptions s ON s.id = d.subscription_id WHERE s.arn = ?1",
            params![arn],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM sns_subscriptions WHERE arn = ?1", params![arn])?;
        tx.commit()?;
        Ok((sub, bytes as u64))
    }

    /// Subscriptions by id after `after_id`, at most `limit`: those of `topic`, or else those
    /// `owner` made to topics of `region`.
    pub fn subscriptions(
        &self,
        owner: &AccountId,
        region: &Region,
        topic: Option<&TopicKey>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let conn = self.conn();
        let rows: Vec<SubRow> = match topic {
            Some(t) => {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {SUB_COLUMNS} FROM sns_subscriptions s JOIN sns_topics t ON t.id = s.topic_id
                     WHERE t.account = ?1 AND t.region = ?2 AND t.name = ?3 AND s.id > ?4
                     ORDER BY s.id LIMIT ?5"
                ))?;
                stmt.query_map(
                    params![
                        t.account.as_str(),
                        t.region.as_str(),
                        t.name,
                        after_id,
                        limit as i64
                    ],
                    sub_row,
                )?
                .collect::<Result<_, _>>()?
            }
            None => {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {SUB_COLUMNS} FROM sns_subscriptions s JOIN sns_topics t ON t.id = s.topic_id
                     WHERE s.owner = ?1 AND t.region = ?2 AND s.id > ?3 ORDER BY s.id LIMIT ?4"
                ))?;
                stmt.query_map(
                    params![owner.as_str(), region.as_str(), after_id, limit as i64],
                    sub_row,
                )?
                .collect::<Result<_, _>>()?
            }
        };
        rows.into_iter().map(sub_of).collect()
    }

    /// A topic with every one of its subscriptions, for a publish.
    #[allow(clippy::type_complexity)]
    pub fn topic_with_subscriptions(
        &self,
        key: &TopicKey,
    ) -> Result<Option<(TopicRecord, Vec<SubscriptionRecord>)>, StoreError> {
        let conn = self.conn();
        let Some(topic) = find_topic(&conn, key)? else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SUB_COLUMNS} FROM sns_subscriptions s JOIN sns_topics t ON t.id = s.topic_id
             WHERE s.topic_id = ?1 ORDER BY s.id"
        ))?;
        let subs = stmt
            .query_map(params![topic.id], sub_row)?
            .map(|r| sub_of(r?))
            .collect::<Result<_, _>>()?;
        Ok(Some((topic, subs)))
    }

    /// Confirmed and pending subscriptions of a topic.
    pub fn subscription_counts(&self, topic_id: i64) -> Result<(u64, u64), StoreError> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(SUM(confirmed), 0), COALESCE(SUM(1 - confirmed), 0)
             FROM sns_subscriptions WHERE topic_id = ?1",
            params![topic_id],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }
}

mod deliveries;

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn key(name: &str) -> TopicKey {
        TopicKey {
            account: AccountId::parse("000000000000").unwrap(),
            region: Region::parse("us-east-1").unwrap(),
            name: name.into(),
        }
    }

    pub(super) fn sub(arn: &str, endpoint: &str) -> NewSubscription {
        NewSubscription {
            arn: arn.into(),
            owner: "000000000000".into(),
            protocol: "http".into(),
            endpoint: endpoint.into(),
            attributes: BTreeMap::new(),
            token: Some(format!("tok-{arn}")),
            confirmed: false,
        }
    }

    #[test]
    fn filter_policies_are_bounded_per_topic_and_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let with_policy = |arn: String| NewSubscription {
            attributes: BTreeMap::from([("FilterPolicy".into(), r#"{"k":["v"]}"#.into())]),
            ..sub(&arn, &format!("http://x/{arn}"))
        };
        let per_topic = FILTER_POLICIES_PER_TOPIC as usize;
        let topics = FILTER_POLICIES_PER_ACCOUNT as usize / per_topic;
        for t in 0..topics {
            let name = format!("t{t}");
            store
                .create_topic(&key(&name), &BTreeMap::new(), &BTreeMap::new())
                .unwrap();
            for i in 0..per_topic {
                store
                    .subscribe(&key(&name), &with_policy(format!("{t}-{i}")))
                    .unwrap();
            }
            // The topic is full; a subscription without a policy still fits, but cannot take
            // one on.
            let refused = store.subscribe(&key(&name), &with_policy(format!("{t}-x")));
            assert!(
                matches!(&refused, Err(StoreError::FilterPolicyLimit(m)) if m.contains("a topic")),
                "{refused:?}"
            );
            if t == 0 {
                store
                    .subscribe(&key(&name), &sub("plain", "http://x/plain"))
                    .unwrap();
                let set = |policy: &str| {
                    store.update_subscription("plain", |s| {
                        s.attributes.insert("FilterPolicy".into(), policy.into());
                        Ok(())
                    })
                };
                assert!(matches!(set("{}"), Err(StoreError::FilterPolicyLimit(_))));
                // One taken off makes room.
                store
                    .update_subscription("0-0", |s| {
                        s.attributes.remove("FilterPolicy");
                        Ok(())
                    })
                    .unwrap();
                set(r#"{"k":["w"]}"#).unwrap();
                // Changing a policy takes no more room.
                set(r#"{"k":["z"]}"#).unwrap();
            }
        }
        // The account is full in its region: a new topic takes no policy either; another account's
        // does, and so does another region's.
        store
            .create_topic(&key("last"), &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        let refused = store.subscribe(&key("last"), &with_policy("last".into()));
        assert!(
            matches!(&refused, Err(StoreError::FilterPolicyLimit(m)) if m.contains("account")),
            "{refused:?}"
        );
        let other = TopicKey {
            account: AccountId::parse("111111111111").unwrap(),
            ..key("other")
        };
        let elsewhere = TopicKey {
            region: Region::parse("eu-west-1").unwrap(),
            ..key("elsewhere")
        };
        for k in [other, elsewhere] {
            store
                .create_topic(&k, &BTreeMap::new(), &BTreeMap::new())
                .unwrap();
            store.subscribe(&k, &with_policy(k.arn())).unwrap();
        }
    }

    #[test]
    fn topics_subscriptions_and_deliveries_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let attrs = BTreeMap::from([("DisplayName".to_string(), "d".to_string())]);
        let (t, created) = store
            .create_topic(&key("t"), &attrs, &BTreeMap::new())
            .unwrap();
        assert!(created);
        let (again, created) = store
            .create_topic(&key("t"), &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        assert!(!created);
        assert_eq!(again, t);
        let (s, created) = store.subscribe(&key("t"), &sub("a", "http://x/1")).unwrap();
        assert!(created);
        let (same, created) = store.subscribe(&key("t"), &sub("b", "http://x/1")).unwrap();
        assert_eq!((same.arn.as_str(), created), ("a", false));
        assert_eq!(store.subscription_counts(t.id).unwrap(), (0, 1));
        let confirmed = store
            .confirm_subscription(&key("t"), "tok-a")
            .unwrap()
            .unwrap();
        assert!(confirmed.confirmed);
        assert_eq!(store.confirm_subscription(&key("t"), "nope").unwrap(), None);
        store
            .enqueue_deliveries(&[NewDelivery {
                subscription_id: s.id,
                kind: "Notification".into(),
                message_id: "m".into(),
                body: b"hello".to_vec(),
                due_ms: 0,
                attempts: 0,
                hops: 0,
            }])
            .unwrap();
        let leased = store.lease_deliveries(now_millis(), 10).unwrap();
        assert_eq!(leased.len(), 1);
        assert!(store.lease_deliveries(now_millis(), 10).unwrap().is_empty());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.release_delivery_leases().unwrap(), 1);
        let leased = store.lease_deliveries(now_millis(), 10).unwrap();
        assert_eq!(leased[0].body, b"hello");
        assert_eq!(leased[0].subscription.arn, "a");
        assert_eq!(
            store
                .settle_deliveries(&[SettleDelivery::Done(leased[0].id)])
                .unwrap(),
            5
        );
        assert_eq!(
            store
                .settle_deliveries(&[SettleDelivery::Done(leased[0].id)])
                .unwrap(),
            0
        );
        assert_eq!(store.delivery_backlog().unwrap(), (0, 0));
        // Deleting the topic takes its subscriptions and their deliveries with it, and says how
        // many bytes went.
        let again = |sub: i64| NewDelivery {
            subscription_id: sub,
            kind: "Notification".into(),
            message_id: "m".into(),
            body: b"abc".to_vec(),
            due_ms: 0,
            attempts: 0,
            hops: 0,
        };
        assert_eq!(
            store
                .enqueue_deliveries(&[again(s.id), again(9999)])
                .unwrap(),
            3
        );
        assert_eq!(store.delete_topic(&key("t")).unwrap(), (true, 3));
        assert_eq!(store.subscription("a").unwrap(), None);
        assert_eq!(store.delete_topic(&key("t")).unwrap(), (false, 0));
        assert_eq!(store.delivery_backlog().unwrap(), (0, 0));
    }
}
