//! Function log events: appended in batches, read by function in order, expired by age, and
//! bounded in size per function (the oldest lines go first).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rusqlite::{OptionalExtension, params};

use crate::{FunctionKey, Store, StoreError};

/// What a stored line costs beyond its text, for the size bound: its row (group and stream
/// numbers, time) and index entries, about 90 bytes as measured (see BENCHMARKS.md).
pub(crate) const ROW_OVERHEAD: i64 = 100;

/// Streams (and groups) checked per transaction by the sweep of those left without lines.
const SWEEP_BATCH: i64 = 1_000;

/// Lines deleted per transaction by the expiry sweep.
const EXPIRE_BATCH: i64 = 5_000;

/// A log line to store.
#[derive(Debug, Clone)]
pub struct NewLogEvent {
    /// The function's group and the stream, shared by the stream's lines.
    pub stream: std::sync::Arc<lamina_model::LogStreamKey>,
    pub ts_ms: i64,
    pub message: String,
}

/// A stored log line; `id` orders events and serves as a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub id: i64,
    pub stream: String,
    pub ts_ms: i64,
    pub message: String,
}

/// The number of the log group of `(account, region, function)`, as an SQL expression of
/// parameters `?1`, `?2` and `?3` (NULL when the group has never had a line).
macro_rules! group {
    () => {
        "(SELECT id FROM log_groups WHERE account = ?1 AND region = ?2 AND function = ?3)"
    };
}
pub(crate) use group;

/// The number of a function's log group, made on its first line.
fn group_id(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    region: &str,
    function: &str,
) -> rusqlite::Result<i64> {
    let found = tx
        .prepare_cached(concat!("SELECT ", group!()))?
        .query_row(params![account, region, function], |r| {
            r.get::<_, Option<i64>>(0)
        })?;
    match found {
        Some(id) => Ok(id),
        None => tx
            .prepare_cached(
                "INSERT INTO log_groups (account, region, function) VALUES (?1, ?2, ?3) RETURNING id",
            )?
            .query_row(params![account, region, function], |r| r.get(0)),
    }
}

/// The number of a stream of group `grp`, made on its first line.
fn stream_id(tx: &rusqlite::Transaction<'_>, grp: i64, name: &str) -> rusqlite::Result<i64> {
    let found = tx
        .prepare_cached("SELECT id FROM log_streams WHERE grp = ?1 AND name = ?2")?
        .query_row(params![grp, name], |r| r.get(0))
        .optional()?;
    match found {
        Some(id) => Ok(id),
        None => tx
            .prepare_cached("INSERT INTO log_streams (grp, name) VALUES (?1, ?2) RETURNING id")?
            .query_row(params![grp, name], |r| r.get(0)),
    }
}

