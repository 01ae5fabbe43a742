//! Asynchronous invocation: the durable event queue and the event invoke configurations.
//!
//! An event acknowledged with `202` is a row of `async_events`, committed before the
//! acknowledgement (in batches: one transaction for every event that arrived meanwhile). The
//! dispatcher leases due events (`leased = 1`, due again at the lease's end, should an attempt
//! never report back), and either finishes them (the row goes, and in the same transaction the
//! event for a destination function is queued) or puts them back with a later due time. At
//! start, every lease belongs to a process that is gone: [`Store::release_leases`] makes those
//! events due at once. An event is therefore run at least once, and never lost.

use lamina_model::now_millis;
use rusqlite::{OptionalExtension, params};

use crate::{FunctionKey, Store, StoreError, UsageRecord};

/// An event to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub request_id: String,
    pub function: FunctionKey,
    /// The qualifier it was invoked with (`None`: unqualified).
    pub qualifier: Option<String>,
    pub payload: Vec<u8>,
    pub received_ms: i64,
    /// How many destination records led to this event (0 for an invoke).
    pub hops: u32,
}

/// A queued event, leased for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub id: i64,
    pub request_id: String,
    pub function: FunctionKey,
    pub qualifier: Option<String>,
    pub payload: Vec<u8>,
    pub received_ms: i64,
    /// Attempts that ran the function so far.
    pub attempts: u32,
    /// The last back-off after a throttle, ms (0: none yet).
    pub backoff_ms: i64,
    /// How many destination records led to this event.
    pub hops: u32,
}

/// What becomes of a leased event after its attempt. The event is found by its id and its
/// request id both: SQLite gives a row's id again once the row with the highest is gone (its
/// function deleted, say), and a late settlement must not touch the newer event that has it.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// Back to the queue, due at `due_ms`.
    Requeue {
        id: i64,
        request_id: String,
        due_ms: i64,
        attempts: u32,
        backoff_ms: i64,
        usage: Option<UsageRecord>,
    },
    /// Done: removed, and `then` (a destination record) queued.
    Finish {
        id: i64,
        request_id: String,
        then: Option<NewEvent>,
        usage: Option<UsageRecord>,
    },
}

/// Events leased for attempts, and when the function's next event falls due (leased ones
/// included: at their lease's end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub events: Vec<QueuedEvent>,
    pub next_due_ms: Option<i64>,
}

/// How many events are queued, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSize {
    pub events: u64,
    pub bytes: u64,
}

/// `PutFunctionEventInvokeConfig` for one qualifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInvokeConfig {
    /// `$LATEST`, a version number or an alias.
    pub qualifier: String,
    pub max_retries: Option<u32>,
    pub max_age_s: Option<u32>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub last_modified_ms: i64,
}

fn function_id(conn: &rusqlite::Connection, key: &FunctionKey) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT id FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
    )?
    .query_row(
        params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Queues `e`, due at once, or leased until `leased_until`. Returns its id.
fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    e: &NewEvent,
    leased_until: Option<i64>,
) -> Result<i64, StoreError> {
    let id = function_id(tx, &e.function)?;
    tx.prepare_cached(
        "INSERT INTO async_events
            (request_id, function_id, qualifier, payload, received_ms, due_ms, hops, leased)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.request_id,
        id,
        e.qualifier,
        e.payload,
        e.received_ms,
        leased_until.unwrap_or(e.received_ms),
        e.hops,
        leased_until.is_some(),
    ])?;
    Ok(tx.last_insert_rowid())
}

/// A function's due events, oldest due first.
const LEASE: &str =
    "SELECT e.id, e.request_id, f.account, f.region, f.name, e.qualifier, e.payload,
        e.received_ms, e.attempts, e.backoff_ms, e.hops
    FROM async_events e JOIN functions f ON f.id = e.function_id
    WHERE e.function_id = ?3 AND e.due_ms <= ?1 ORDER BY e.due_ms LIMIT ?2";

/// When a function's next event falls due.
const NEXT_DUE: &str = "SELECT MIN(due_ms) FROM async_events WHERE function_id = ?1";

