//! The outbox: deliveries queued, leased, settled (see the parent module).

use lamina_model::now_millis;
use rusqlite::{OptionalExtension, params};

use super::{Delivery, DeliveryRow, NewDelivery, SUB_COLUMNS, SettleDelivery, sub_of, sub_row};
use crate::{Store, StoreError};

impl Store {
    /// Queues deliveries in one transaction; those whose subscription is gone are skipped.
    /// Returns the bytes queued.
    pub fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> Result<u64, StoreError> {
        let mut queued = 0u64;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO sns_deliveries (subscription_id, kind, message_id, body, attempts, due_ms, hops, created_ms)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM sns_subscriptions WHERE id = ?1)",
            )?;
            let now = now_millis();
            for d in deliveries {
                let n = stmt.execute(params![
                    d.subscription_id,
                    d.kind,
                    d.message_id,
                    d.body,
                    d.attempts,
                    d.due_ms,
                    d.hops,
                    now
                ])?;
                queued += (n * d.body.len()) as u64;
            }
        }
        tx.commit()?;
        Ok(queued)
    }

    /// Leases up to `limit` deliveries due by `now`, earliest first.
    pub fn lease_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let rows: Vec<DeliveryRow> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, subscription_id, kind, message_id, body, attempts, hops, created_ms
                 FROM sns_deliveries WHERE leased = 0 AND due_ms <= ?1 ORDER BY due_ms LIMIT ?2",
            )?;
            stmt.query_map(params![now, limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?
            .collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (id, sub_id, kind, message_id, body, attempts, hops, created_ms) in rows {
            tx.prepare_cached("UPDATE sns_deliveries SET leased = 1 WHERE id = ?1")?
                .execute(params![id])?;
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {SUB_COLUMNS} FROM sns_subscriptions s JOIN sns_topics t ON t.id = s.topic_id
                     WHERE s.id = ?1"
                ))?
                .query_row(params![sub_id], sub_row)
                .optional()?;
            if let Some(row) = row {
                out.push(Delivery {
                    id,
                    subscription: sub_of(row)?,
                    kind,
                    message_id,
                    body,
                    attempts,
                    hops,
                    created_ms,
                });
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Settles leased deliveries in one transaction; returns the bytes of the rows removed
    /// (rows already gone with their subscription count nothing).
    pub fn settle_deliveries(&self, settled: &[SettleDelivery]) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut removed = 0u64;
        for s in settled {
            match *s {
                SettleDelivery::Done(id) => {
                    let bytes: Option<i64> = tx
                        .prepare_cached(
                            "DELETE FROM sns_deliveries WHERE id = ?1 RETURNING LENGTH(body)",
                        )?
                        .query_row(params![id], |r| r.get(0))
                        .optional()?;
                    removed += bytes.unwrap_or(0) as u64;
                }
                SettleDelivery::Retry {
                    id,
                    due_ms,
                    attempts,
                } => {
                    tx.prepare_cached(
                        "UPDATE sns_deliveries SET leased = 0, due_ms = ?2, attempts = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, due_ms, attempts])?;
                }
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Makes every leased delivery due again (at start: their leases belong to a process that
    /// is gone).
    pub fn release_delivery_leases(&self) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("UPDATE sns_deliveries SET leased = 0 WHERE leased = 1", [])?)
    }

    /// When the earliest unleased delivery falls due, if any.
    pub fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn().query_row(
            "SELECT MIN(due_ms) FROM sns_deliveries WHERE leased = 0",
            [],
            |r| r.get(0),
        )?)
    }

    /// Deliveries waiting, and their bytes.
    pub fn delivery_backlog(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM sns_deliveries",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::tests::{key, sub};
    use super::*;

    /// An attempt that settles after its row went (its subscription deleted meanwhile) leaves
    /// alone the delivery queued after it, which once took the freed id.
    #[test]
    fn a_late_settlement_touches_no_later_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = key("t");
        store
            .create_topic(&t, &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        let (a, _) = store.subscribe(&t, &sub("a", "http://x/1")).unwrap();
        let (b, _) = store.subscribe(&t, &sub("b", "http://x/2")).unwrap();
        let new = |subscription_id: i64, message_id: &str| NewDelivery {
            subscription_id,
            kind: "Notification".into(),
            message_id: message_id.into(),
            body: b"hello".to_vec(),
            due_ms: 0,
            attempts: 0,
            hops: 0,
        };
        store.enqueue_deliveries(&[new(a.id, "first")]).unwrap();
        let leased = store.lease_deliveries(now_millis(), 10).unwrap();
        assert_eq!(leased.len(), 1);
        assert_eq!(store.unsubscribe("a").unwrap().1, 5);
        store.enqueue_deliveries(&[new(b.id, "second")]).unwrap();
        let id = leased[0].id;
        let late = [
            SettleDelivery::Retry {
                id,
                due_ms: i64::MAX,
                attempts: 1,
            },
            SettleDelivery::Done(id),
        ];
        assert_eq!(store.settle_deliveries(&late).unwrap(), 0);
        let next = store.lease_deliveries(now_millis(), 10).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(
            (next[0].message_id.as_str(), next[0].attempts),
            ("second", 0)
        );
        assert_eq!(store.delivery_backlog().unwrap(), (1, 5));
    }
}