/// The lines themselves, in one transaction of `conn`.
fn append(
    conn: &mut rusqlite::Connection,
    events: &[NewLogEvent],
    max_bytes_per_function: u64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    // Per function: its group's number and the bytes added; per group and name: the stream.
    let mut added: HashMap<(&str, &str, &str), (i64, i64)> = HashMap::new();
    let mut streams: HashMap<(i64, &str), i64> = HashMap::new();
    // Ids go on from the highest ever given, which deleting the newest lines does not lower
    // (this is the only writer of lines, and it keeps `log_ids` up to date).
    let mut id: i64 = tx
        .prepare_cached("SELECT last FROM log_ids")?
        .query_row([], |r| r.get(0))?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO log_lines (id, grp, stream, ts_ms, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for e in events {
            let to = &*e.stream;
            let group = match added.entry((&to.account, &to.region, &to.function)) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    v.insert((group_id(&tx, &to.account, &to.region, &to.function)?, 0))
                }
            };
            group.1 += e.message.len() as i64 + ROW_OVERHEAD;
            let grp = group.0;
            let stream = match streams.entry((grp, &to.stream)) {
                Entry::Occupied(o) => *o.get(),
                Entry::Vacant(v) => *v.insert(stream_id(&tx, grp, &to.stream)?),
            };
            id += 1;
            stmt.execute(params![id, grp, stream, e.ts_ms, e.message])?;
        }
    }
    tx.prepare_cached("UPDATE log_ids SET last = ?1")?
        .execute(params![id])?;
    for ((account, region, function), (grp, bytes)) in added {
        let total: i64 = tx
            .prepare_cached(
                "INSERT INTO log_sizes (account, region, function, bytes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, region, function) DO UPDATE SET bytes = bytes + ?4
                 RETURNING bytes",
            )?
            .query_row(params![account, region, function, bytes], |r| r.get(0))?;
        let mut excess = total - max_bytes_per_function as i64;
        while excess > 0 {
            // The oldest lines, a thousand at a time, until enough bytes are gone.
            let oldest: Vec<(i64, i64)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, LENGTH(CAST(message AS BLOB)) + ?2 FROM log_lines
                     WHERE grp = ?1 ORDER BY id LIMIT 1000",
                )?;
                stmt.query_map(params![grp, ROW_OVERHEAD], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?
            };
            if oldest.is_empty() {
                break;
            }
            let mut removed = 0;
            let mut last = 0;
            for (id, len) in oldest {
                removed += len;
                last = id;
                if removed >= excess {
                    break;
                }
            }
            tx.execute(
                "DELETE FROM log_lines WHERE grp = ?1 AND id <= ?2",
                params![grp, last],
            )?;
            tx.execute(
                "UPDATE log_sizes SET bytes = bytes - ?4 WHERE account = ?1 AND region = ?2 AND function = ?3",
                params![account, region, function, removed],
            )?;
            excess -= removed;
        }
    }
    tx.commit()?;
    Ok(())
}

impl Store {
    /// Appends a batch of log lines in one transaction, then trims every function it touched to
    /// at most `max_bytes_per_function` bytes of stored lines, oldest first. The commit does not
    /// wait for the disk (see [`Store::unsynced`]): no caller waits for a function's lines.
    pub fn append_logs(
        &self,
        events: &[NewLogEvent],
        max_bytes_per_function: u64,
    ) -> Result<(), StoreError> {
        self.unsynced(|conn| append(conn, events, max_bytes_per_function))
    }