/// The lease itself, in one transaction of `conn`.
fn lease(
    conn: &mut rusqlite::Connection,
    function: &FunctionKey,
    now_ms: i64,
    limit: usize,
    lease_ms: i64,
) -> Result<Lease, StoreError> {
    let tx = conn.transaction()?;
    let id = function_id(&tx, function)?;
    let events: Vec<QueuedEvent> = {
        let mut stmt = tx.prepare_cached(LEASE)?;
        let rows = stmt.query_map(params![now_ms, limit as i64, id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Vec<u8>>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, u32>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, u32>(10)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, request_id, account, region, name, qualifier, payload, received, a, b, h) =
                row?;
            out.push(QueuedEvent {
                id,
                request_id,
                function: FunctionKey::parse(&account, &region, &name)?,
                qualifier,
                payload,
                received_ms: received,
                attempts: a,
                backoff_ms: b,
                hops: h,
            });
        }
        out
    };
    {
        let mut stmt =
            tx.prepare_cached("UPDATE async_events SET leased = 1, due_ms = ?2 WHERE id = ?1")?;
        for e in &events {
            stmt.execute(params![e.id, now_ms + lease_ms])?;
        }
    }
    let next_due_ms = tx
        .prepare_cached(NEXT_DUE)?
        .query_row(params![id], |r| r.get(0))?;
    tx.commit()?;
    Ok(Lease {
        events,
        next_due_ms,
    })
}

/// The settlements themselves, in one transaction of `conn`.
fn settle(
    conn: &mut rusqlite::Connection,
    settled: &[Settle],
) -> Result<Vec<(bool, bool)>, StoreError> {
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(settled.len());
    for s in settled {
        let usage = match s {
            Settle::Requeue {
                id,
                request_id,
                due_ms,
                attempts,
                backoff_ms,
                usage,
            } => {
                let existed = tx
                    .prepare_cached(
                        "UPDATE async_events SET leased = 0, due_ms = ?2, attempts = ?3, backoff_ms = ?4
                         WHERE id = ?1 AND request_id = ?5",
                    )?
                    .execute(params![id, due_ms, attempts, backoff_ms, request_id])?
                    > 0;
                out.push((existed, false));
                usage
            }
            Settle::Finish {
                id,
                request_id,
                then,
                usage,
            } => {
                let existed = tx
                    .prepare_cached("DELETE FROM async_events WHERE id = ?1 AND request_id = ?2")?
                    .execute(params![id, request_id])?
                    > 0;
                let delivered = match then {
                    None => false,
                    Some(e) => match insert_event(&tx, e, None) {
                        Ok(_) => true,
                        Err(StoreError::NotFound) => false,
                        Err(e) => return Err(e),
                    },
                };
                out.push((existed, delivered));
                usage
            }
        };
        if let Some(u) = usage {
            crate::usage::insert(&tx, u)?;
        }
    }
    tx.commit()?;
    Ok(out)
}

impl Store {
    /// Queues events in one transaction, due at once or, with `leased_until`, already leased
    /// (for a dispatcher that takes them straight from the acceptance: no lease of its own, and
    /// a restart releases them as it does every lease). Each result is that event's id, or
    /// `NotFound` where its function no longer exists.
    pub fn enqueue_events(
        &self,
        events: &[NewEvent],
        leased_until: Option<i64>,
    ) -> Result<Vec<Result<i64, StoreError>>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(match insert_event(&tx, e, leased_until) {
                Err(StoreError::NotFound) => Err(StoreError::NotFound),
                r => Ok(r?),
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Every function with queued events, and when its first one falls due (at start).
    pub fn queued_functions(&self) -> Result<Vec<(FunctionKey, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT f.account, f.region, f.name, MIN(e.due_ms) FROM async_events e
             JOIN functions f ON f.id = e.function_id GROUP BY f.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        rows.map(|row| {
            let (a, r, n, due) = row?;
            Ok((FunctionKey::parse(&a, &r, &n)?, due))
        })
        .collect()
    }

    /// Leases up to `limit` of a function's events due by `now_ms`, oldest due first, for
    /// `lease_ms`, and tells when its next event falls due.
    ///
    /// A lease need not outlive the process (every lease is released at start, see
    /// [`Store::release_leases`]), so its commit does not wait for the disk (see
    /// [`Store::unsynced`]): a power loss only forgets leases that a start would release anyway.
    pub fn lease_due_events(
        &self,
        function: &FunctionKey,
        now_ms: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Lease, StoreError> {
        self.unsynced(|conn| lease(conn, function, now_ms, limit, lease_ms))
    }

    /// Settles attempts in one transaction: each event goes back to the queue or is removed,
    /// with the usage of the attempt that ran (an attempt run again after a crash is billed
    /// once) and, for a finished event, the record for its destination function. Returns, per
    /// settlement, whether the event was still queued (its function may have been deleted
    /// meanwhile) and whether its destination record was queued.
    ///
    /// The commit does not wait for the disk (see [`Store::unsynced`]): a settlement lost to a
    /// power cut leaves its event leased, so the attempt runs again after the start, under the
    /// same usage key (billed once), as after a crash before the settlement.
    pub fn settle_events(&self, settled: &[Settle]) -> Result<Vec<(bool, bool)>, StoreError> {
        self.unsynced(|conn| settle(conn, settled))
    }

    /// Makes every leased event due at once (at start: their attempts died with the process
    /// that leased them). Returns how many there were.
    pub fn release_leases(&self) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE async_events SET leased = 0, due_ms = MIN(due_ms, ?1) WHERE leased = 1",
            params![now_millis()],
        )?)
    }

