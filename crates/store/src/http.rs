//! HTTP entry points: function URLs (one per function or alias, removed with their function)
//! and HTTP APIs. An HTTP API (its routes, integrations, authorizers, stages and deployments)
//! is kept as one JSON document per API, written whole in one transaction: the quotas keep it
//! small, and the API layer owns what it means.

use lamina_model::{AccountId, Region, now_millis};
use rusqlite::{OptionalExtension, Row, params};

use crate::{FunctionKey, Store, StoreError};

/// A function URL's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUrl {
    /// The function it invokes.
    pub function: FunctionKey,
    /// The alias it invokes, or `""` for the unqualified function.
    pub qualifier: String,
    /// 32 lowercase letters and digits: the URL's host label.
    pub url_id: String,
    /// `NONE` or `AWS_IAM`.
    pub auth_type: String,
    /// The `Cors` object (Lambda's casing), as JSON.
    pub cors: Option<String>,
    /// `BUFFERED` or `RESPONSE_STREAM`, when set.
    pub invoke_mode: Option<String>,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// The members an update sets (`None` leaves a member as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlChange {
    pub auth_type: Option<String>,
    /// `Some(None)` removes the CORS configuration.
    pub cors: Option<Option<String>>,
    pub invoke_mode: Option<String>,
}

/// A stored HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRow {
    pub api_id: String,
    pub account: AccountId,
    pub region: Region,
    /// The API's document (JSON, the API layer's format).
    pub doc: String,
    pub created_ms: i64,
}

const URL_COLUMNS: &str = "f.account, f.region, f.name, u.qualifier, u.url_id, u.auth_type, \
     u.cors, u.invoke_mode, u.created_ms, u.modified_ms";

fn url_of(r: &Row<'_>) -> rusqlite::Result<Result<FunctionUrl, StoreError>> {
    let (account, region, name): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let url = |function| FunctionUrl {
        function,
        qualifier: r.get(3).unwrap_or_default(),
        url_id: r.get(4).unwrap_or_default(),
        auth_type: r.get(5).unwrap_or_default(),
        cors: r.get(6).unwrap_or_default(),
        invoke_mode: r.get(7).unwrap_or_default(),
        created_ms: r.get(8).unwrap_or_default(),
        modified_ms: r.get(9).unwrap_or_default(),
    };
    Ok(FunctionKey::parse(&account, &region, &name).map(url))
}

fn api_of(r: &Row<'_>) -> rusqlite::Result<Result<ApiRow, StoreError>> {
    let (account, region): (String, String) = (r.get(1)?, r.get(2)?);
    let (api_id, doc, created_ms) = (r.get(0)?, r.get(3)?, r.get(4)?);
    Ok((|| {
        Ok(ApiRow {
            api_id,
            account: AccountId::parse(&account).map_err(|e| StoreError::Corrupt(e.message))?,
            region: Region::parse(&region).map_err(|e| StoreError::Corrupt(e.message))?,
            doc,
            created_ms,
        })
    })())
}

fn find_url(
    conn: &rusqlite::Connection,
    key: &FunctionKey,
    qualifier: &str,
) -> Result<Option<FunctionUrl>, StoreError> {
    let sql = format!(
        "SELECT {URL_COLUMNS} FROM function_urls u JOIN functions f ON f.id = u.function_id
         WHERE f.account = ?1 AND f.region = ?2 AND f.name = ?3 AND u.qualifier = ?4"
    );
    conn.query_row(
        &sql,
        params![
            key.account.as_str(),
            key.region.as_str(),
            key.name.as_str(),
            qualifier
        ],
        url_of,
    )
    .optional()?
    .transpose()
}