    /// Log lines of a function after cursor `after`, oldest first, at most `limit`, and no more
    /// than about [`MAX_SCAN_BYTES`](crate::MAX_SCAN_BYTES) of messages (at least one line, so
    /// that a reader always moves on).
    pub fn logs(
        &self,
        key: &FunctionKey,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT id, (SELECT name FROM log_streams WHERE id = l.stream), ts_ms, message
             FROM log_lines l WHERE grp = ",
            group!(),
            " AND id > ?4 ORDER BY id LIMIT ?5"
        ))?;
        let mut rows = stmt.query(params![
            key.account.as_str(),
            key.region.as_str(),
            key.name.as_str(),
            after,
            limit as i64
        ])?;
        let (mut out, mut bytes) = (Vec::new(), 0);
        while bytes < crate::MAX_SCAN_BYTES
            && let Some(r) = rows.next()?
        {
            let e = LogEvent {
                id: r.get(0)?,
                stream: r.get(1)?,
                ts_ms: r.get(2)?,
                message: r.get(3)?,
            };
            bytes += e.message.len();
            out.push(e);
        }
        Ok(out)
    }

    /// The cursor of the newest `n`th-last line of a function (for `logs` without `--all`).
    pub fn logs_cursor_for_last(&self, key: &FunctionKey, n: usize) -> Result<i64, StoreError> {
        let conn = self.conn();
        let id: Option<i64> = conn.query_row(
            concat!(
                "SELECT MIN(id) - 1 FROM (SELECT id FROM log_lines WHERE grp = ",
                group!(),
                " ORDER BY id DESC LIMIT ?4)"
            ),
            params![
                key.account.as_str(),
                key.region.as_str(),
                key.name.as_str(),
                n as i64
            ],
            |r| r.get(0),
        )?;
        Ok(id.unwrap_or(0))
    }

    /// Deletes log lines past their retention: older than `before_ms` for groups without a
    /// policy of their own, older than their policy's days for the others. Deletes go in
    /// batches, each its own transaction, so the store is never held for long. Returns how
    /// many lines went.
    pub fn expire_logs(&self, before_ms: i64) -> Result<usize, StoreError> {
        let policies: Vec<(String, String, String, i64)> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare_cached("SELECT account, region, function, days FROM log_retention")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut total = 0;
        let now = lamina_model::now_millis();
        for (account, region, function, days) in policies {
            let cutoff = now - days * 86_400_000;
            total += self.expire_batches(
                concat!(
                    "SELECT id FROM log_lines WHERE grp = ",
                    group!(),
                    " AND ts_ms < ?4 LIMIT ?5"
                ),
                params![account, region, function, cutoff, EXPIRE_BATCH],
            )?;
        }
        // The others, one group at a time through its time index.
        let defaults: Vec<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM log_groups g WHERE NOT EXISTS (SELECT 1 FROM log_retention r
                 WHERE r.account = g.account AND r.region = g.region AND r.function = g.function)",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for grp in defaults {
            // Each batch checks again that the group still has no policy of its own.
            total += self.expire_batches(
                "SELECT id FROM log_lines WHERE grp = ?1 AND ts_ms < ?2 AND NOT EXISTS
                 (SELECT 1 FROM log_retention r JOIN log_groups g ON g.account = r.account
                  AND g.region = r.region AND g.function = r.function WHERE g.id = ?1)
                 LIMIT ?3",
                params![grp, before_ms, EXPIRE_BATCH],
            )?;
        }
        // Streams and groups left without lines (by expiry, or by the size bound) go too.
        self.sweep_empty("log_streams", "stream")?;
        self.sweep_empty("log_groups", "grp")?;
        Ok(total)
    }

    /// Deletes the rows of `table` that no line refers to through `column`, a batch of ids at a
    /// time, each its own statement, so that the writer is never held up for long.
    fn sweep_empty(&self, table: &str, column: &str) -> Result<(), StoreError> {
        let mut after = 0i64;
        loop {
            let conn = self.conn();
            let last: Option<i64> = conn.query_row(
                &format!(
                    "SELECT MAX(id) FROM (SELECT id FROM {table} WHERE id > ?1 ORDER BY id LIMIT ?2)"
                ),
                params![after, SWEEP_BATCH],
                |r| r.get(0),
            )?;
            let Some(last) = last else {
                return Ok(());
            };
            conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE id > ?1 AND id <= ?2
                     AND NOT EXISTS (SELECT 1 FROM log_lines WHERE {column} = {table}.id)"
                ),
                params![after, last],
            )?;
            after = last;
        }
    }

    /// Deletes the rows `select` names, batch after batch until none is left, keeping
    /// `log_sizes` in step.
    fn expire_batches(
        &self,
        select: &str,
        args: impl rusqlite::Params + Clone,
    ) -> Result<usize, StoreError> {
        let sql = format!(
            "DELETE FROM log_lines WHERE id IN ({select})
             RETURNING grp, LENGTH(CAST(message AS BLOB)) + {ROW_OVERHEAD}"
        );
        let mut total = 0;
        loop {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let mut freed: HashMap<i64, i64> = HashMap::new();
            {
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(args.clone())?;
                while let Some(r) = rows.next()? {
                    *freed.entry(r.get(0)?).or_default() += r.get::<_, i64>(1)?;
                    total += 1;
                }
            }
            let done = freed.is_empty();
            for (grp, bytes) in freed {
                let sizes = "(account, region, function) =
                    (SELECT account, region, function FROM log_groups WHERE id = ?1)";
                tx.execute(
                    &format!("UPDATE log_sizes SET bytes = bytes - ?2 WHERE {sizes}"),
                    params![grp, bytes],
                )?;
                tx.execute(
                    &format!(
                        "DELETE FROM log_sizes WHERE {sizes}
                         AND NOT EXISTS (SELECT 1 FROM log_lines WHERE grp = ?1)"
                    ),
                    params![grp],
                )?;
            }
            tx.commit()?;
            if done {
                return Ok(total);
            }
        }
    }
}
