//! Per-function metric history: one row per function and slot, at two resolutions.
//!
//! Minutes (`step_s` 60) are written by the server's aggregator, which flushes what it counted
//! since its last flush; a flush adds to the minute's row (sums add, maxima take the larger,
//! histograms merge), so a minute may be written several times. [`Store::downsample_metrics`]
//! merges minutes older than [`MINUTES_KEPT_MS`] into 15-minute rows (`step_s` 900) and deletes
//! 15-minute rows older than [`SLOTS_KEPT_MS`], in batches of [`SWEEP_BATCH`] rows per
//! transaction. A function therefore holds at most about 1,440 minute rows (plus those
//! written since the last sweep) and 1,440 fifteen-minute rows (15 days × 96): under 3,000 rows
//! of about 350 bytes, whatever its traffic.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use crate::metric_hist::{Histogram, MetricSlot};
use crate::{FunctionKey, Store, StoreError};

/// A minute, ms.
pub const MINUTE_MS: i64 = 60_000;
/// Fifteen minutes, ms: the coarse resolution.
pub const QUARTER_MS: i64 = 15 * MINUTE_MS;
/// How long minute rows are kept before they are merged into 15-minute rows.
pub const MINUTES_KEPT_MS: i64 = 24 * 3_600_000;
/// How long 15-minute rows are kept.
pub const SLOTS_KEPT_MS: i64 = 15 * 86_400_000;
/// Rows moved or deleted per transaction by the sweep.
pub const SWEEP_BATCH: usize = 5_000;

/// A slot read back: its start (epoch ms), its length (s) and its metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRow {
    pub t_ms: i64,
    pub step_s: u32,
    pub slot: MetricSlot,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Minute rows merged into 15-minute rows.
    pub merged: usize,
    /// Rows deleted as too old.
    pub expired: usize,
}

const COLUMNS: &str =
    "invocations, errors, throttles, cold_starts, concurrency_max, mb_ms, durations";

fn slot_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<MetricSlot> {
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(first + i)?.max(0) as u64) };
    Ok(MetricSlot {
        invocations: n(0)?,
        errors: n(1)?,
        throttles: n(2)?,
        cold_starts: n(3)?,
        concurrency_max: n(4)?,
        mb_ms: n(5)?,
        durations: Histogram::from_blob(&r.get::<_, Vec<u8>>(first + 6)?),
    })
}

/// Adds `slot` to the row `(account, region, function, step_s, t_ms)`, creating it if needed.
fn add(
    tx: &rusqlite::Transaction<'_>,
    (account, region, function): (&str, &str, &str),
    step_s: u32,
    t_ms: i64,
    slot: &MetricSlot,
) -> Result<(), StoreError> {
    let existing = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metric_slots
             WHERE account = ?1 AND region = ?2 AND function = ?3 AND step_s = ?4 AND t_ms = ?5"
        ))?
        .query_row(params![account, region, function, step_s, t_ms], |r| {
            slot_of(r, 0)
        })
        .optional()?;
    let mut merged = existing.unwrap_or_default();
    merged.merge(slot);
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO metric_slots (account, region, function, step_s, t_ms, {COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        account,
        region,
        function,
        step_s,
        t_ms,
        merged.invocations as i64,
        merged.errors as i64,
        merged.throttles as i64,
        merged.cold_starts as i64,
        merged.concurrency_max as i64,
        merged.mb_ms as i64,
        merged.durations.to_blob(),
    ])?;
    Ok(())
}

