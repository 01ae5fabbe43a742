//! Function logs as CloudWatch Logs sees them: a log group per function (of the functions that
//! exist, and of those whose lines are still stored), its streams, bounded scans of its events
//! in time order, retention policies and deletion.
//!
//! Scans are bounded in rows so that a search over a large group holds the connection only
//! briefly; the caller resumes from the position the scan stopped at.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};

use crate::logs::group;
use crate::{FunctionKey, Store, StoreError};

/// Rows deleted per transaction when a group goes, so that other writers are not held up.
const DELETE_BATCH: i64 = 5_000;

/// A log group: a function's log, named `/aws/lambda/<function>` by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupRow {
    /// The function's name.
    pub function: String,
    /// When the function was created or, for a function that no longer exists, its oldest
    /// stored line.
    pub created_ms: i64,
    /// Bytes of stored lines (as the size bound counts them).
    pub stored_bytes: i64,
    /// The group's retention policy, if one was set.
    pub retention_days: Option<u32>,
}

/// A log stream (one execution environment's lines) and its time span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamRow {
    /// The stream's name, `YYYY/MM/DD/[<version>]<32 hex>`.
    pub name: String,
    /// The oldest stored line's time.
    pub first_ms: i64,
    /// The newest stored line's time.
    pub last_ms: i64,
}

/// Which streams of a group a scan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFilter {
    /// Every stream.
    All,
    /// Exactly these streams.
    Names(Vec<String>),
    /// Streams whose names start with this.
    Prefix(String),
}

/// Where an event sits in a group's order: by time, then by row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// The event's time, ms.
    pub ts_ms: i64,
    /// The event's row id.
    pub id: i64,
}

/// A bounded scan of a group's events in time order.
#[derive(Debug, Clone)]
pub struct LogScan<'a> {
    /// The group's function.
    pub key: &'a FunctionKey,
    /// Which streams.
    pub streams: &'a StreamFilter,
    /// Events at or after this time only.
    pub from_ms: i64,
    /// Events before this time only.
    pub to_ms: i64,
    /// Events strictly after (forward) or before (backward) this position only.
    pub cursor: Option<LogPosition>,
    /// Newest first.
    pub backward: bool,
    /// Rows read, at most.
    pub max_rows: usize,
    /// Events kept, at most: the scan stops at the one that fills the page, or at the one that
    /// brings the messages kept to [`MAX_SCAN_BYTES`].
    pub max_keep: usize,
}

/// The bytes of messages one scan keeps, about: a response of CloudWatch Logs holds up to 1 MB
/// of events.
pub const MAX_SCAN_BYTES: usize = 1 << 20;

/// The bytes of messages one scan reads, about, whether it keeps them or not.
const MAX_SCAN_READ: usize = 4 << 20;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// The events kept, in scan order.
    pub events: Vec<crate::LogEvent>,
    /// The position of the last row read (kept or not).
    pub last: Option<LogPosition>,
    /// Whether the scan read everything in its range.
    pub exhausted: bool,
}

