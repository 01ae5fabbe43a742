//! Function log events: appended in batches, read by function in order, expired by age, and
//! bounded in size per function (the oldest lines go first).

use std::collections::HashMap;

use rusqlite::params;

use crate::{FunctionKey, Store, StoreError};

/// What a stored line costs beyond its text, for the size bound: its row, stream name and index
/// entries.
const ROW_OVERHEAD: i64 = 100;

/// Lines deleted per transaction by the expiry sweep.
const EXPIRE_BATCH: i64 = 5_000;

/// A log line to store.
#[derive(Debug, Clone)]
pub struct NewLogEvent {
    pub account: String,
    pub region: String,
    pub function: String,
    pub stream: String,
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

impl Store {
    /// Appends a batch of log lines in one transaction, then trims every function it touched to
    /// at most `max_bytes_per_function` bytes of stored lines, oldest first.
    pub fn append_logs(
        &self,
        events: &[NewLogEvent],
        max_bytes_per_function: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added: HashMap<(&str, &str, &str), i64> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO log_events (account, region, function, stream, ts_ms, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in events {
                stmt.execute(params![
                    e.account, e.region, e.function, e.stream, e.ts_ms, e.message
                ])?;
                *added
                    .entry((&e.account, &e.region, &e.function))
                    .or_default() += e.message.len() as i64 + ROW_OVERHEAD;
            }
        }
        for ((account, region, function), bytes) in added {
            let total: i64 = tx.query_row(
                "INSERT INTO log_sizes (account, region, function, bytes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, region, function) DO UPDATE SET bytes = bytes + ?4
                 RETURNING bytes",
                params![account, region, function, bytes],
                |r| r.get(0),
            )?;
            let mut excess = total - max_bytes_per_function as i64;
            while excess > 0 {
                // The oldest lines, a thousand at a time, until enough bytes are gone.
                let oldest: Vec<(i64, i64)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, LENGTH(CAST(message AS BLOB)) + ?4 FROM log_events
                         WHERE account = ?1 AND region = ?2 AND function = ?3 ORDER BY id LIMIT 1000",
                    )?;
                    stmt.query_map(params![account, region, function, ROW_OVERHEAD], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
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
                    "DELETE FROM log_events WHERE account = ?1 AND region = ?2 AND function = ?3 AND id <= ?4",
                    params![account, region, function, last],
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

    /// Log lines of a function after cursor `after`, oldest first, at most `limit`.
    pub fn logs(
        &self,
        key: &FunctionKey,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, stream, ts_ms, message FROM log_events
             WHERE account = ?1 AND region = ?2 AND function = ?3 AND id > ?4 ORDER BY id LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![
                key.account.as_str(),
                key.region.as_str(),
                key.name.as_str(),
                after,
                limit as i64
            ],
            |r| {
                Ok(LogEvent {
                    id: r.get(0)?,
                    stream: r.get(1)?,
                    ts_ms: r.get(2)?,
                    message: r.get(3)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The cursor of the newest `n`th-last line of a function (for `logs` without `--all`).
    pub fn logs_cursor_for_last(&self, key: &FunctionKey, n: usize) -> Result<i64, StoreError> {
        let conn = self.conn();
        let id: Option<i64> = conn.query_row(
            "SELECT MIN(id) - 1 FROM (SELECT id FROM log_events WHERE account = ?1 AND region = ?2 AND function = ?3 ORDER BY id DESC LIMIT ?4)",
            params![key.account.as_str(), key.region.as_str(), key.name.as_str(), n as i64],
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
                "SELECT id FROM log_events WHERE account = ?1 AND region = ?2 AND function = ?3
                 AND ts_ms < ?4 LIMIT ?5",
                params![account, region, function, cutoff, EXPIRE_BATCH],
            )?;
        }
        total += self.expire_batches(
            "SELECT id FROM log_events e WHERE ts_ms < ?1 AND NOT EXISTS (SELECT 1 FROM log_retention r
             WHERE r.account = e.account AND r.region = e.region AND r.function = e.function)
             LIMIT ?2",
            params![before_ms, EXPIRE_BATCH],
        )?;
        Ok(total)
    }

    /// Deletes the rows `select` names, batch after batch until none is left, keeping
    /// `log_sizes` in step.
    fn expire_batches(
        &self,
        select: &str,
        args: impl rusqlite::Params + Clone,
    ) -> Result<usize, StoreError> {
        let sql = format!(
            "DELETE FROM log_events WHERE id IN ({select})
             RETURNING account, region, function, LENGTH(CAST(message AS BLOB)) + {ROW_OVERHEAD}"
        );
        let mut total = 0;
        loop {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let mut freed: HashMap<(String, String, String), i64> = HashMap::new();
            {
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(args.clone())?;
                while let Some(r) = rows.next()? {
                    *freed.entry((r.get(0)?, r.get(1)?, r.get(2)?)).or_default() +=
                        r.get::<_, i64>(3)?;
                    total += 1;
                }
            }
            let done = freed.is_empty();
            for ((account, region, function), bytes) in freed {
                tx.execute(
                    "UPDATE log_sizes SET bytes = bytes - ?4 WHERE account = ?1 AND region = ?2 AND function = ?3",
                    params![account, region, function, bytes],
                )?;
                tx.execute(
                    "DELETE FROM log_sizes WHERE account = ?1 AND region = ?2 AND function = ?3
                     AND NOT EXISTS (SELECT 1 FROM log_events WHERE account = ?1 AND region = ?2 AND function = ?3)",
                    params![account, region, function],
                )?;
            }
            tx.commit()?;
            if done {
                return Ok(total);
            }
        }
    }
}
