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
    /// Events kept, at most: the scan stops at the one that fills the page.
    pub max_keep: usize,
}

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
        let mut read = 0;
        while let Some(row) = rows.next()? {
            read += 1;
            let pos = LogPosition {
                ts_ms: row.get(2)?,
                id: row.get(0)?,
            };
            out.last = Some(pos);
            let message = row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
            if keep(message) {
                out.events.push(crate::LogEvent {
                    id: pos.id,
                    stream: row.get(1)?,
                    ts_ms: pos.ts_ms,
                    message: message.to_owned(),
                });
                if out.events.len() >= scan.max_keep {
                    out.exhausted = false;
                    return Ok(out);
                }
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
mod tests {
    use super::*;
    use crate::NewLogEvent;

    fn line(function: &str, stream: &str, ts_ms: i64, message: &str) -> NewLogEvent {
        NewLogEvent {
            stream: std::sync::Arc::new(lamina_model::LogStreamKey {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                function: function.into(),
                stream: stream.into(),
            }),
            ts_ms,
            message: message.into(),
        }
    }

    fn key(name: &str) -> FunctionKey {
        FunctionKey::parse("000000000000", "us-east-1", name).unwrap()
    }

    #[test]
    fn groups_streams_scans_retention_and_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut lines = Vec::new();
        for i in 0..10 {
            lines.push(line(
                "f",
                if i % 2 == 0 { "a" } else { "b" },
                1000 + i,
                &format!("m{i}"),
            ));
        }
        lines.push(line("g", "c", 5, "other"));
        store.append_logs(&lines, 1 << 40).unwrap();

        let groups = store.log_groups("000000000000", "us-east-1").unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].function, "f");
        assert_eq!(groups[0].created_ms, 1000);
        assert!(groups[0].stored_bytes > 0);
        assert!(
            store
                .log_groups("111111111111", "us-east-1")
                .unwrap()
                .is_empty()
        );

        let streams = store.log_streams(&key("f")).unwrap();
        assert_eq!(
            streams,
            vec![
                LogStreamRow {
                    name: "a".into(),
                    first_ms: 1000,
                    last_ms: 1008
                },
                LogStreamRow {
                    name: "b".into(),
                    first_ms: 1001,
                    last_ms: 1009
                },
            ]
        );

        // Forward in pages of three, resuming at the last position read.
        let f = key("f");
        let all = StreamFilter::All;
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let r = store
                .scan_logs(
                    &LogScan {
                        key: &f,
                        streams: &all,
                        from_ms: 1002,
                        to_ms: 1009,
                        cursor,
                        backward: false,
                        max_rows: 3,
                        max_keep: 100,
                    },
                    &mut |_| true,
                )
                .unwrap();
            seen.extend(r.events.iter().map(|e| e.message.clone()));
            cursor = r.last;
            if r.exhausted {
                break;
            }
        }
        assert_eq!(seen, ["m2", "m3", "m4", "m5", "m6", "m7", "m8"]);

        // Backward, one stream, a predicate, stopping when the page is full.
        let only_b = StreamFilter::Names(vec!["b".into()]);
        let r = store
            .scan_logs(
                &LogScan {
                    key: &f,
                    streams: &only_b,
                    from_ms: i64::MIN,
                    to_ms: i64::MAX,
                    cursor: None,
                    backward: true,
                    max_rows: 100,
                    max_keep: 2,
                },
                &mut |m| m != "m7",
            )
            .unwrap();
        let got: Vec<&str> = r.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(got, ["m9", "m5"]);
        assert!(!r.exhausted);
        let prefix = StreamFilter::Prefix("a".into());
        let r = store
            .scan_logs(
                &LogScan {
                    key: &f,
                    streams: &prefix,
                    from_ms: i64::MIN,
                    to_ms: i64::MAX,
                    cursor: None,
                    backward: false,
                    max_rows: 100,
                    max_keep: 100,
                },
                &mut |_| true,
            )
            .unwrap();
        assert_eq!(r.events.len(), 5);
        assert!(r.exhausted);

        store.set_log_retention(&f, Some(30)).unwrap();
        assert_eq!(
            store.log_group(&f).unwrap().unwrap().retention_days,
            Some(30)
        );
        store.set_log_retention(&f, None).unwrap();
        assert_eq!(store.log_group(&f).unwrap().unwrap().retention_days, None);

        store.delete_log_group(&f).unwrap();
        assert_eq!(store.log_group(&f).unwrap(), None);
        assert!(store.log_streams(&f).unwrap().is_empty());
        assert!(store.log_group(&key("g")).unwrap().is_some());
    }

    #[test]
    fn expiry_follows_each_groups_policy_and_keeps_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let day = 86_400_000;
        let now = lamina_model::now_millis();
        let mut lines = Vec::new();
        // Old lines in three groups, and a new one in each: more than one batch of the old.
        for f in ["default", "short", "long"] {
            for i in 0..(EXPIRE_BATCH_FOR_TESTS + 10) {
                lines.push(line(f, "s", now - 10 * day + i, "old"));
            }
            lines.push(line(f, "s", now, "new"));
        }
        store.append_logs(&lines, 1 << 40).unwrap();
        store.set_log_retention(&key("short"), Some(1)).unwrap();
        store.set_log_retention(&key("long"), Some(30)).unwrap();
        // The server's default keeps seven days; "short" keeps one, "long" thirty.
        let gone = store.expire_logs(now - 7 * day).unwrap();
        assert_eq!(gone as i64, 2 * (EXPIRE_BATCH_FOR_TESTS + 10));
        let left = |f: &str| {
            store
                .scan_logs(
                    &LogScan {
                        key: &key(f),
                        streams: &StreamFilter::All,
                        from_ms: i64::MIN,
                        to_ms: i64::MAX,
                        cursor: None,
                        backward: false,
                        max_rows: 1_000_000,
                        max_keep: 1_000_000,
                    },
                    &mut |_| true,
                )
                .unwrap()
                .events
                .len()
        };
        assert_eq!(left("default"), 1);
        assert_eq!(left("short"), 1);
        assert_eq!(left("long") as i64, EXPIRE_BATCH_FOR_TESTS + 11);
        // Sizes follow: one line of "new" and its overhead.
        let sizes: Vec<(String, i64)> = store
            .log_groups("000000000000", "us-east-1")
            .unwrap()
            .into_iter()
            .map(|g| (g.function, g.stored_bytes))
            .collect();
        assert!(sizes.contains(&("default".into(), 103)), "{sizes:?}");
        assert!(sizes.contains(&("short".into(), 103)), "{sizes:?}");
        // A group whose every line expired has no size left, and goes with its last line.
        store.delete_log_group(&key("default")).unwrap();
        store
            .append_logs(&[line("gone", "s", now - 10 * day, "x")], 1 << 40)
            .unwrap();
        store.expire_logs(now - 7 * day).unwrap();
        assert_eq!(store.log_group(&key("gone")).unwrap(), None);
    }

    #[test]
    fn lines_stored_before_numbered_streams_keep_ids_streams_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A database as the build before wrote it: lines carrying their names as text.
            let c = rusqlite::Connection::open(dir.path().join("lamina.db")).unwrap();
            for (i, sql) in crate::db::MIGRATIONS[..14].iter().enumerate() {
                c.execute_batch(sql).unwrap();
                c.pragma_update(None, "user_version", (i + 1) as i64)
                    .unwrap();
            }
            c.execute_batch(
                "INSERT INTO log_events (id, account, region, function, stream, ts_ms, message)
                 VALUES (7, '000000000000', 'us-east-1', 'f', 'a', 1000, 'm7'),
                        (9, '000000000000', 'us-east-1', 'f', 'b', 1001, 'm9'),
                        (12, '000000000000', 'us-east-1', 'g', 'a', 1002, 'm12');
                 INSERT INTO log_sizes VALUES ('000000000000', 'us-east-1', 'f', 206),
                                              ('000000000000', 'us-east-1', 'g', 103);",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let f = store.logs(&key("f"), 0, 10).unwrap();
        let got: Vec<(i64, &str, i64, &str)> = f
            .iter()
            .map(|e| (e.id, e.stream.as_str(), e.ts_ms, e.message.as_str()))
            .collect();
        assert_eq!(got, [(7, "a", 1000, "m7"), (9, "b", 1001, "m9")]);
        let streams: Vec<String> = store
            .log_streams(&key("g"))
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(streams, ["a"]);
        assert_eq!(
            store.log_group(&key("f")).unwrap().unwrap().stored_bytes,
            206
        );
        // New lines go into the same streams, after the old ones; the newest line's id (12)
        // is not handed out again, though its group is gone.
        store.delete_log_group(&key("g")).unwrap();
        store
            .append_logs(&[line("f", "a", 1003, "new")], 1 << 40)
            .unwrap();
        let a = store
            .scan_logs(
                &LogScan {
                    key: &key("f"),
                    streams: &StreamFilter::Names(vec!["a".into()]),
                    from_ms: i64::MIN,
                    to_ms: i64::MAX,
                    cursor: None,
                    backward: false,
                    max_rows: 10,
                    max_keep: 10,
                },
                &mut |_| true,
            )
            .unwrap();
        let got: Vec<&str> = a.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(got, ["m7", "new"]);
        assert!(a.events[1].id > 12);
        assert_eq!(store.last_log_id().unwrap(), a.events[1].id);
    }

    #[test]
    fn streams_the_size_bound_emptied_are_not_listed_and_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .append_logs(&[line("f", "a", 1, "x")], 1 << 40)
            .unwrap();
        // Room for one line of one byte: "x" goes, and stream "a" with it.
        store
            .append_logs(
                &[line("f", "b", 2, "y")],
                crate::logs::ROW_OVERHEAD as u64 + 1,
            )
            .unwrap();
        let names = |store: &Store| -> Vec<String> {
            store
                .log_streams(&key("f"))
                .unwrap()
                .into_iter()
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(names(&store), ["b"]);
        let rows = |store: &Store| -> i64 {
            store
                .conn()
                .query_row("SELECT COUNT(*) FROM log_streams", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(rows(&store), 2);
        // The expiry sweep removes the empty stream's row (nothing is old enough to expire).
        assert_eq!(store.expire_logs(0).unwrap(), 0);
        assert_eq!(rows(&store), 1);
        assert_eq!(names(&store), ["b"]);
    }

    #[test]
    fn ids_go_on_after_the_newest_lines_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .append_logs(&[line("f", "a", 1, "x"), line("g", "b", 2, "y")], 1 << 40)
            .unwrap();
        let newest = store.last_log_id().unwrap();
        store.delete_log_group(&key("g")).unwrap();
        store
            .append_logs(&[line("f", "a", 3, "z")], 1 << 40)
            .unwrap();
        let f = store.logs(&key("f"), 0, 10).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[1].id > newest, "{f:?} after {newest}");
    }

    /// The expiry batch, so that the test spans more than one.
    const EXPIRE_BATCH_FOR_TESTS: i64 = 5_000;

    #[test]
    fn scans_read_the_group_time_index_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let conn = store.conn();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        let group = plan(
            "SELECT id FROM log_lines WHERE grp = (SELECT id FROM log_groups WHERE account = 'a'
             AND region = 'r' AND function = 'f')
             AND ts_ms >= 1 AND ts_ms < 2 AND (ts_ms > 1 OR (ts_ms = 1 AND id > 3)) ORDER BY ts_ms, id LIMIT 10",
        );
        assert!(group.contains("log_lines_group_time"), "{group}");
        assert!(!group.contains("TEMP B-TREE"), "{group}");
        // Some streams by prefix: still the group's time index, the streams a filter.
        let prefix = plan(
            "SELECT id FROM log_lines WHERE grp = 1 AND stream IN
             (SELECT id FROM log_streams WHERE grp = 1 AND substr(name, 1, 1) = 'a')
             AND ts_ms >= 1 AND ts_ms < 2 ORDER BY ts_ms, id LIMIT 10",
        );
        assert!(!prefix.contains("TEMP B-TREE"), "{prefix}");
        // One stream: the index `scan_logs` names serves the order without sorting.
        let stream = plan(
            "SELECT id FROM log_lines INDEXED BY log_lines_stream_time
             WHERE grp = 1 AND stream = (SELECT id FROM log_streams WHERE grp = 1 AND name = 's')
             AND ts_ms >= 1 AND ts_ms < 2 ORDER BY ts_ms DESC, id DESC LIMIT 10",
        );
        assert!(!stream.contains("TEMP B-TREE"), "{stream}");
        assert!(stream.contains("log_lines_stream_time"), "{stream}");
        // Expiry, a group at a time: the group's time index, not a scan of every line.
        let expiry = plan("SELECT id FROM log_lines WHERE grp = 1 AND ts_ms < 2 LIMIT 10");
        assert!(expiry.contains("log_lines_group_time"), "{expiry}");
    }
}