impl Store {
    /// Creates the URL of a function (or one of its aliases). `Ok(false)` when that function or
    /// alias already has one; [`StoreError::NotFound`] when the function does not exist.
    pub fn create_function_url(&self, url: &FunctionUrl) -> Result<bool, StoreError> {
        let conn = self.conn();
        let id: i64 = conn
            .query_row(
                "SELECT id FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![
                    url.function.account.as_str(),
                    url.function.region.as_str(),
                    url.function.name.as_str()
                ],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::NotFound)?;
        let n = conn.execute(
            "INSERT OR IGNORE INTO function_urls
               (function_id, qualifier, url_id, auth_type, cors, invoke_mode, created_ms, modified_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                id,
                url.qualifier,
                url.url_id,
                url.auth_type,
                url.cors,
                url.invoke_mode,
                url.created_ms
            ],
        )?;
        Ok(n == 1)
    }

    /// The URL of a function (`qualifier` `""`) or alias.
    pub fn function_url(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<FunctionUrl>, StoreError> {
        find_url(&self.conn(), key, qualifier)
    }

    /// The URL with this id, whoever owns it.
    pub fn function_url_by_id(&self, url_id: &str) -> Result<Option<FunctionUrl>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {URL_COLUMNS} FROM function_urls u JOIN functions f ON f.id = u.function_id
             WHERE u.url_id = ?1"
        );
        conn.prepare_cached(&sql)?
            .query_row(params![url_id], url_of)
            .optional()?
            .transpose()
    }

    /// Every URL of a function, its own first, then its aliases' by name.
    pub fn function_urls(&self, key: &FunctionKey) -> Result<Vec<FunctionUrl>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {URL_COLUMNS} FROM function_urls u JOIN functions f ON f.id = u.function_id
             WHERE f.account = ?1 AND f.region = ?2 AND f.name = ?3 ORDER BY u.qualifier"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
            url_of,
        )?;
        rows.map(|r| r?).collect()
    }

    /// Changes a URL; returns it as it now is, or `None` if there is none.
    pub fn update_function_url(
        &self,
        key: &FunctionKey,
        qualifier: &str,
        change: &UrlChange,
    ) -> Result<Option<FunctionUrl>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(mut url) = find_url(&tx, key, qualifier)? else {
            return Ok(None);
        };
        if let Some(a) = &change.auth_type {
            url.auth_type.clone_from(a);
        }
        if let Some(c) = &change.cors {
            url.cors.clone_from(c);
        }
        if let Some(m) = &change.invoke_mode {
            url.invoke_mode = Some(m.clone());
        }
        url.modified_ms = now_millis();
        tx.execute(
            "UPDATE function_urls SET auth_type = ?1, cors = ?2, invoke_mode = ?3, modified_ms = ?4
             WHERE url_id = ?5",
            params![
                url.auth_type,
                url.cors,
                url.invoke_mode,
                url.modified_ms,
                url.url_id
            ],
        )?;
        tx.commit()?;
        Ok(Some(url))
    }

    /// Removes a URL; returns its id if there was one.
    pub fn delete_function_url(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(url) = find_url(&tx, key, qualifier)? else {
            return Ok(None);
        };
        tx.execute(
            "DELETE FROM function_urls WHERE url_id = ?1",
            params![url.url_id],
        )?;
        tx.commit()?;
        Ok(Some(url.url_id))
    }

    /// Creates an HTTP API, or replaces its document (`create` false: only if it exists).
    /// Returns whether a row was written.
    pub fn put_api(&self, row: &ApiRow, create: bool) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = if create {
            conn.execute(
                "INSERT OR IGNORE INTO http_apis (api_id, account, region, doc, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    row.api_id,
                    row.account.as_str(),
                    row.region.as_str(),
                    row.doc,
                    row.created_ms
                ],
            )?
        } else {
            conn.execute(
                "UPDATE http_apis SET doc = ?1 WHERE api_id = ?2",
                params![row.doc, row.api_id],
            )?
        };
        Ok(n == 1)
    }

    /// An HTTP API by id.
    pub fn api(&self, api_id: &str) -> Result<Option<ApiRow>, StoreError> {
        self.conn()
            .query_row(
                "SELECT api_id, account, region, doc, created_ms FROM http_apis WHERE api_id = ?1",
                params![api_id],
                api_of,
            )
            .optional()?
            .transpose()
    }

    /// The HTTP APIs of an account in a region, by id.
    pub fn apis(&self, account: &AccountId, region: &Region) -> Result<Vec<ApiRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT api_id, account, region, doc, created_ms FROM http_apis
             WHERE account = ?1 AND region = ?2 ORDER BY api_id",
        )?;
        let rows = stmt.query_map(params![account.as_str(), region.as_str()], api_of)?;
        rows.map(|r| r?).collect()
    }

    /// Removes an HTTP API; whether it existed.
    pub fn delete_api(&self, api_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM http_apis WHERE api_id = ?1", params![api_id])?
            == 1)
    }
}
