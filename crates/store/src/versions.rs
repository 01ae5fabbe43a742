//! Published versions (immutable snapshots of `$LATEST`) and aliases (names for versions, with
//! optional weighted routing to a second version).

use std::collections::BTreeMap;

use lamina_model::{LambdaError, now_millis};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::functions::{LATEST, read_record, read_version, select};
use crate::{FunctionKey, FunctionRecord, Store, StoreError};

/// An alias.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasRecord {
    pub name: String,
    /// A version number or `$LATEST`.
    pub version: String,
    pub description: String,
    /// Additional version → weight (0..1).
    pub routing: BTreeMap<String, f64>,
    pub revision_id: String,
}

fn function_id(tx: &Transaction<'_>, key: &FunctionKey) -> Result<i64, StoreError> {
    tx.query_row(
        "SELECT id FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
        params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(StoreError::NotFound)
}

fn read_alias(
    tx: &Transaction<'_>,
    id: i64,
    name: &str,
) -> Result<Option<AliasRecord>, StoreError> {
    let row: Option<(String, String, String, String)> = tx
        .query_row(
            "SELECT version, description, routing, revision_id FROM aliases WHERE function_id = ?1 AND name = ?2",
            params![id, name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    row.map(|(version, description, routing, revision_id)| {
        Ok(AliasRecord {
            name: name.to_owned(),
            version,
            description,
            routing: serde_json::from_str(&routing)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            revision_id,
        })
    })
    .transpose()
}

impl Store {
    /// Publishes `$LATEST` as a new version, or returns the latest version if nothing changed
    /// since it was published. `expected_sha_hex` and `expected_revision` are preconditions.
    pub fn publish_version(
        &self,
        key: &FunctionKey,
        expected_sha_hex: Option<&str>,
        expected_revision: Option<&str>,
        description: Option<&str>,
    ) -> Result<FunctionRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = function_id(&tx, key)?;
        let latest = read_version(&tx, key, LATEST)?.ok_or(StoreError::NotFound)?;
        if expected_revision.is_some_and(|r| r != latest.revision_id) {
            return Err(StoreError::RevisionMismatch);
        }
        if let Some(sha) = expected_sha_hex
            && sha != latest.code.sha256_hex
        {
            return Err(StoreError::Rejected(LambdaError::invalid_parameter(
                format!(
                    "CodeSHA256 ({}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                    hex_to_b64(sha),
                    latest.code.sha256_base64()
                ),
            )));
        }
        let last: i64 = tx.query_row(
            "SELECT last_version FROM functions WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )?;
        let newest: Option<i64> = tx.query_row(
            "SELECT MAX(CAST(version AS INTEGER)) FROM function_versions WHERE function_id = ?1 AND version != ?2",
            params![id, LATEST],
            |r| r.get(0),
        )?;
        if let Some(n) = newest
            && let Some(prev) = read_version(&tx, key, &n.to_string())?
        {
            let mut same = prev.spec.clone();
            same.description = latest.spec.description.clone();
            if prev.code == latest.code && same == latest.spec {
                return Ok(prev);
            }
        }
        let n = last + 1;
        let mut spec = latest.spec.clone();
        if let Some(d) = description {
            spec.description = d.to_owned();
        }
        let revision_id = uuid::Uuid::new_v4().to_string();
        let now = now_millis();
        tx.execute(
            "INSERT INTO function_versions (function_id, version, spec, code_sha256, code_size, unzipped_size,
                revision_id, last_modified_ms, state, last_update_status)
             SELECT function_id, ?1, ?2, code_sha256, code_size, unzipped_size, ?3, ?4, state, last_update_status
             FROM function_versions WHERE function_id = ?5 AND version = ?6",
            params![
                n.to_string(),
                serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                revision_id,
                now,
                id,
                LATEST
            ],
        )?;
        tx.execute(
            "UPDATE functions SET last_version = ?1 WHERE id = ?2",
            params![n, id],
        )?;
        tx.commit()?;
        Ok(FunctionRecord {
            version: n.to_string(),
            spec,
            revision_id,
            last_modified_ms: now,
            ..latest
        })
    }

    /// `$LATEST` and every published version, oldest first after `$LATEST`.
    pub fn list_versions(&self, key: &FunctionKey) -> Result<Vec<FunctionRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        function_id(&tx, key)?;
        let mut stmt = tx.prepare_cached(concat!(
            select!(),
            " WHERE f.account = ?1 AND f.region = ?2 AND f.name = ?3
             ORDER BY CASE WHEN v.version = '$LATEST' THEN 0 ELSE 1 END, CAST(v.version AS INTEGER)"
        ))?;
        let rows = stmt.query_map(
            params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
            read_record,
        )?;
        crate::functions::collect_records(rows)
    }

    /// Deletes one published version. Refused while an alias routes to it.
    pub fn delete_version(&self, key: &FunctionKey, version: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = function_id(&tx, key)?;
        let v = version.to_string();
        let mut stmt =
            tx.prepare("SELECT name, version, routing FROM aliases WHERE function_id = ?1")?;
        let users: Vec<String> = stmt
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .filter_map(Result::ok)
            .filter(|(_, target, routing)| *target == v || routing.contains(&format!("\"{v}\"")))
            .map(|(name, _, _)| name)
            .collect();
        drop(stmt);
        if !users.is_empty() {
            return Err(StoreError::Rejected(LambdaError::conflict(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                users.join(", ")
            ))));
        }
        let n = tx.execute(
            "DELETE FROM function_versions WHERE function_id = ?1 AND version = ?2",
            params![id, v],
        )?;
        forget_qualifier(&tx, id, &v)?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Creates an alias. `Ok(None)` if one of that name exists.
    pub fn create_alias(
        &self,
        key: &FunctionKey,
        alias: &AliasRecord,
    ) -> Result<Option<AliasRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = function_id(&tx, key)?;
        check_targets(&tx, key, alias)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO aliases (function_id, name, version, description, routing, revision_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, alias.name, alias.version, alias.description, routing_json(alias)?, alias.revision_id],
        )?;
        tx.commit()?;
        Ok((n > 0).then(|| alias.clone()))
    }

    /// One alias.
    pub fn get_alias(
        &self,
        key: &FunctionKey,
        name: &str,
    ) -> Result<Option<AliasRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = function_id(&tx, key)?;
        read_alias(&tx, id, name)
    }

    /// Every alias of a function, by name.
    pub fn list_aliases(&self, key: &FunctionKey) -> Result<Vec<AliasRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = function_id(&tx, key)?;
        let names: Vec<String> = {
            let mut stmt =
                tx.prepare("SELECT name FROM aliases WHERE function_id = ?1 ORDER BY name")?;
            stmt.query_map(params![id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for n in names {
            out.extend(read_alias(&tx, id, &n)?);
        }
        Ok(out)
    }

    /// Changes an alias: `change` gets the current one and returns the new one.
    pub fn update_alias(
        &self,
        key: &FunctionKey,
        name: &str,
        expected_revision: Option<&str>,
        change: impl FnOnce(AliasRecord) -> Result<AliasRecord, LambdaError>,
    ) -> Result<AliasRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = function_id(&tx, key)?;
        let current = read_alias(&tx, id, name)?.ok_or(StoreError::NotFound)?;
        if expected_revision.is_some_and(|r| r != current.revision_id) {
            return Err(StoreError::RevisionMismatch);
        }
        let mut new = change(current)?;
        new.revision_id = uuid::Uuid::new_v4().to_string();
        check_targets(&tx, key, &new)?;
        tx.execute(
            "UPDATE aliases SET version = ?1, description = ?2, routing = ?3, revision_id = ?4 WHERE function_id = ?5 AND name = ?6",
            params![new.version, new.description, routing_json(&new)?, new.revision_id, id, name],
        )?;
        tx.commit()?;
        Ok(new)
    }

    /// Deletes an alias (absent ones too, as Lambda does).
    pub fn delete_alias(&self, key: &FunctionKey, name: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = function_id(&tx, key)?;
        tx.execute(
            "DELETE FROM aliases WHERE function_id = ?1 AND name = ?2",
            params![id, name],
        )?;
        forget_qualifier(&tx, id, name)?;
        tx.commit()?;
        Ok(())
    }
}

/// A version or alias that goes takes its event invoke configuration and policy with it.
fn forget_qualifier(tx: &Transaction<'_>, id: i64, qualifier: &str) -> Result<(), StoreError> {
    for table in ["event_invoke_configs", "function_policies", "function_urls"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE function_id = ?1 AND qualifier = ?2"),
            params![id, qualifier],
        )?;
    }
    Ok(())
}

fn routing_json(a: &AliasRecord) -> Result<String, StoreError> {
    serde_json::to_string(&a.routing).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The versions an alias names must exist.
fn check_targets(
    tx: &Transaction<'_>,
    key: &FunctionKey,
    a: &AliasRecord,
) -> Result<(), StoreError> {
    for v in std::iter::once(&a.version).chain(a.routing.keys()) {
        if read_version(tx, key, v)?.is_none() {
            return Err(StoreError::Rejected(LambdaError::not_found(format!(
                "Function not found: arn:aws:lambda:{}:{}:function:{}:{v}",
                key.region, key.account, key.name
            ))));
        }
    }
    Ok(())
}

fn hex_to_b64(hex_sha: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_sha).unwrap_or_default())
}
