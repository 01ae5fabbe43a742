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

/// A forward scan of every time, 100 rows at most.
fn everything<'a>(key: &'a FunctionKey, streams: &'a StreamFilter) -> LogScan<'a> {
    LogScan {
        key,
        streams,
        from_ms: i64::MIN,
        to_ms: i64::MAX,
        cursor: None,
        backward: false,
        max_rows: 100,
        max_keep: 100,
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
        .scan_logs(&everything(&f, &prefix), &mut |_| true)
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

#[test]
fn a_scan_keeps_about_a_megabyte_of_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let big = "x".repeat(MAX_SCAN_BYTES / 2 + 1);
    let lines: Vec<_> = (0..4).map(|i| line("f", "a", 1000 + i, &big)).collect();
    store.append_logs(&lines, 1 << 40).unwrap();
    let f = key("f");
    let r = store
        .scan_logs(&everything(&f, &StreamFilter::All), &mut |_| true)
        .unwrap();
    // The second passes the bound: the page ends with it, and the next resumes after it.
    assert_eq!(r.events.len(), 2);
    assert!(!r.exhausted);
    assert_eq!(r.last.map(|p| p.ts_ms), Some(1001));
}

#[test]
fn reads_of_long_lines_stop_after_a_bounded_read_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let long = "x".repeat(256 << 10);
    let lines: Vec<_> = (0..40).map(|i| line("f", "s", 1000 + i, &long)).collect();
    store.append_logs(&lines, 1 << 40).unwrap();
    let (f, all) = (key("f"), StreamFilter::All);
    // A search matching nothing reads 4 MiB of lines per scan, not all 10 MiB, and each scan
    // resumes where the last one stopped.
    let (mut cursor, mut scans, mut read) = (None, 0, 0);
    loop {
        let mut seen = 0;
        let found = store
            .scan_logs(
                &LogScan {
                    cursor,
                    ..everything(&f, &all)
                },
                &mut |_| {
                    seen += 1;
                    false
                },
            )
            .unwrap();
        assert!(seen <= 16, "{seen} lines of 256 KiB read in one scan");
        (read, scans, cursor) = (read + seen, scans + 1, found.last.or(cursor));
        if found.exhausted {
            break;
        }
    }
    assert_eq!((read, scans), (40, 3));
    // A reader of new lines gets about 1 MiB at a time, and moves on.
    let (mut after, mut pages) = (0, 0);
    loop {
        let page = store.logs(&f, after, 1000).unwrap();
        let Some(last) = page.last() else { break };
        assert!(
            page.len() <= 4,
            "{} lines of 256 KiB in one page",
            page.len()
        );
        (after, pages) = (last.id, pages + 1);
    }
    assert_eq!(pages, 10);
}
