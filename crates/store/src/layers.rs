//! Layer versions: published once, numbered per layer without reuse, hidden when deleted but
//! kept for the functions that use them.

use rusqlite::{OptionalExtension, params};

use crate::{CodeError, ExtractLimits, Store, StoreError, StoredCode};

#[cfg(test)]
mod tests;

/// What PublishLayerVersion stores.
#[derive(Debug)]
pub struct NewLayerVersion<'a> {
    pub account: String,
    pub region: String,
    pub name: String,
    pub description: String,
    pub license: Option<String>,
    pub runtimes: Vec<String>,
    pub architectures: Vec<String>,
    pub zip: &'a [u8],
}

/// A stored layer version.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerVersion {
    pub account: String,
    pub region: String,
    pub name: String,
    pub version: u64,
    pub description: String,
    pub license: Option<String>,
    pub runtimes: Vec<String>,
    pub architectures: Vec<String>,
    pub code: StoredCode,
    pub created_ms: i64,
    pub deleted: bool,
    /// Permission statements (JSON objects).
    pub policy: Vec<serde_json::Value>,
    /// The policy's revision id, new at every change of the policy (empty before the first).
    pub policy_revision: String,
}

/// Which layer versions a list shows: those compatible with a runtime and with an architecture,
/// each when given.
pub type LayerMatch<'a> = (Option<&'a str>, Option<&'a str>);

/// The condition that the layer version `v` is live and matches a [`LayerMatch`] (the runtime
/// bound as `r`, the architecture as `a`).
fn matching(v: &str, r: &str, a: &str) -> String {
    format!(
        "({v}.deleted = 0 AND ({r} IS NULL OR EXISTS (SELECT 1 FROM json_each({v}.runtimes) WHERE value = {r}))
         AND ({a} IS NULL OR EXISTS (SELECT 1 FROM json_each({v}.architectures) WHERE value = {a})))"
    )
}

const COLUMNS: &str =
    "account, region, name, version, description, license, runtimes, architectures,
    code_sha256, code_size, unzipped_size, created_ms, deleted, policy, policy_revision";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<LayerVersion> {
    let json = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    Ok(LayerVersion {
        account: r.get(0)?,
        region: r.get(1)?,
        name: r.get(2)?,
        version: r.get::<_, i64>(3)? as u64,
        description: r.get(4)?,
        license: r.get(5)?,
        runtimes: serde_json::from_str(&json(6)?).unwrap_or_default(),
        architectures: serde_json::from_str(&json(7)?).unwrap_or_default(),
        code: StoredCode {
            sha256_hex: r.get(8)?,
            size: r.get::<_, i64>(9)? as u64,
            unzipped_size: r.get::<_, i64>(10)? as u64,
        },
        created_ms: r.get(11)?,
        deleted: r.get::<_, i64>(12)? != 0,
        policy: serde_json::from_str(&json(13)?).unwrap_or_default(),
        policy_revision: r.get(14)?,
    })
}

