//! Functions and their `$LATEST` version: create, read, list, update, delete, tags.

use std::collections::BTreeMap;

use lamina_model::{
    AccountId, FunctionName, FunctionSpec, LambdaError, LastUpdateStatus, Region, State, now_millis,
};
use rusqlite::{OptionalExtension, Row, params};

use crate::{ExtractLimits, Store, StoreError, StoredCode};

pub(crate) const LATEST: &str = "$LATEST";

/// Which function: its account, region and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionKey {
    pub account: AccountId,
    pub region: Region,
    pub name: FunctionName,
}

impl FunctionKey {
    /// A key from stored names (which were validated when they were written).
    pub fn parse(account: &str, region: &str, name: &str) -> Result<Self, StoreError> {
        let corrupt = |e: LambdaError| StoreError::Corrupt(e.message);
        Ok(Self {
            account: AccountId::parse(account).map_err(corrupt)?,
            region: Region::parse(region).map_err(corrupt)?,
            name: FunctionName::parse(name).map_err(corrupt)?,
        })
    }
}

/// A function version as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRecord {
    pub key: FunctionKey,
    /// `$LATEST` or a version number.
    pub version: String,
    pub spec: FunctionSpec,
    pub code: StoredCode,
    pub revision_id: String,
    pub last_modified_ms: i64,
    pub state: State,
    pub last_update_status: Option<LastUpdateStatus>,
}

/// What CreateFunction stores.
#[derive(Debug)]
pub struct NewFunction<'a> {
    pub key: FunctionKey,
    pub spec: FunctionSpec,
    pub package: crate::Package<'a>,
    pub tags: BTreeMap<String, String>,
}

/// The columns [`read_record`] reads, of a function and one of its versions: queries go on
/// with their `WHERE`.
macro_rules! select {
    () => {
        "SELECT f.account, f.region, f.name, v.version, v.spec, v.code_sha256, v.code_size,
        v.unzipped_size, v.revision_id, v.last_modified_ms, v.state, v.last_update_status
        FROM functions f JOIN function_versions v ON v.function_id = f.id"
    };
}
pub(crate) use select;

/// Where a version comes in the order versions are listed: `$LATEST`, then by number.
pub fn version_order(version: &str) -> Option<u64> {
    match version {
        LATEST => Some(0),
        n => n.parse::<u64>().ok()?.checked_add(1),
    }
}

/// The records a query read.
pub(crate) fn collect_records(
    rows: impl Iterator<Item = rusqlite::Result<Result<FunctionRecord, StoreError>>>,
) -> Result<Vec<FunctionRecord>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// One version of a function, by account, region, name and version.
pub(crate) const READ_VERSION: &str = concat!(
    select!(),
    " WHERE f.account = ?1 AND f.region = ?2 AND f.name = ?3 AND v.version = ?4"
);

/// One version of a function, read on `conn` (a transaction derefs to one).
pub(crate) fn read_version(
    conn: &rusqlite::Connection,
    key: &FunctionKey,
    version: &str,
) -> Result<Option<FunctionRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(READ_VERSION)?;
    stmt.query_row(
        params![
            key.account.as_str(),
            key.region.as_str(),
            key.name.as_str(),
            version
        ],
        read_record,
    )
    .optional()?
    .transpose()
}