    /// Events queued in all, and their bytes (read at start).
    pub fn queue_size(&self) -> Result<QueueSize, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM async_events",
            [],
            |r| {
                Ok(QueueSize {
                    events: r.get::<_, i64>(0)? as u64,
                    bytes: r.get::<_, i64>(1)? as u64,
                })
            },
        )?)
    }

    /// Events queued per function (account, region, name).
    pub fn queue_depths(&self) -> Result<Vec<(FunctionKey, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT f.account, f.region, f.name, c FROM
                (SELECT function_id, COUNT(*) AS c FROM async_events GROUP BY function_id) e
             JOIN functions f ON f.id = e.function_id",
        )?;
        let per = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .map(|row| {
                let (a, r, n, c) = row?;
                Ok((FunctionKey::parse(&a, &r, &n)?, c as u64))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(per)
    }

    /// Sets (replaces) the event invoke configuration of a function's qualifier.
    pub fn put_event_config(
        &self,
        key: &FunctionKey,
        config: &EventInvokeConfig,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let id = function_id(&conn, key)?;
        conn.execute(
            "INSERT INTO event_invoke_configs (function_id, qualifier, max_retries, max_age_s, on_success, on_failure, last_modified_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (function_id, qualifier) DO UPDATE SET max_retries = ?3, max_age_s = ?4,
                on_success = ?5, on_failure = ?6, last_modified_ms = ?7",
            params![
                id,
                config.qualifier,
                config.max_retries,
                config.max_age_s,
                config.on_success,
                config.on_failure,
                config.last_modified_ms
            ],
        )?;
        Ok(())
    }

    /// The event invoke configuration of a function's qualifier.
    pub fn event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError> {
        Ok(self.event_configs(key, Some(qualifier))?.pop())
    }

    /// Every event invoke configuration of a function (or of one qualifier).
    pub fn event_configs(
        &self,
        key: &FunctionKey,
        qualifier: Option<&str>,
    ) -> Result<Vec<EventInvokeConfig>, StoreError> {
        let conn = self.conn();
        let id = function_id(&conn, key)?;
        let mut stmt = conn.prepare_cached(
            "SELECT qualifier, max_retries, max_age_s, on_success, on_failure, last_modified_ms
             FROM event_invoke_configs WHERE function_id = ?1 AND (?2 IS NULL OR qualifier = ?2)
             ORDER BY qualifier",
        )?;
        let rows = stmt.query_map(params![id, qualifier], |r| {
            Ok(EventInvokeConfig {
                qualifier: r.get(0)?,
                max_retries: r.get(1)?,
                max_age_s: r.get(2)?,
                on_success: r.get(3)?,
                on_failure: r.get(4)?,
                last_modified_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the event invoke configuration of a function's qualifier; whether it existed.
    pub fn delete_event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<bool, StoreError> {
        let conn = self.conn();
        let id = function_id(&conn, key)?;
        Ok(conn.execute(
            "DELETE FROM event_invoke_configs WHERE function_id = ?1 AND qualifier = ?2",
            params![id, qualifier],
        )? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> FunctionKey {
        FunctionKey::parse("000000000000", "us-east-1", name).unwrap()
    }

    fn store_with(name: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        crate::functions::tests::create_plain(&store, &key(name));
        (dir, store)
    }

    fn event(n: u32, function: &str) -> NewEvent {
        NewEvent {
            request_id: format!("req-{n}"),
            function: key(function),
            qualifier: None,
            payload: format!("{{\"n\":{n}}}").into_bytes(),
            received_ms: 1000 + n as i64,
            hops: 0,
        }
    }

    #[test]
    fn events_are_leased_once_requeued_and_finished() {
        let (_d, store) = store_with("f");
        let results = store
            .enqueue_events(&[event(1, "f"), event(2, "f"), event(3, "gone")], None)
            .unwrap();
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(matches!(results[2], Err(StoreError::NotFound)));
        let now = 10_000;
        let f = key("f");
        assert_eq!(store.queued_functions().unwrap(), vec![(f.clone(), 1001)]);
        let leased = store.lease_due_events(&f, now, 10, 60_000).unwrap();
        assert_eq!(leased.next_due_ms, Some(now + 60_000));
        let leased = leased.events;
        assert_eq!(leased.len(), 2);
        assert_eq!(leased[0].request_id, "req-1");
        // Leased events are not handed out again until their lease ends.
        assert!(
            store
                .lease_due_events(&f, now, 10, 60_000)
                .unwrap()
                .events
                .is_empty()
        );
        store
            .settle_events(&[Settle::Requeue {
                id: leased[0].id,
                request_id: leased[0].request_id.clone(),
                due_ms: now + 5,
                attempts: 1,
                backoff_ms: 0,
                usage: None,
            }])
            .unwrap();
        let early = store.lease_due_events(&f, now + 4, 10, 60_000).unwrap();
        assert!(early.events.is_empty());
        assert_eq!(early.next_due_ms, Some(now + 5));
        let again = store
            .lease_due_events(&f, now + 5, 10, 60_000)
            .unwrap()
            .events;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        // Finishing one queues its destination record in the same transaction.
        let mut record = event(9, "f");
        record.request_id = "dest".into();
        let queued = store
            .settle_events(&[Settle::Finish {
                id: again[0].id,
                request_id: again[0].request_id.clone(),
                then: Some(record),
                usage: None,
            }])
            .unwrap();
        assert_eq!(queued, [(true, true)]);
        assert_eq!(store.queue_size().unwrap().events, 2);
        // A restart makes the still-leased event due at once.
        assert_eq!(store.release_leases().unwrap(), 1);
        let mut due: Vec<String> = store
            .lease_due_events(&f, now_millis(), 10, 60_000)
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.request_id)
            .collect();
        due.sort();
        assert_eq!(due, ["dest", "req-2"]);
    }

    #[test]
    fn events_queued_leased_are_not_leased_again_until_a_restart() {
        let (_d, store) = store_with("f");
        let f = key("f");
        let forever = i64::MAX / 2;
        let ids = store
            .enqueue_events(&[event(1, "f"), event(2, "gone")], Some(forever))
            .unwrap();
        let id = *ids[0].as_ref().unwrap();
        assert!(matches!(ids[1], Err(StoreError::NotFound)));
        store.enqueue_events(&[event(3, "f")], None).unwrap();
        // Only the event queued due is leased; the other is the dispatcher's already.
        let lease = store.lease_due_events(&f, 10_000, 10, 60_000).unwrap();
        let leased: Vec<&str> = lease.events.iter().map(|e| e.request_id.as_str()).collect();
        assert_eq!(leased, ["req-3"]);
        assert_eq!(lease.next_due_ms, Some(10_000 + 60_000));
        assert_eq!(store.queue_size().unwrap().events, 2);
        // A restart makes it due at once, under the id the acceptance was told.
        assert_eq!(store.release_leases().unwrap(), 2);
        let again = store
            .lease_due_events(&f, now_millis(), 10, 60_000)
            .unwrap()
            .events;
        let first = again.iter().find(|e| e.request_id == "req-1").unwrap();
        assert_eq!((first.id, first.attempts), (id, 0));
    }

    #[test]
    fn a_late_settlement_leaves_the_event_that_got_its_id_again() {
        let (_d, store) = store_with("f");
        crate::functions::tests::create_plain(&store, &key("g"));
        let forever = i64::MAX / 2;
        let old = *store
            .enqueue_events(&[event(1, "f")], Some(forever))
            .unwrap()[0]
            .as_ref()
            .unwrap();
        // Its function goes, with its row; the next event is given the same id.
        store
            .conn()
            .execute("DELETE FROM async_events WHERE id = ?1", params![old])
            .unwrap();
        let new = *store.enqueue_events(&[event(2, "g")], None).unwrap()[0]
            .as_ref()
            .unwrap();
        assert_eq!(
            new, old,
            "SQLite gives the highest id again once its row is gone"
        );
        let late = [
            Settle::Requeue {
                id: old,
                request_id: "req-1".into(),
                due_ms: 5,
                attempts: 1,
                backoff_ms: 0,
                usage: None,
            },
            Settle::Finish {
                id: old,
                request_id: "req-1".into(),
                then: None,
                usage: None,
            },
        ];
        assert_eq!(
            store.settle_events(&late).unwrap(),
            [(false, false), (false, false)]
        );
        let left = store
            .lease_due_events(&key("g"), 10_000, 10, 60_000)
            .unwrap()
            .events;
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].request_id.as_str(), left[0].attempts),
            ("req-2", 0)
        );
    }

    #[test]
    fn cached_statements_are_compiled_once() {
        let (_d, store) = store_with("f");
        let f = key("f");
        for n in 0..5 {
            store.enqueue_events(&[event(n, "f")], None).unwrap();
            // A different limit each time: a plan that depended on it would be compiled again.
            let leased = store
                .lease_due_events(&f, 10_000, 1 + n as usize, 60_000)
                .unwrap();
            store.get_function(&f).unwrap().unwrap();
            let settle: Vec<Settle> = leased
                .events
                .iter()
                .map(|e| Settle::Finish {
                    id: e.id,
                    request_id: e.request_id.clone(),
                    then: None,
                    usage: None,
                })
                .collect();
            store.settle_events(&settle).unwrap();
        }
        let conn = store.conn();
        // Before the planner was told to ignore bound values, such were parsed again at every
        // use: SQLite expires a statement whose plan a bound value may change when rusqlite
        // clears its bindings on its return to the cache.
        for sql in [LEASE, NEXT_DUE, crate::functions::READ_VERSION] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    #[test]
    fn writes_that_do_not_wait_for_the_disk_leave_commits_synced() {
        let (_d, store) = store_with("f");
        let synchronous = |s: &Store| -> i64 {
            s.conn()
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        // 2: FULL, every acknowledged write synced before its commit returns.
        assert_eq!(synchronous(&store), 2);
        store.enqueue_events(&[event(1, "f")], None).unwrap();
        let leased = store
            .lease_due_events(&key("f"), 10_000, 10, 60_000)
            .unwrap()
            .events;
        assert_eq!(leased.len(), 1);
        assert_eq!(synchronous(&store), 2);
        let finish = Settle::Finish {
            id: leased[0].id,
            request_id: leased[0].request_id.clone(),
            then: None,
            usage: None,
        };
        assert_eq!(store.settle_events(&[finish]).unwrap(), [(true, false)]);
        assert_eq!(synchronous(&store), 2);
        let line = crate::NewLogEvent {
            stream: std::sync::Arc::new(lamina_model::LogStreamKey {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                function: "f".into(),
                stream: "s".into(),
            }),
            ts_ms: 1,
            message: "x".into(),
        };
        store.append_logs(&[line], 1 << 20).unwrap();
        assert_eq!(synchronous(&store), 2);
        let usage = crate::UsageRecord {
            request_id: "r".into(),
            account: "000000000000".into(),
            region: "us-east-1".into(),
            function: "f".into(),
            version: "$LATEST".into(),
            architecture: "x86_64".into(),
            memory_mb: 128,
            ephemeral_mb: 512,
            init_ms: None,
            duration_ms: 1.0,
            billed_duration_ms: 1,
            billed_ms: 1,
            outcome: "success".into(),
            ts_ms: 1,
            streamed_bytes: 0,
        };
        assert_eq!(store.record_usage(&[usage]).unwrap(), 1);
        assert_eq!(synchronous(&store), 2);
        // Also when the write fails.
        assert!(matches!(
            store.lease_due_events(&key("gone"), 10_000, 10, 60_000),
            Err(StoreError::NotFound)
        ));
        assert_eq!(synchronous(&store), 2);
    }

    #[test]
    fn configs_per_qualifier_go_with_their_function() {
        let (_d, store) = store_with("f");
        let config = EventInvokeConfig {
            qualifier: "$LATEST".into(),
            max_retries: Some(0),
            max_age_s: None,
            on_success: None,
            on_failure: Some("arn:aws:lambda:us-east-1:000000000000:function:g".into()),
            last_modified_ms: 5,
        };
        store.put_event_config(&key("f"), &config).unwrap();
        assert_eq!(
            store.event_config(&key("f"), "$LATEST").unwrap(),
            Some(config.clone())
        );
        assert_eq!(store.event_configs(&key("f"), None).unwrap().len(), 1);
        store.enqueue_events(&[event(1, "f")], None).unwrap();
        store.delete_function(&key("f")).unwrap();
        assert!(matches!(
            store.event_configs(&key("f"), None),
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.queue_size().unwrap().events, 0);
    }
}