impl Store {
    /// Adds what was counted to each `(function, minute start)`'s row, in one transaction.
    pub fn add_metrics(
        &self,
        minutes: &[(FunctionKey, i64, MetricSlot)],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (key, t_ms, slot) in minutes {
            let t_ms = t_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
            let names = (key.account.as_str(), key.region.as_str(), key.name.as_str());
            add(&tx, names, 60, t_ms, slot)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A function's rows (both resolutions) starting in `[from_ms, to_ms)`, oldest first.
    pub fn metric_rows(
        &self,
        key: &FunctionKey,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<MetricRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT t_ms, step_s, {COLUMNS} FROM metric_slots
             WHERE account = ?1 AND region = ?2 AND function = ?3 AND step_s IN (60, 900)
               AND t_ms >= ?4 AND t_ms < ?5
             ORDER BY t_ms"
        ))?;
        let rows = stmt
            .query_map(
                params![
                    key.account.as_str(),
                    key.region.as_str(),
                    key.name.as_str(),
                    from_ms,
                    to_ms
                ],
                |r| {
                    Ok(MetricRow {
                        t_ms: r.get(0)?,
                        step_s: r.get(1)?,
                        slot: slot_of(r, 2)?,
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Every function of an account and region with its rows in `[from_ms, to_ms)` merged,
    /// by name.
    pub fn metric_totals(
        &self,
        account: &str,
        region: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, MetricSlot)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT function, {COLUMNS} FROM metric_slots
             WHERE account = ?1 AND region = ?2 AND t_ms >= ?3 AND t_ms < ?4"
        ))?;
        let mut totals: HashMap<String, MetricSlot> = HashMap::new();
        let mut rows = stmt.query(params![account, region, from_ms, to_ms])?;
        while let Some(r) = rows.next()? {
            let function: String = r.get(0)?;
            let slot = slot_of(r, 1)?;
            totals.entry(function).or_default().merge(&slot);
        }
        let mut totals: Vec<_> = totals.into_iter().collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(totals)
    }

    /// Merges minute rows older than [`MINUTES_KEPT_MS`] into 15-minute rows and deletes rows
    /// older than [`SLOTS_KEPT_MS`], [`SWEEP_BATCH`] rows per transaction.
    pub fn downsample_metrics(&self, now_ms: i64) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let minutes_before = now_ms - MINUTES_KEPT_MS;
        loop {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let batch: Vec<(String, String, String, i64, MetricSlot)> = tx
                .prepare_cached(&format!(
                    "SELECT account, region, function, t_ms, {COLUMNS} FROM metric_slots
                     WHERE step_s = 60 AND t_ms < ?1 LIMIT ?2"
                ))?
                .query_map(params![minutes_before, SWEEP_BATCH as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, slot_of(r, 4)?))
                })?
                .collect::<Result<_, _>>()?;
            for (account, region, function, t_ms, slot) in &batch {
                let names = (account.as_str(), region.as_str(), function.as_str());
                let quarter = t_ms.div_euclid(QUARTER_MS) * QUARTER_MS;
                add(&tx, names, 900, quarter, slot)?;
                tx.prepare_cached(
                    "DELETE FROM metric_slots
                     WHERE account = ?1 AND region = ?2 AND function = ?3 AND step_s = 60 AND t_ms = ?4",
                )?
                .execute(params![account, region, function, t_ms])?;
            }
            tx.commit()?;
            report.merged += batch.len();
            if batch.len() < SWEEP_BATCH {
                break;
            }
        }
        let expired_before = now_ms - SLOTS_KEPT_MS;
        loop {
            let conn = self.conn();
            let n = conn
                .prepare_cached(
                    "DELETE FROM metric_slots WHERE (account, region, function, step_s, t_ms) IN
                     (SELECT account, region, function, step_s, t_ms FROM metric_slots
                      WHERE step_s = 900 AND t_ms < ?1 LIMIT ?2)",
                )?
                .execute(params![expired_before, SWEEP_BATCH as i64])?;
            report.expired += n;
            if n < SWEEP_BATCH {
                break;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn key(name: &str) -> FunctionKey {
        FunctionKey::parse("123456789012", "us-east-1", name).unwrap()
    }

    fn slot(ms: f64, concurrency: u64) -> MetricSlot {
        let mut s = MetricSlot {
            invocations: 1,
            errors: (ms > 100.0) as u64,
            throttles: 1,
            cold_starts: 0,
            concurrency_max: concurrency,
            mb_ms: 128 * ms.ceil() as u64,
            ..Default::default()
        };
        s.durations.record(ms);
        s
    }

    #[test]
    fn flushes_of_one_minute_add_up() {
        let (_d, s) = store();
        let k = key("f");
        s.add_metrics(&[(k.clone(), 60_000 * 10 + 5, slot(5.0, 2))])
            .unwrap();
        s.add_metrics(&[(k.clone(), 60_000 * 10 + 30_000, slot(500.0, 1))])
            .unwrap();
        let rows = s.metric_rows(&k, 0, i64::MAX).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].t_ms, 600_000);
        assert_eq!(rows[0].slot.invocations, 2);
        assert_eq!(rows[0].slot.errors, 1);
        assert_eq!(rows[0].slot.concurrency_max, 2);
        assert_eq!(rows[0].slot.durations.total(), 2);
        assert!(
            s.metric_rows(&key("other"), 0, i64::MAX)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn downsampling_merges_minutes_exactly() {
        let (_d, s) = store();
        let k = key("f");
        let now: i64 = 100 * 86_400_000;
        // 30 minutes two days ago, starting on a quarter hour: two 15-minute slots.
        let base = now - 2 * 86_400_000;
        let base = base - base.rem_euclid(QUARTER_MS);
        let minutes: Vec<_> = (0..30)
            .map(|i| {
                (
                    k.clone(),
                    base + i * MINUTE_MS,
                    slot(i as f64 * 10.0, i as u64),
                )
            })
            .collect();
        s.add_metrics(&minutes).unwrap();
        let mut expected = [MetricSlot::default(), MetricSlot::default()];
        for (i, (_, _, m)) in minutes.iter().enumerate() {
            expected[i / 15].merge(m);
        }
        let report = s.downsample_metrics(now).unwrap();
        assert_eq!(report.merged, 30);
        let rows = s.metric_rows(&k, 0, i64::MAX).unwrap();
        assert_eq!(rows.len(), 2);
        for (row, want) in rows.iter().zip(&expected) {
            assert_eq!(row.step_s, 900);
            assert_eq!(&row.slot, want);
        }
        assert_eq!(rows[1].slot.concurrency_max, 29);
        assert_eq!(
            rows[0].slot.durations.quantile(0.99),
            expected[0].durations.quantile(0.99)
        );
    }

    #[test]
    fn retention_is_bounded_per_function() {
        let (_d, s) = store();
        let k = key("busy");
        let now: i64 = 40 * 86_400_000;
        // A row every minute for 17 days.
        let minutes: Vec<_> = (0..17 * 1440)
            .map(|i| (k.clone(), now - i * MINUTE_MS, slot(1.0, 1)))
            .collect();
        s.add_metrics(&minutes).unwrap();
        s.downsample_metrics(now).unwrap();
        let rows = s.metric_rows(&k, 0, i64::MAX).unwrap();
        let fine = rows.iter().filter(|r| r.step_s == 60).count();
        let coarse = rows.iter().filter(|r| r.step_s == 900).count();
        assert!(fine <= 1441, "{fine} minute rows");
        assert!(coarse <= 15 * 96 + 1, "{coarse} 15-minute rows");
        assert!(
            rows.iter()
                .all(|r| r.t_ms >= now - SLOTS_KEPT_MS - QUARTER_MS)
        );
        // Everything within 15 days is still counted, once.
        let kept: u64 = rows.iter().map(|r| r.slot.invocations).sum();
        assert!(
            (15 * 1440 - 15..=15 * 1440 + 15).contains(&(kept as i64)),
            "{kept}"
        );
        // A second sweep changes nothing.
        assert_eq!(s.downsample_metrics(now).unwrap(), SweepReport::default());
        let totals = s
            .metric_totals("123456789012", "us-east-1", 0, i64::MAX)
            .unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].1.invocations, kept);
    }
}
