//! Layer versions: lists that match and page, and policies with revisions.

use std::io::{Cursor, Write};

use super::*;

const LIMITS: ExtractLimits = ExtractLimits {
    max_unzipped_bytes: 1 << 20,
    max_entries: 100,
};

const AT: (&str, &str) = ("000000000000", "us-east-1");

fn publish(store: &Store, name: &str, runtimes: &[&str], architectures: &[&str]) -> u64 {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("m.py", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(name.as_bytes()).unwrap();
    let zip = w.finish().unwrap().into_inner();
    let new = NewLayerVersion {
        account: AT.0.into(),
        region: AT.1.into(),
        name: name.into(),
        description: String::new(),
        license: None,
        runtimes: runtimes.iter().map(|r| r.to_string()).collect(),
        architectures: architectures.iter().map(|a| a.to_string()).collect(),
        zip: &zip,
    };
    store.publish_layer(new, LIMITS, u64::MAX).unwrap().version
}

fn latest(store: &Store, m: LayerMatch<'_>, after: Option<&str>) -> Vec<(String, u64)> {
    let found = store.latest_layers(AT, m, after, 10).unwrap();
    found.into_iter().map(|v| (v.name, v.version)).collect()
}

#[test]
fn lists_show_the_newest_matching_versions_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    publish(&store, "rt", &["python3.11"], &["x86_64"]);
    publish(&store, "rt", &["python3.12"], &["arm64"]);
    publish(&store, "other", &[], &[]);
    let all = latest(&store, (None, None), None);
    assert_eq!(all, [("other".into(), 1), ("rt".into(), 2)]);
    let rt = |v| vec![("rt".to_owned(), v)];
    assert_eq!(latest(&store, (Some("python3.11"), None), None), rt(1));
    assert_eq!(latest(&store, (None, Some("arm64")), None), rt(2));
    assert_eq!(latest(&store, (None, Some("x86_64")), None), rt(1));
    assert!(latest(&store, (Some("python3.11"), Some("arm64")), None).is_empty());
    assert_eq!(latest(&store, (None, None), Some("other")), rt(2));
    // A deleted version no longer matches: the older one that does shows.
    store.delete_layer_version(AT.0, AT.1, "rt", 2).unwrap();
    assert_eq!(latest(&store, (None, None), Some("other")), rt(1));
    assert!(latest(&store, (None, Some("arm64")), None).is_empty());

    publish(&store, "rt", &["python3.12"], &[]);
    let versions = |m, before, limit| {
        let found = store.layer_versions(("000000000000", "us-east-1", "rt"), m, before, limit);
        found.unwrap().iter().map(|v| v.version).collect::<Vec<_>>()
    };
    assert_eq!(versions((None, None), None, 10), [3, 1]);
    assert_eq!(versions((None, None), None, 1), [3]);
    assert_eq!(versions((None, None), Some(3), 1), [1]);
    assert_eq!(versions((Some("python3.12"), None), None, 10), [3]);
    assert!(versions((None, None), Some(1), 10).is_empty());
}

#[test]
fn policy_revisions_change_with_the_policy_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    publish(&store, "lib", &[], &[]);
    let at = (AT.0, AT.1, "lib", 1);
    let read = || {
        store
            .layer_version(AT.0, AT.1, "lib", 1, false)
            .unwrap()
            .unwrap()
    };
    assert_eq!(read().policy_revision, "");
    // Nothing to match before the first statement.
    let stale = store.change_layer_policy(at, Some(""), |_| Ok(()));
    assert!(
        matches!(stale, Err(StoreError::RevisionMismatch)),
        "{stale:?}"
    );
    let ((), r1) = store
        .change_layer_policy(at, None, |p| {
            p.push(serde_json::json!({ "Sid": "a" }));
            Ok(())
        })
        .unwrap();
    assert_eq!(read().policy_revision, r1);
    assert_eq!(read().policy_revision, r1);
    let ((), r2) = store
        .change_layer_policy(at, Some(&r1), |_| Ok(()))
        .unwrap();
    assert_ne!(r1, r2);
    let stale = store.change_layer_policy(at, Some(&r1), |_| Ok(()));
    assert!(
        matches!(stale, Err(StoreError::RevisionMismatch)),
        "{stale:?}"
    );
    // A refused change changes nothing.
    let refused = store.change_layer_policy(at, None, |p| {
        p.clear();
        Err::<(), _>(lamina_model::LambdaError::invalid_parameter("no"))
    });
    assert!(matches!(refused, Err(StoreError::Rejected(_))));
    assert_eq!((read().policy.len(), read().policy_revision), (1, r2));
}

#[test]
fn policies_stored_before_revisions_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let before = crate::db::MIGRATIONS
        .iter()
        .position(|m| m.contains("ADD COLUMN policy_revision"))
        .unwrap();
    for (i, sql) in crate::db::MIGRATIONS[..before].iter().enumerate() {
        let tx = conn.transaction().unwrap();
        tx.execute_batch(sql).unwrap();
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .unwrap();
        tx.commit().unwrap();
    }
    conn.execute_batch(
        "INSERT INTO layer_versions (account, region, name, version, description, runtimes,
            architectures, code_sha256, code_size, unzipped_size, created_ms, policy)
         VALUES ('a', 'r', 'shared', 1, '', '[]', '[]', 'x', 1, 1, 0, '[{\"Sid\":\"s\"}]'),
            ('a', 'r', 'private', 1, '', '[]', '[]', 'x', 1, 1, 0, '[]');",
    )
    .unwrap();
    drop(conn);
    let conn = crate::db::open(&path).unwrap();
    let revision = |name: &str| -> String {
        conn.query_row(
            "SELECT policy_revision FROM layer_versions WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(revision("shared").len(), 32);
    assert_eq!(revision("private"), "");
}