pub(crate) fn read_record(row: &Row<'_>) -> rusqlite::Result<Result<FunctionRecord, StoreError>> {
    let account: String = row.get(0)?;
    let region: String = row.get(1)?;
    let name: String = row.get(2)?;
    let spec: String = row.get(4)?;
    let state: String = row.get(10)?;
    let last_update: Option<String> = row.get(11)?;
    let code = StoredCode {
        sha256_hex: row.get(5)?,
        size: row.get::<_, i64>(6)? as u64,
        unzipped_size: row.get::<_, i64>(7)? as u64,
    };
    let version: String = row.get(3)?;
    let revision_id: String = row.get(8)?;
    let last_modified_ms: i64 = row.get(9)?;
    Ok((|| {
        let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of function {name}"));
        Ok(FunctionRecord {
            key: FunctionKey {
                account: AccountId::parse(&account).map_err(|_| corrupt("account"))?,
                region: Region::parse(&region).map_err(|_| corrupt("region"))?,
                name: FunctionName::parse(&name).map_err(|_| corrupt("name"))?,
            },
            version,
            spec: serde_json::from_str(&spec).map_err(|_| corrupt("configuration"))?,
            code,
            revision_id,
            last_modified_ms,
            state: State::parse(&state).ok_or_else(|| corrupt("state"))?,
            last_update_status: match last_update {
                Some(s) => {
                    Some(LastUpdateStatus::parse(&s).ok_or_else(|| corrupt("update status"))?)
                }
                None => None,
            },
        })
    })())
}

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn spec_json(spec: &FunctionSpec) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Creates a function with its code. The row appears only once the code is durable.
    ///
    /// The stored state is the settled one (`Active`): creation is complete when this returns.
    pub fn create_function(
        &self,
        new: NewFunction<'_>,
        limits: ExtractLimits,
        code_storage_max: u64,
    ) -> Result<FunctionRecord, StoreError> {
        if self.function_id(&new.key)?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        self.check_storage(
            new.key.account.as_str(),
            new.package.stored_len(),
            code_storage_max,
        )?;
        let _upload = self.gc.read().unwrap_or_else(|e| e.into_inner());
        self.layers_stored(&new.spec)?;
        let code = self.put_package(new.package, limits)?;
        let now = now_millis();
        let revision_id = new_revision();
        let tags =
            serde_json::to_string(&new.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO functions (account, region, name, created_ms, tags) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
            params![new.key.account.as_str(), new.key.region.as_str(), new.key.name.as_str(), now, tags],
        )?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO function_versions (function_id, version, spec, code_sha256, code_size,
                unzipped_size, revision_id, last_modified_ms, state, last_update_status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                LATEST,
                spec_json(&new.spec)?,
                code.sha256_hex,
                code.size as i64,
                code.unzipped_size as i64,
                revision_id,
                now,
                State::Active.as_str(),
                LastUpdateStatus::Successful.as_str(),
            ],
        )?;
        tx.commit()?;
        Ok(FunctionRecord {
            key: new.key,
            version: LATEST.to_owned(),
            spec: new.spec,
            code,
            revision_id,
            last_modified_ms: now,
            state: State::Active,
            last_update_status: Some(LastUpdateStatus::Successful),
        })
    }

    /// The `$LATEST` version of a function.
    pub fn get_function(&self, key: &FunctionKey) -> Result<Option<FunctionRecord>, StoreError> {
        self.get_version(key, LATEST)
    }

    /// One version of a function (`$LATEST` or a number).
    pub fn get_version(
        &self,
        key: &FunctionKey,
        version: &str,
    ) -> Result<Option<FunctionRecord>, StoreError> {
        read_version(&self.conn(), key, version)
    }

    /// Functions of an account in a region, by name, starting after `after`.
    pub fn list_functions(
        &self,
        account: &AccountId,
        region: &Region,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(concat!(
            select!(),
            " WHERE f.account = ?1 AND f.region = ?2 AND f.name > ?3 AND v.version = ?4
             ORDER BY f.name LIMIT ?5"
        ))?;
        let rows = stmt.query_map(
            params![
                account.as_str(),
                region.as_str(),
                after.unwrap_or(""),
                LATEST,
                limit as i64
            ],
            read_record,
        )?;
        collect_records(rows)
    }

    /// Every version of an account's functions in a region (ListFunctions with
    /// `FunctionVersion=ALL`): by name, `$LATEST` then by number, after `(name, version)`.
    pub fn list_function_versions(
        &self,
        account: &AccountId,
        region: &Region,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<FunctionRecord>, StoreError> {
        let (name, after_order) = match after {
            Some((name, v)) => (name, version_order(v).ok_or(StoreError::NotFound)? as i64),
            None => ("", -1),
        };
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(concat!(
            select!(),
            " WHERE f.account = ?1 AND f.region = ?2 AND f.name >= ?3
               AND (f.name > ?3 OR (CASE WHEN v.version = '$LATEST' THEN 0
                    ELSE CAST(v.version AS INTEGER) + 1 END) > ?4)
             ORDER BY f.name, CASE WHEN v.version = '$LATEST' THEN 0
                    ELSE CAST(v.version AS INTEGER) + 1 END
             LIMIT ?5"
        ))?;
        let rows = stmt.query_map(
            params![
                account.as_str(),
                region.as_str(),
                name,
                after_order,
                limit as i64
            ],
            read_record,
        )?;
        collect_records(rows)
    }

    /// Replaces the code of `$LATEST`. `expected_revision`, when given, must match; without it,
    /// the update applies to whatever revision is current when it commits (concurrent updates
    /// without a revision id never conflict).
    pub fn update_code(
        &self,
        key: &FunctionKey,
        package: crate::Package<'_>,
        limits: ExtractLimits,
        code_storage_max: u64,
        expected_revision: Option<&str>,
        image: Option<&lamina_model::ImageSpec>,
    ) -> Result<FunctionRecord, StoreError> {
        let current = self.get_function(key)?.ok_or(StoreError::NotFound)?;
        if expected_revision.is_some_and(|r| r != current.revision_id) {
            return Err(StoreError::RevisionMismatch);
        }
        self.check_storage(key.account.as_str(), package.stored_len(), code_storage_max)?;
        let _upload = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let code = self.put_package(package, limits)?;
        let revision_id = new_revision();
        let now = now_millis();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Read again under the lock: the function may have changed while the code was written.
        let current = read_version(&tx, key, LATEST)?.ok_or(StoreError::NotFound)?;
        if expected_revision.is_some_and(|r| r != current.revision_id) {
            return Err(StoreError::RevisionMismatch);
        }
        // An image function's code and the image it was resolved from change together.
        let mut spec = current.spec.clone();
        if let Some(image) = image {
            spec.image = Some(image.clone());
        }
        tx.execute(
            "UPDATE function_versions SET code_sha256 = ?1, code_size = ?2, unzipped_size = ?3,
                revision_id = ?4, last_modified_ms = ?5, last_update_status = ?6, spec = ?11
             WHERE version = ?7 AND function_id =
                (SELECT id FROM functions WHERE account = ?8 AND region = ?9 AND name = ?10)",
            params![
                code.sha256_hex,
                code.size as i64,
                code.unzipped_size as i64,
                revision_id,
                now,
                LastUpdateStatus::Successful.as_str(),
                LATEST,
                key.account.as_str(),
                key.region.as_str(),
                key.name.as_str(),
                spec_json(&spec)?
            ],
        )?;
        tx.commit()?;
        Ok(FunctionRecord {
            spec,
            code,
            revision_id,
            last_modified_ms: now,
            last_update_status: Some(LastUpdateStatus::Successful),
            ..current
        })
    }

    /// Changes the configuration of `$LATEST`: `change` receives the current record and returns
    /// the new configuration. It runs under the store lock, so the read-modify-write is atomic.
    pub fn update_spec(
        &self,
        key: &FunctionKey,
        expected_revision: Option<&str>,
        change: impl FnOnce(&FunctionRecord) -> Result<FunctionSpec, LambdaError>,
    ) -> Result<FunctionRecord, StoreError> {
        // Held to the commit: new layers' code cannot be collected under it.
        let _attaching = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current = read_version(&tx, key, LATEST)?.ok_or(StoreError::NotFound)?;
        if expected_revision.is_some_and(|r| r != current.revision_id) {
            return Err(StoreError::RevisionMismatch);
        }
        let spec = change(&current)?;
        self.layers_stored(&spec)?;
        let revision_id = new_revision();
        let now = now_millis();
        tx.execute(
            "UPDATE function_versions SET spec = ?1, revision_id = ?2, last_modified_ms = ?3,
                last_update_status = ?4
             WHERE version = ?5 AND function_id =
                (SELECT id FROM functions WHERE account = ?6 AND region = ?7 AND name = ?8)",
            params![
                spec_json(&spec)?,
                revision_id,
                now,
                LastUpdateStatus::Successful.as_str(),
                LATEST,
                key.account.as_str(),
                key.region.as_str(),
                key.name.as_str()
            ],
        )?;
        tx.commit()?;
        Ok(FunctionRecord {
            spec,
            revision_id,
            last_modified_ms: now,
            last_update_status: Some(LastUpdateStatus::Successful),
            ..current
        })
    }

    /// Deletes a function with all its versions and tags. Returns `None` if it did not exist.
    /// Its queued asynchronous events go with it: `Ok(Some(size))` says how many.
    pub fn delete_function(
        &self,
        key: &FunctionKey,
    ) -> Result<Option<crate::QueueSize>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let queued = tx.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM async_events WHERE function_id =
                (SELECT id FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3)",
            params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
            |r| {
                Ok(crate::QueueSize {
                    events: r.get::<_, i64>(0)? as u64,
                    bytes: r.get::<_, i64>(1)? as u64,
                })
            },
        )?;
        let n = tx.execute(
            "DELETE FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
            params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
        )?;
        tx.commit()?;
        Ok((n > 0).then_some(queued))
    }

    /// The tags of a function, or `None` if it does not exist.
    pub fn tags(&self, key: &FunctionKey) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let conn = self.conn();
        let tags: Option<String> = conn
            .query_row(
                "SELECT tags FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        tags.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Changes a function's tags atomically: `change` receives the current tags and returns the
    /// new ones.
    pub fn update_tags(
        &self,
        key: &FunctionKey,
        change: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, LambdaError>,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let tags: String = tx
            .query_row(
                "SELECT tags FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::NotFound)?;
        let current =
            serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let new = change(current)?;
        let json = serde_json::to_string(&new).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "UPDATE functions SET tags = ?1 WHERE account = ?2 AND region = ?3 AND name = ?4",
            params![
                json,
                key.account.as_str(),
                key.region.as_str(),
                key.name.as_str()
            ],
        )?;
        tx.commit()?;
        Ok(new)
    }

    /// `(TotalCodeSize, FunctionCount)` of an account in a region.
    pub fn account_usage(
        &self,
        account: &AccountId,
        region: &Region,
    ) -> Result<(u64, u64), StoreError> {
        let conn = self.conn();
        // Deployment packages and layer archives, as `TotalCodeSize` counts them.
        let (size, count): (i64, i64) = conn.query_row(
            "SELECT COALESCE(SUM(v.code_size), 0) + (SELECT COALESCE(SUM(code_size), 0)
                FROM layer_versions WHERE account = ?1 AND region = ?2 AND deleted = 0),
                COUNT(DISTINCT f.id)
             FROM functions f JOIN function_versions v ON v.function_id = f.id
             WHERE f.account = ?1 AND f.region = ?2",
            params![account.as_str(), region.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((size as u64, count as u64))
    }

    fn function_id(&self, key: &FunctionKey) -> Result<Option<i64>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT id FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Refuses a spec whose layers' code is no longer stored: a layer version deleted since it
    /// was resolved, whose code a collection removed. Called under the collection's lock, held
    /// until the spec is committed.
    fn layers_stored(&self, spec: &FunctionSpec) -> Result<(), StoreError> {
        match spec
            .layer_code
            .iter()
            .find(|l| !self.code.tree_path(&l.sha256_hex).is_dir())
        {
            Some(l) => Err(LambdaError::not_found(format!(
                "Layer version {} does not exist.",
                l.arn
            ))
            .into()),
            None => Ok(()),
        }
    }

    pub(crate) fn check_storage(
        &self,
        account: &str,
        adding: u64,
        limit: u64,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        // Function versions' code and layer versions' (as Lambda counts its code storage).
        let used: i64 = conn.query_row(
            "SELECT (SELECT COALESCE(SUM(v.code_size), 0) FROM functions f
                JOIN function_versions v ON v.function_id = f.id WHERE f.account = ?1)
             + (SELECT COALESCE(SUM(code_size), 0) FROM layer_versions
                WHERE account = ?1 AND deleted = 0)",
            params![account],
            |r| r.get(0),
        )?;
        // A deleted layer version's code stays while function versions use it (see
        // `collect_garbage`): its owner is charged for it until then, once per package, or
        // deleting layers that a published version holds would free quota and never disk.
        let held: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(code_size), 0) FROM (
                    SELECT DISTINCT code_sha256, code_size FROM layer_versions
                    WHERE account = ?1 AND deleted = 1
                      AND code_sha256 NOT IN (SELECT code_sha256 FROM layer_versions
                          WHERE account = ?1 AND deleted = 0)
                      AND code_sha256 IN (SELECT json_extract(l.value, '$.sha256_hex')
                          FROM function_versions v, json_each(v.spec, '$.layer_code') l))",
            )?
            .query_row(params![account], |r| r.get(0))?;
        let used = (used + held) as u64;
        if used + adding > limit {
            return Err(StoreError::CodeStorageExceeded { used, limit });
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