impl Store {
    /// Stores a new version of a layer (code first, then the row), within the account's code
    /// storage of `code_storage_max` bytes.
    pub fn publish_layer(
        &self,
        new: NewLayerVersion<'_>,
        limits: ExtractLimits,
        code_storage_max: u64,
    ) -> Result<LayerVersion, StoreError> {
        self.check_storage(&new.account, new.zip.len() as u64, code_storage_max)?;
        let _upload = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let code = self.code.put(new.zip, limits)?;
        let now = lamina_model::now_millis();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO layers (account, region, name, last_version) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (account, region, name) DO UPDATE SET last_version = last_version + 1",
            params![new.account, new.region, new.name],
        )?;
        let version: i64 = tx.query_row(
            "SELECT last_version FROM layers WHERE account = ?1 AND region = ?2 AND name = ?3",
            params![new.account, new.region, new.name],
            |r| r.get(0),
        )?;
        let to_json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        tx.execute(
            &format!("INSERT INTO layer_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, '[]', '')"),
            params![
                new.account,
                new.region,
                new.name,
                version,
                new.description,
                new.license,
                to_json(&new.runtimes),
                to_json(&new.architectures),
                code.sha256_hex,
                code.size as i64,
                code.unzipped_size as i64,
                now
            ],
        )?;
        tx.commit()?;
        Ok(LayerVersion {
            account: new.account,
            region: new.region,
            name: new.name,
            version: version as u64,
            description: new.description,
            license: new.license,
            runtimes: new.runtimes,
            architectures: new.architectures,
            code,
            created_ms: now,
            deleted: false,
            policy: Vec::new(),
            policy_revision: String::new(),
        })
    }

    /// One layer version, deleted ones included when `include_deleted`.
    pub fn layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
        include_deleted: bool,
    ) -> Result<Option<LayerVersion>, StoreError> {
        let conn = self.conn();
        let v = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM layer_versions WHERE account = ?1 AND region = ?2 AND name = ?3 AND version = ?4"),
                params![account, region, name, version as i64],
                read,
            )
            .optional()?;
        Ok(v.filter(|v| include_deleted || !v.deleted))
    }

    /// Live versions of a layer that match, newest first: at most `limit` of them, older than
    /// version `before` when given.
    pub fn layer_versions(
        &self,
        (account, region, name): (&str, &str, &str),
        (runtime, architecture): LayerMatch<'_>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM layer_versions v WHERE account = ?1 AND region = ?2 AND name = ?3
             AND version < ?4 AND {} ORDER BY version DESC LIMIT ?7",
            matching("v", "?5", "?6")
        ))?;
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(
            params![account, region, name, before, runtime, architecture, limit],
            read,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest live version that matches of each layer of an account that has one, by
    /// layer name: at most `limit` layers, those named after `after` when given.
    pub fn latest_layers(
        &self,
        (account, region): (&str, &str),
        (runtime, architecture): LayerMatch<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM layer_versions v WHERE account = ?1 AND region = ?2 AND name > ?3
             AND {} AND version = (SELECT MAX(version) FROM layer_versions w WHERE w.account = v.account
                AND w.region = v.region AND w.name = v.name AND {})
             ORDER BY name LIMIT ?6",
            matching("v", "?4", "?5"),
            matching("w", "?4", "?5")
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(
            params![
                account,
                region,
                after.unwrap_or(""),
                runtime,
                architecture,
                limit
            ],
            read,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Hides a layer version (idempotent). Its content stays for the functions using it.
    pub fn delete_layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE layer_versions SET deleted = 1 WHERE account = ?1 AND region = ?2 AND name = ?3 AND version = ?4",
            params![account, region, name, version as i64],
        )?;
        Ok(())
    }

    /// Changes a layer version's permission statements in one transaction: `change` gets them
    /// as they are and changes them, or refuses. `NotFound` if the version does not exist (or
    /// was deleted); `RevisionMismatch` if `expected_revision` is given and is not the policy's
    /// (a version without statements has no revision to match). Returns what `change` returned
    /// and the policy's new revision id.
    pub fn change_layer_policy<T>(
        &self,
        (account, region, name, version): (&str, &str, &str, u64),
        expected_revision: Option<&str>,
        change: impl FnOnce(&mut Vec<serde_json::Value>) -> Result<T, lamina_model::LambdaError>,
    ) -> Result<(T, String), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let at = params![account, region, name, version as i64];
        let (text, revision): (String, String) = tx
            .query_row(
                "SELECT policy, policy_revision FROM layer_versions WHERE account = ?1 AND region = ?2 AND name = ?3 AND version = ?4 AND deleted = 0",
                at,
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(StoreError::NotFound)?;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let mut policy: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(corrupt)?;
        if let Some(expected) = expected_revision
            && (policy.is_empty() || revision != expected)
        {
            return Err(StoreError::RevisionMismatch);
        }
        let out = change(&mut policy)?;
        let json = serde_json::to_string(&policy).map_err(corrupt)?;
        let revision = uuid::Uuid::new_v4().to_string();
        tx.execute(
            "UPDATE layer_versions SET policy = ?5, policy_revision = ?6 WHERE account = ?1 AND region = ?2 AND name = ?3 AND version = ?4",
            params![account, region, name, version as i64, json, revision],
        )?;
        tx.commit()?;
        Ok((out, revision))
    }

    /// The merged `/opt` tree of layers (in order: a later layer's file wins), built once.
    pub fn opt_tree(&self, layer_shas: &[String]) -> Result<std::path::PathBuf, CodeError> {
        self.code.merged(layer_shas)
    }
}
