//! Opening the SQLite database and bringing its schema up to date.
//!
//! Migrations are an append-only list; `PRAGMA user_version` records how many have run. Each one
//! runs in its own transaction together with the version bump, so a crash leaves the schema at a
//! whole number of migrations.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: functions and their versions.
    "CREATE TABLE functions (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        UNIQUE (account, region, name)
    );
    CREATE TABLE function_versions (
        function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        spec TEXT NOT NULL,
        code_sha256 TEXT NOT NULL,
        code_size INTEGER NOT NULL,
        unzipped_size INTEGER NOT NULL,
        revision_id TEXT NOT NULL,
        last_modified_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        last_update_status TEXT,
        PRIMARY KEY (function_id, version)
    );
    CREATE INDEX function_versions_code ON function_versions(code_sha256);",
    // 2: function logs.
    "CREATE TABLE log_events (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        function TEXT NOT NULL,
        stream TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX log_events_function ON log_events(account, region, function, id);
    CREATE INDEX log_events_time ON log_events(ts_ms);",
    // 3: usage records, one per invocation; the request id makes a record count once.
    "CREATE TABLE usage_records (
        request_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        function TEXT NOT NULL,
        version TEXT NOT NULL,
        architecture TEXT NOT NULL,
        memory_mb INTEGER NOT NULL,
        ephemeral_mb INTEGER NOT NULL,
        init_ms REAL,
        duration_ms REAL NOT NULL,
        billed_duration_ms INTEGER NOT NULL,
        billed_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        ts_ms INTEGER NOT NULL
    );
    CREATE INDEX usage_records_account_time ON usage_records(account, ts_ms);",
    // 4: reserved concurrency per function (NULL: none).
    "ALTER TABLE functions ADD COLUMN reserved_concurrency INTEGER;",
    // 5: published versions (numbers never reused) and aliases.
    "ALTER TABLE functions ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE aliases (
        function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        description TEXT NOT NULL,
        routing TEXT NOT NULL DEFAULT '{}',
        revision_id TEXT NOT NULL,
        PRIMARY KEY (function_id, name)
    );",
    // 6: layers. A deleted version is hidden but kept: functions that use it keep working.
    "CREATE TABLE layers (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        last_version INTEGER NOT NULL,
        PRIMARY KEY (account, region, name)
    );
    CREATE TABLE layer_versions (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        description TEXT NOT NULL,
        license TEXT,
        runtimes TEXT NOT NULL,
        architectures TEXT NOT NULL,
        code_sha256 TEXT NOT NULL,
        code_size INTEGER NOT NULL,
        unzipped_size INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        policy TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (account, region, name, version)
    );",
    // 7: bytes of log stored per function, for size-bounded retention (100: `logs::ROW_OVERHEAD`).
    "CREATE TABLE log_sizes (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        function TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (account, region, function)
    );
    INSERT INTO log_sizes SELECT account, region, function, SUM(LENGTH(CAST(message AS BLOB)) + 100)
        FROM log_events GROUP BY account, region, function;",
    // 8: asynchronous invocation (the event queue and event invoke configurations), and
    // resource-based policies. All go with their function.
    "CREATE TABLE async_events (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL UNIQUE,
        function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
        qualifier TEXT,
        payload BLOB NOT NULL,
        received_ms INTEGER NOT NULL,
        due_ms INTEGER NOT NULL,
        leased INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        backoff_ms INTEGER NOT NULL DEFAULT 0,
        hops INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX async_events_due ON async_events(function_id, due_ms);
    CREATE TABLE event_invoke_configs (
        function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
        qualifier TEXT NOT NULL,
        max_retries INTEGER,
        max_age_s INTEGER,
        on_success TEXT,
        on_failure TEXT,
        last_modified_ms INTEGER NOT NULL,
        PRIMARY KEY (function_id, qualifier)
    );
    CREATE TABLE function_policies (
        function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
        qualifier TEXT NOT NULL,
        statements TEXT NOT NULL,
        revision_id TEXT NOT NULL,
        PRIMARY KEY (function_id, qualifier)
    );",
    // 9: SNS topics, subscriptions, and the outbox of deliveries; subscriptions go with their
    // topic, deliveries with their subscription.
    "CREATE TABLE sns_topics (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        attributes TEXT NOT NULL,
        tags TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (account, region, name)
    );
    CREATE TABLE sns_subscriptions (
        id INTEGER PRIMARY KEY,
        arn TEXT NOT NULL UNIQUE,
        topic_id INTEGER NOT NULL REFERENCES sns_topics(id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        protocol TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        attributes TEXT NOT NULL,
        token TEXT,
        confirmed INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX sns_subscriptions_topic ON sns_subscriptions(topic_id);
    CREATE INDEX sns_subscriptions_owner ON sns_subscriptions(owner);
    CREATE TABLE sns_deliveries (
        id INTEGER PRIMARY KEY,
        subscription_id INTEGER NOT NULL REFERENCES sns_subscriptions(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body BLOB NOT NULL,
        attempts INTEGER NOT NULL,
        due_ms INTEGER NOT NULL,
        hops INTEGER NOT NULL,
        leased INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX sns_deliveries_due ON sns_deliveries(leased, due_ms);
    CREATE INDEX sns_deliveries_subscription ON sns_deliveries(subscription_id);",
    // 10: function URLs and HTTP APIs.
    "CREATE TABLE function_urls (
        function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
        qualifier TEXT NOT NULL,
        url_id TEXT NOT NULL UNIQUE,
        auth_type TEXT NOT NULL,
        cors TEXT,
        invoke_mode TEXT,
        created_ms INTEGER NOT NULL,
        modified_ms INTEGER NOT NULL,
        PRIMARY KEY (function_id, qualifier)
    );
    CREATE TABLE http_apis (
        api_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        doc TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX http_apis_owner ON http_apis(account, region);",
    // 11: the image registry: repositories, the blobs each may see, manifests and tags.
    "CREATE TABLE ecr_repositories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        tag_mutability TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        UNIQUE (account, region, name)
    );
    CREATE TABLE ecr_blobs (
        repo_id INTEGER NOT NULL REFERENCES ecr_repositories(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (repo_id, digest)
    );
    CREATE INDEX ecr_blobs_digest ON ecr_blobs(digest);
    CREATE TABLE ecr_images (
        repo_id INTEGER NOT NULL REFERENCES ecr_repositories(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        pushed_ms INTEGER NOT NULL,
        refs TEXT NOT NULL,
        PRIMARY KEY (repo_id, digest)
    );
    CREATE TABLE ecr_tags (
        repo_id INTEGER NOT NULL REFERENCES ecr_repositories(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repo_id, tag)
    );",
    // 12: EC2's VPC objects: VPCs, subnets, security groups and their rules (one row per CIDR,
    // going with their group), NAT gateways (kept when deleted). Tags are JSON maps.
    "CREATE TABLE ec2_vpcs (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        cidr TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX ec2_vpcs_owner ON ec2_vpcs(account, region);
    CREATE TABLE ec2_subnets (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        vpc_id TEXT NOT NULL REFERENCES ec2_vpcs(id),
        cidr TEXT NOT NULL,
        availability_zone TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX ec2_subnets_owner ON ec2_subnets(account, region);
    CREATE INDEX ec2_subnets_vpc ON ec2_subnets(vpc_id);
    CREATE TABLE ec2_security_groups (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        vpc_id TEXT NOT NULL REFERENCES ec2_vpcs(id),
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        created_ms INTEGER NOT NULL,
        UNIQUE (vpc_id, name)
    );
    CREATE INDEX ec2_security_groups_owner ON ec2_security_groups(account, region);
    CREATE TABLE ec2_sg_rules (
        id TEXT PRIMARY KEY,
        group_id TEXT NOT NULL REFERENCES ec2_security_groups(id) ON DELETE CASCADE,
        egress INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        from_port INTEGER,
        to_port INTEGER,
        cidr TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX ec2_sg_rules_group ON ec2_sg_rules(group_id, egress);
    CREATE TABLE ec2_nat_gateways (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        vpc_id TEXT NOT NULL REFERENCES ec2_vpcs(id),
        subnet_id TEXT NOT NULL,
        connectivity TEXT NOT NULL,
        state TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        created_ms INTEGER NOT NULL,
        deleted_ms INTEGER
    );
    CREATE INDEX ec2_nat_gateways_owner ON ec2_nat_gateways(account, region);
    CREATE INDEX ec2_nat_gateways_vpc ON ec2_nat_gateways(vpc_id, state);",
    // 13: CloudWatch Logs' view of function logs: events by time and by stream (every index
    // ends in the row id, so `ORDER BY ts_ms, id` reads them in order), and a retention
    // policy per log group, which overrides the server's default.
    "CREATE INDEX log_events_function_time ON log_events(account, region, function, ts_ms);
    CREATE INDEX log_events_stream_time ON log_events(account, region, function, stream, ts_ms);
    CREATE TABLE log_retention (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        function TEXT NOT NULL,
        days INTEGER NOT NULL,
        PRIMARY KEY (account, region, function)
    );",
    // 14: per-function metric history: one row per function and slot, minutes (`step_s` 60)
    // for a day, then 15-minute slots (`step_s` 900) for 15 days; `durations` is a fixed
    // log-scale histogram (64 little-endian u32 counts), so slots merge exactly.
    "CREATE TABLE metric_slots (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        function TEXT NOT NULL,
        step_s INTEGER NOT NULL,
        t_ms INTEGER NOT NULL,
        invocations INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        throttles INTEGER NOT NULL,
        cold_starts INTEGER NOT NULL,
        concurrency_max INTEGER NOT NULL,
        mb_ms INTEGER NOT NULL,
        durations BLOB NOT NULL,
        PRIMARY KEY (account, region, function, step_s, t_ms)
    ) WITHOUT ROWID;
    CREATE INDEX metric_slots_age ON metric_slots(step_s, t_ms);",
    // 15: log lines name their group and their stream by number. Every line used to carry its
    // account, region, function and stream as text, and so did three of its four index entries:
    // about 320 bytes stored beside each line, where the size bound counts 100, and most of the
    // log writer's time went to comparing and moving those keys. Ids and times are kept, so
    // cursors stay valid. Ids are never handed out again: `log_ids` keeps the highest ever
    // given, written once per batch (`AUTOINCREMENT` writes its sequence once per line), so
    // that a live tail that started after the newest line sees every later one, even if the
    // newest lines were deleted meanwhile.
    "CREATE TABLE log_groups (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        function TEXT NOT NULL,
        UNIQUE (account, region, function)
    );
    CREATE TABLE log_streams (
        id INTEGER PRIMARY KEY,
        grp INTEGER NOT NULL,
        name TEXT NOT NULL,
        UNIQUE (grp, name)
    );
    CREATE TABLE log_ids (last INTEGER NOT NULL);
    INSERT INTO log_ids SELECT COALESCE(MAX(id), 0) FROM log_events;
    CREATE TABLE log_lines (
        id INTEGER PRIMARY KEY,
        grp INTEGER NOT NULL,
        stream INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        message TEXT NOT NULL
    );
    INSERT INTO log_groups (account, region, function)
        SELECT DISTINCT account, region, function FROM log_events;
    INSERT INTO log_streams (grp, name)
        SELECT DISTINCT g.id, e.stream FROM log_events e JOIN log_groups g
            ON g.account = e.account AND g.region = e.region AND g.function = e.function;
    INSERT INTO log_lines (id, grp, stream, ts_ms, message)
        SELECT e.id, g.id, s.id, e.ts_ms, e.message FROM log_events e
            JOIN log_groups g
                ON g.account = e.account AND g.region = e.region AND g.function = e.function
            JOIN log_streams s ON s.grp = g.id AND s.name = e.stream;
    DROP TABLE log_events;
    CREATE INDEX log_lines_group ON log_lines(grp, id);
    CREATE INDEX log_lines_group_time ON log_lines(grp, ts_ms);
    CREATE INDEX log_lines_stream_time ON log_lines(stream, ts_ms);
    CREATE INDEX log_lines_time ON log_lines(ts_ms);",
    // 16: no index of all lines by time. Only the retention sweep read it, and it now expires
    // each group through the group's own time index; every stored line paid for a fifth B-tree.
    "DROP INDEX log_lines_time;",
    // 17: subscriptions with a filter policy, counted against SNS's quotas per topic and per
    // account whenever one more takes a policy.
    "CREATE INDEX sns_subscriptions_filtered ON sns_subscriptions(topic_id)
        WHERE json_extract(attributes, '$.FilterPolicy') <> '';",
    // 18: delivery ids never handed out again. A delivery's attempt settles its row by id; when
    // the row went meanwhile (its subscription or topic deleted) and it had the highest id,
    // SQLite gave that id to the next delivery queued, and the late settlement deleted or
    // rescheduled that one instead.
    "CREATE TABLE sns_deliveries_18 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subscription_id INTEGER NOT NULL REFERENCES sns_subscriptions(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body BLOB NOT NULL,
        attempts INTEGER NOT NULL,
        due_ms INTEGER NOT NULL,
        hops INTEGER NOT NULL,
        leased INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL
    );
    INSERT INTO sns_deliveries_18 (id, subscription_id, kind, message_id, body, attempts, due_ms,
        hops, leased, created_ms)
        SELECT id, subscription_id, kind, message_id, body, attempts, due_ms, hops, leased,
            created_ms FROM sns_deliveries;
    DROP TABLE sns_deliveries;
    ALTER TABLE sns_deliveries_18 RENAME TO sns_deliveries;
    CREATE INDEX sns_deliveries_due ON sns_deliveries(leased, due_ms);
    CREATE INDEX sns_deliveries_subscription ON sns_deliveries(subscription_id);",
    // 19: a layer version's policy has a revision id, changed with every change of the policy and
    // checked against a request's RevisionId. Policies already stored get one now.
    "ALTER TABLE layer_versions ADD COLUMN policy_revision TEXT NOT NULL DEFAULT '';
    UPDATE layer_versions SET policy_revision = lower(hex(randomblob(16))) WHERE policy <> '[]';",
    // 20: an invocation's streamed bytes beyond the first 6 MB of its response, billed apart.
    "ALTER TABLE usage_records ADD COLUMN streamed_bytes INTEGER NOT NULL DEFAULT 0;",
    // Whether a function may run on in a recursive loop (PutFunctionRecursionConfig `Allow`).
    "ALTER TABLE functions ADD COLUMN recursive_loop_allowed INTEGER NOT NULL DEFAULT 0;",
];

/// Compiled statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 256;

/// Opens the database at `path`, in WAL mode with full durability, and migrates it.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk when it returns, so an acknowledged write survives power loss too.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Checkpoints run on a connection of their own (see `spawn_checkpointer`), so that commits
    // do not copy the WAL into the database themselves; this is only the backstop.
    conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
    // Every statement the store runs stays compiled: rusqlite keeps 16 by default, fewer than
    // an asynchronous event's insert, lease, settlement, usage and log lines use in turn, so
    // each would be parsed and planned again at every use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans that do not depend on bound values. Otherwise SQLite compiles a `LIMIT ?` or an
    // `x = ?` it estimates from the value into the plan and expires the statement when its
    // bindings are cleared, which rusqlite does whenever a statement returns to the cache: the
    // statement would be parsed and planned again at every use.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Checkpoints the WAL in the background, on a connection of its own, until `stop` is set.
pub fn spawn_checkpointer(
    path: &Path,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), crate::StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(error = %e, "checkpointing the database failed");
                }
            }
        })
        .map_err(|source| {
            crate::StoreError::Code(crate::CodeError::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    // A migration that rewrote a table (15 copies every log line) leaves a WAL as large as the
    // data it wrote: copied into the database now and truncated, not kept at that size. Pages
    // the old table freed are reused by new data; the file does not shrink.
    if current > 0 && (current as usize) < MIGRATIONS.len() {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// The schema version this build writes.
#[cfg(test)]
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db");
        let c = open(&p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, schema_version());
        drop(c);
        let c = open(&p).unwrap();
        let mode: String = c
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// Set in the child process of [`commits_sync_without_fsync`].
    const NO_FSYNC: &str = "LAMINA_STORE_TEST_NO_FSYNC";

    /// Synced commits call `fdatasync`, never `fsync` (see `.cargo/config.toml`): run again as a
    /// child process whose `fsync` fails (a seccomp filter), a commit in full durability must
    /// still succeed.
    #[test]
    fn commits_sync_without_fsync() {
        if std::env::var_os(NO_FSYNC).is_some() {
            let rules = [(libc::SYS_fsync, vec![])].into_iter().collect();
            let filter = seccompiler::SeccompFilter::new(
                rules,
                seccompiler::SeccompAction::Allow,
                seccompiler::SeccompAction::Errno(libc::EIO as u32),
                std::env::consts::ARCH.try_into().unwrap(),
            )
            .unwrap();
            let program: seccompiler::BpfProgram = filter.try_into().unwrap();
            seccompiler::apply_filter(&program).unwrap();
            // The filter works: `fsync` fails here.
            let dir = tempfile::tempdir().unwrap();
            let probe = std::fs::File::create(dir.path().join("probe")).unwrap();
            assert!(probe.sync_all().is_err(), "fsync is not filtered");
            let mut c = open(&dir.path().join("db")).unwrap();
            let synchronous: i64 = c
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            assert_eq!(synchronous, 2);
            let tx = c.transaction().unwrap();
            tx.execute("CREATE TABLE t (x)", []).unwrap();
            tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
            tx.commit()
                .expect("a synced commit that does not call fsync");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "db::tests::commits_sync_without_fsync"])
            .args(["--test-threads", "1", "--nocapture"])
            .env(NO_FSYNC, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
