//! Reserved concurrency and the recursive loop setting: per function, shared by its versions
//! and aliases.

use rusqlite::{OptionalExtension, params};

use crate::{FunctionKey, Store, StoreError};

impl Store {
    /// The reserved concurrency of a function: `None` if the function does not exist,
    /// `Some(None)` if it has none.
    pub fn reserved_concurrency(
        &self,
        key: &FunctionKey,
    ) -> Result<Option<Option<u32>>, StoreError> {
        let conn = self.conn();
        let r: Option<Option<i64>> = conn
            .query_row(
                "SELECT reserved_concurrency FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(r.map(|v| v.map(|n| n as u32)))
    }

    /// Sets (or with `None` removes) a function's reserved concurrency. `check` receives the sum
    /// reserved by the account's other functions and may refuse; it runs in the transaction.
    pub fn set_reserved_concurrency(
        &self,
        key: &FunctionKey,
        value: Option<u32>,
        check: impl FnOnce(u64) -> Result<(), lamina_model::LambdaError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT id FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let id = exists.ok_or(StoreError::NotFound)?;
        let others: i64 = tx.query_row(
            "SELECT COALESCE(SUM(reserved_concurrency), 0) FROM functions WHERE account = ?1 AND region = ?2 AND id != ?3",
            params![key.account.as_str(), key.region.as_str(), id],
            |r| r.get(0),
        )?;
        check(others as u64)?;
        tx.execute(
            "UPDATE functions SET reserved_concurrency = ?1 WHERE id = ?2",
            params![value.map(i64::from), id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The sum of reserved concurrency in an account and region.
    pub fn reserved_total(&self, account: &str, region: &str) -> Result<u64, StoreError> {
        let conn = self.conn();
        let n: i64 = conn.query_row(
            "SELECT COALESCE(SUM(reserved_concurrency), 0) FROM functions WHERE account = ?1 AND region = ?2",
            params![account, region],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

impl Store {
    /// Every reservation: `(account, region, function name, reserved)`.
    pub fn reserved_all(&self) -> Result<Vec<(String, String, String, u32)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, region, name, reserved_concurrency FROM functions WHERE reserved_concurrency IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u32))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Store {
    /// Whether a function may run on in a recursive loop (`RecursiveLoop` `Allow`); `None` if
    /// the function does not exist.
    pub fn recursive_loop_allowed(&self, key: &FunctionKey) -> Result<Option<bool>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT recursive_loop_allowed FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
                |r| r.get::<_, bool>(0),
            )
            .optional()?)
    }

    /// Sets whether a function may run on in a recursive loop; [`StoreError::NotFound`] if it
    /// does not exist.
    pub fn set_recursive_loop_allowed(
        &self,
        key: &FunctionKey,
        allowed: bool,
    ) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE functions SET recursive_loop_allowed = ?1 WHERE account = ?2 AND region = ?3 AND name = ?4",
            params![allowed, key.account.as_str(), key.region.as_str(), key.name.as_str()],
        )?;
        match changed {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }
}