impl Store {
    /// The log groups of an account in a region, by function name.
    pub fn log_groups(&self, account: &str, region: &str) -> Result<Vec<LogGroupRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, MIN(created), SUM(bytes), MAX(days) FROM (
                SELECT name, created_ms AS created, 0 AS bytes, NULL AS days
                    FROM functions WHERE account = ?1 AND region = ?2
                UNION ALL
                SELECT s.function, (SELECT MIN(l.ts_ms) FROM log_lines l WHERE l.grp =
                        (SELECT g.id FROM log_groups g WHERE g.account = ?1 AND g.region = ?2
                            AND g.function = s.function)), s.bytes, NULL
                    FROM log_sizes s WHERE s.account = ?1 AND s.region = ?2 AND s.bytes > 0
                UNION ALL
                SELECT function, NULL, 0, days FROM log_retention WHERE account = ?1 AND region = ?2
             ) GROUP BY name ORDER BY name",
        )?;
        let rows = stmt.query_map(params![account, region], |r| {
            Ok(LogGroupRow {
                function: r.get(0)?,
                created_ms: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                stored_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0),
                retention_days: r.get::<_, Option<i64>>(3)?.map(|d| d as u32),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The functions of an account and region whose `$LATEST` names a log group of its own
    /// (`LoggingConfig.LogGroup`): `(function, group)`, by function.
    pub fn custom_log_groups(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT f.name, json_extract(v.spec, '$.log_group') FROM functions f
                JOIN function_versions v ON v.function_id = f.id AND v.version = '$LATEST'
             WHERE f.account = ?1 AND f.region = ?2
                AND json_extract(v.spec, '$.log_group') IS NOT NULL
             ORDER BY f.name",
        )?;
        let rows = stmt.query_map(params![account, region], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The log group of one function, if it exists (the function does, or lines of it are
    /// stored, or it has a retention policy).
    pub fn log_group(&self, key: &FunctionKey) -> Result<Option<LogGroupRow>, StoreError> {
        let conn = self.conn();
        let (account, region, name) =
            (key.account.as_str(), key.region.as_str(), key.name.as_str());
        let created: Option<i64> = conn
            .query_row(
                "SELECT created_ms FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![account, region, name],
                |r| r.get(0),
            )
            .optional()?;
        let bytes: Option<i64> = conn
            .query_row(
                "SELECT bytes FROM log_sizes WHERE account = ?1 AND region = ?2 AND function = ?3 AND bytes > 0",
                params![account, region, name],
                |r| r.get(0),
            )
            .optional()?;
        let days: Option<i64> = conn
            .query_row(
                "SELECT days FROM log_retention WHERE account = ?1 AND region = ?2 AND function = ?3",
                params![account, region, name],
                |r| r.get(0),
            )
            .optional()?;
        if created.is_none() && bytes.is_none() && days.is_none() {
            return Ok(None);
        }
        let created_ms = match created {
            Some(c) => c,
            None => conn
                .query_row(
                    concat!("SELECT MIN(ts_ms) FROM log_lines WHERE grp = ", group!()),
                    params![account, region, name],
                    |r| r.get::<_, Option<i64>>(0),
                )?
                .unwrap_or(0),
        };
        Ok(Some(LogGroupRow {
            function: name.to_owned(),
            created_ms,
            stored_bytes: bytes.unwrap_or(0),
            retention_days: days.map(|d| d as u32),
        }))
    }

    /// The streams of a function's log with their time spans, by name.
    pub fn log_streams(&self, key: &FunctionKey) -> Result<Vec<LogStreamRow>, StoreError> {
        let conn = self.conn();
        // Two index seeks per stream rather than a read of every line; a stream whose lines are
        // all gone (its row waits for the expiry sweep) is not listed.
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT s.name,
                (SELECT MIN(ts_ms) FROM log_lines WHERE stream = s.id),
                (SELECT MAX(ts_ms) FROM log_lines WHERE stream = s.id)
             FROM log_streams s WHERE s.grp = ",
            group!(),
            " ORDER BY s.name"
        ))?;
        let rows = stmt.query_map(
            params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
            |r| {
                Ok(match (r.get(1)?, r.get(2)?) {
                    (Some(first_ms), Some(last_ms)) => Some(LogStreamRow {
                        name: r.get(0)?,
                        first_ms,
                        last_ms,
                    }),
                    _ => None,
                })
            },
        )?;
        let streams: Vec<Option<LogStreamRow>> = rows.collect::<Result<_, _>>()?;
        Ok(streams.into_iter().flatten().collect())
    }

    /// Reads a group's events in time order within the scan's bounds, keeping those `keep`
    /// accepts (it sees each message without a copy).
    pub fn scan_logs(
        &self,
        scan: &LogScan<'_>,
        keep: &mut dyn FnMut(&str) -> bool,
    ) -> Result<ScanResult, StoreError> {
        // One stream is read through its own index (without statistics, SQLite would pick the
        // group's time index and skip every other stream's lines).
        let one_stream = matches!(scan.streams, StreamFilter::Names(n) if n.len() == 1);
        let mut sql = format!(
            "SELECT id, (SELECT name FROM log_streams WHERE id = l.stream), ts_ms, message
             FROM log_lines l{} WHERE grp = {}",
            if one_stream {
                " INDEXED BY log_lines_stream_time"
            } else {
                ""
            },
            group!()
        );
        let mut args: Vec<Value> = vec![
            Value::Text(scan.key.account.as_str().to_owned()),
            Value::Text(scan.key.region.as_str().to_owned()),
            Value::Text(scan.key.name.as_str().to_owned()),
        ];
        let mut arg = |sql: &mut String, text: &str, v: Value| {
            args.push(v);
            sql.push_str(&text.replace('?', &format!("?{}", args.len())));
        };
        // The time range, narrowed by the cursor so that the index range starts there.
        let (mut lo, mut hi) = (scan.from_ms, scan.to_ms);
        if let Some(c) = scan.cursor {
            if scan.backward {
                hi = hi.min(c.ts_ms.saturating_add(1));
            } else {
                lo = lo.max(c.ts_ms);
            }
        }
        arg(&mut sql, " AND ts_ms >= ?", Value::Integer(lo));
        arg(&mut sql, " AND ts_ms < ?", Value::Integer(hi));
        if let Some(c) = scan.cursor {
            let op = if scan.backward { '<' } else { '>' };
            arg(
                &mut sql,
                &format!(" AND (ts_ms {op} ?"),
                Value::Integer(c.ts_ms),
            );
            arg(&mut sql, " OR (ts_ms = ?", Value::Integer(c.ts_ms));
            arg(&mut sql, &format!(" AND id {op} ?))"), Value::Integer(c.id));
        }
        // Streams are named through their numbers in the group.
        let streams = concat!(
            " AND stream IN (SELECT id FROM log_streams WHERE grp = ",
            group!()
        );
        match scan.streams {
            StreamFilter::All => {}
            StreamFilter::Names(names) if one_stream => {
                sql.push_str(concat!(
                    " AND stream = (SELECT id FROM log_streams WHERE grp = ",
                    group!()
                ));
                arg(&mut sql, " AND name = ?)", Value::Text(names[0].clone()));
            }
            StreamFilter::Names(names) => {
                sql.push_str(streams);
                sql.push_str(" AND name IN (");
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        sql.push(',');
                    }
                    arg(&mut sql, "?", Value::Text(n.clone()));
                }
                sql.push_str("))");
            }
            StreamFilter::Prefix(p) => {
                sql.push_str(streams);
                arg(
                    &mut sql,
                    " AND substr(name, 1, length(?",
                    Value::Text(p.clone()),
                );
                arg(&mut sql, ")) = ?)", Value::Text(p.clone()));
            }
        }
        sql.push_str(if scan.backward {
            " ORDER BY ts_ms DESC, id DESC"
        } else {
            " ORDER BY ts_ms, id"
        });
        arg(&mut sql, " LIMIT ?", Value::Integer(scan.max_rows as i64));

        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut out = ScanResult {
            events: Vec::new(),
            last: None,
            exhausted: true,
        };
        let (mut read, mut bytes, mut seen) = (0, 0, 0);
        while let Some(row) = rows.next()? {
            read += 1;
            let pos = LogPosition {
                ts_ms: row.get(2)?,
                id: row.get(0)?,
            };
            out.last = Some(pos);
            let message = row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
            // The store is held while `keep` reads: a scan stops after a bounded read too, kept
            // or not, so that one search of long lines cannot keep other callers waiting.
            seen += message.len();
            if keep(message) {
                out.events.push(crate::LogEvent {
                    id: pos.id,
                    stream: row.get(1)?,
                    ts_ms: pos.ts_ms,
                    message: message.to_owned(),
                });
                bytes += message.len();
            }
            if out.events.len() >= scan.max_keep || bytes >= MAX_SCAN_BYTES || seen >= MAX_SCAN_READ
            {
                out.exhausted = false;
                return Ok(out);
            }
        }
        out.exhausted = read < scan.max_rows;
        Ok(out)
    }

    /// The id of the newest stored line (0 when there is none): where a live tail starts.
    pub fn last_log_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(id), 0) FROM log_lines", [], |r| {
                r.get(0)
            })?)
    }

    /// Sets (`Some`) or removes a group's retention policy.
    pub fn set_log_retention(
        &self,
        key: &FunctionKey,
        days: Option<u32>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let (account, region, name) =
            (key.account.as_str(), key.region.as_str(), key.name.as_str());
        match days {
            Some(d) => conn.execute(
                "INSERT INTO log_retention (account, region, function, days) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, region, function) DO UPDATE SET days = ?4",
                params![account, region, name, d as i64],
            )?,
            None => conn.execute(
                "DELETE FROM log_retention WHERE account = ?1 AND region = ?2 AND function = ?3",
                params![account, region, name],
            )?,
        };
        Ok(())
    }

    /// Deletes a group: every stored line of the function and its retention policy, in batches.
    pub fn delete_log_group(&self, key: &FunctionKey) -> Result<(), StoreError> {
        let (account, region, name) =
            (key.account.as_str(), key.region.as_str(), key.name.as_str());
        loop {
            let n = self.conn().execute(
                concat!(
                    "DELETE FROM log_lines WHERE id IN (SELECT id FROM log_lines WHERE grp = ",
                    group!(),
                    " LIMIT ?4)"
                ),
                params![account, region, name, DELETE_BATCH],
            )?;
            if n == 0 {
                break;
            }
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Lines the writer added meanwhile go too, in this transaction.
        tx.execute(
            concat!("DELETE FROM log_lines WHERE grp = ", group!()),
            params![account, region, name],
        )?;
        tx.execute(
            concat!("DELETE FROM log_streams WHERE grp = ", group!()),
            params![account, region, name],
        )?;
        tx.execute(
            "DELETE FROM log_groups WHERE account = ?1 AND region = ?2 AND function = ?3",
            params![account, region, name],
        )?;
        tx.execute(
            "DELETE FROM log_sizes WHERE account = ?1 AND region = ?2 AND function = ?3",
            params![account, region, name],
        )?;
        tx.execute(
            "DELETE FROM log_retention WHERE account = ?1 AND region = ?2 AND function = ?3",
            params![account, region, name],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
