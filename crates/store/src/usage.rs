//! Usage records: one per invocation, inserted in batches, counted once (the request id is the
//! key), and summed per function for a time range.

use rusqlite::params;

use crate::{Store, StoreError};

/// One invocation's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub request_id: String,
    pub account: String,
    pub region: String,
    pub function: String,
    pub version: String,
    /// `x86_64` or `arm64`.
    pub architecture: String,
    pub memory_mb: u32,
    pub ephemeral_mb: u32,
    pub init_ms: Option<f64>,
    pub duration_ms: f64,
    /// The invoke phase alone, rounded up to the millisecond.
    pub billed_duration_ms: u64,
    /// Milliseconds billed, rounded up (INIT included), as the REPORT line shows.
    pub billed_ms: u64,
    /// `success`, `error`, `timeout`, ...
    pub outcome: String,
    pub ts_ms: i64,
    /// Bytes of a streamed response beyond its first 6 MB, which are billed apart.
    pub streamed_bytes: u64,
}

/// Usage of one function and architecture in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUsage {
    pub function: String,
    pub architecture: String,
    pub requests: u64,
    /// Σ memory MB × billed ms.
    pub mb_ms: u128,
    /// Σ memory MB × ceil(duration) ms, INIT excluded.
    pub mb_ms_without_init: u128,
    /// Σ (ephemeral MB − 512) × billed ms.
    pub storage_mb_ms: u128,
    /// Σ bytes streamed beyond each response's first 6 MB.
    pub streamed_bytes: u128,
}

/// Inserts one record in a transaction (ignored if its key is already stored).
pub(crate) fn insert(tx: &rusqlite::Transaction<'_>, r: &UsageRecord) -> Result<usize, StoreError> {
    Ok(tx
        .prepare_cached(
            "INSERT OR IGNORE INTO usage_records (request_id, account, region, function, version,
                architecture, memory_mb, ephemeral_mb, init_ms, duration_ms, billed_duration_ms, billed_ms, outcome, ts_ms,
                streamed_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            r.request_id,
            r.account,
            r.region,
            r.function,
            r.version,
            r.architecture,
            r.memory_mb,
            r.ephemeral_mb,
            r.init_ms,
            r.duration_ms,
            r.billed_duration_ms as i64,
            r.billed_ms as i64,
            r.outcome,
            r.ts_ms,
            r.streamed_bytes as i64
        ])?)
}

impl Store {
    /// Inserts usage records; a record whose request id is already stored is ignored. The commit
    /// does not wait for the disk (see [`Store::unsynced`]): no caller waits for a usage record,
    /// and one written after its invocation answered could be lost to a crash anyway.
    pub fn record_usage(&self, records: &[UsageRecord]) -> Result<usize, StoreError> {
        self.unsynced(|conn| {
            let tx = conn.transaction()?;
            let mut inserted = 0;
            for r in records {
                inserted += insert(&tx, r)?;
            }
            tx.commit()?;
            Ok(inserted)
        })
    }

    /// Usage of an account in `[from_ms, to_ms)`, per function and architecture.
    pub fn usage(
        &self,
        account: &str,
        from_ms: i64,
        to_ms: i64,
        function: Option<&str>,
    ) -> Result<Vec<FunctionUsage>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT function, architecture, COUNT(*),
                    COALESCE(SUM(memory_mb * billed_ms), 0),
                    COALESCE(SUM(memory_mb * billed_duration_ms), 0),
                    COALESCE(SUM(MAX(ephemeral_mb - 512, 0) * billed_ms), 0),
                    COALESCE(SUM(streamed_bytes), 0)
             FROM usage_records
             WHERE account = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND (?4 IS NULL OR function = ?4)
             GROUP BY function, architecture ORDER BY function, architecture",
        )?;
        let rows = stmt.query_map(params![account, from_ms, to_ms, function], |r| {
            Ok(FunctionUsage {
                function: r.get(0)?,
                architecture: r.get(1)?,
                requests: r.get::<_, i64>(2)? as u64,
                mb_ms: r.get::<_, i64>(3)? as u128,
                mb_ms_without_init: r.get::<_, i64>(4)? as u128,
                storage_mb_ms: r.get::<_, i64>(5)? as u128,
                streamed_bytes: r.get::<_, i64>(6)? as u128,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, f: &str, billed: u64) -> UsageRecord {
        UsageRecord {
            request_id: id.into(),
            account: "000000000000".into(),
            region: "us-east-1".into(),
            function: f.into(),
            version: "$LATEST".into(),
            architecture: "x86_64".into(),
            memory_mb: 256,
            ephemeral_mb: 1024,
            init_ms: None,
            duration_ms: billed as f64 - 0.5,
            billed_duration_ms: billed,
            billed_ms: billed,
            outcome: "success".into(),
            ts_ms: 1_000,
            streamed_bytes: 0,
        }
    }

    #[test]
    fn counts_each_request_once_and_sums_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store
                .record_usage(&[rec("a", "f", 10), rec("b", "f", 20), rec("c", "g", 5)])
                .unwrap(),
            3
        );
        assert_eq!(
            store.record_usage(&[rec("a", "f", 10)]).unwrap(),
            0,
            "a replayed record is ignored"
        );
        let u = store.usage("000000000000", 0, 2_000, None).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(
            (u[0].requests, u[0].mb_ms, u[0].storage_mb_ms),
            (2, 256 * 30, 512 * 30)
        );
        assert_eq!(
            store.usage("000000000000", 0, 2_000, Some("g")).unwrap()[0].requests,
            1
        );
        assert!(
            store
                .usage("000000000000", 1_001, 2_000, None)
                .unwrap()
                .is_empty()
        );
    }
}
