//! Resource-based policies of functions: one policy document per function and qualifier (the
//! empty qualifier for the unqualified function), versioned with a revision id. The store keeps
//! the statements as JSON; what they mean is the API's business.

use rusqlite::{OptionalExtension, params};

use crate::{FunctionKey, Store, StoreError};

/// A stored policy: its statements (a JSON array) and revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub statements: String,
    pub revision_id: String,
}

impl Store {
    /// The policy of a function's qualifier (`""`: the function itself), if it has one.
    pub fn policy(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<StoredPolicy>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT p.statements, p.revision_id FROM function_policies p
                 JOIN functions f ON f.id = p.function_id
                 WHERE f.account = ?1 AND f.region = ?2 AND f.name = ?3 AND p.qualifier = ?4",
                params![
                    key.account.as_str(),
                    key.region.as_str(),
                    key.name.as_str(),
                    qualifier
                ],
                |r| {
                    Ok(StoredPolicy {
                        statements: r.get(0)?,
                        revision_id: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Changes a policy atomically: `change` gets the current one and returns the new statements
    /// (`"[]"` removes the policy). `expected_revision`, when given, must match.
    pub fn update_policy(
        &self,
        key: &FunctionKey,
        qualifier: &str,
        expected_revision: Option<&str>,
        change: impl FnOnce(Option<&StoredPolicy>) -> Result<String, StoreError>,
    ) -> Result<StoredPolicy, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id: i64 = tx
            .query_row(
                "SELECT id FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![key.account.as_str(), key.region.as_str(), key.name.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::NotFound)?;
        let current: Option<StoredPolicy> = tx
            .query_row(
                "SELECT statements, revision_id FROM function_policies WHERE function_id = ?1 AND qualifier = ?2",
                params![id, qualifier],
                |r| {
                    Ok(StoredPolicy {
                        statements: r.get(0)?,
                        revision_id: r.get(1)?,
                    })
                },
            )
            .optional()?;
        if let Some(expected) = expected_revision
            && current.as_ref().is_none_or(|c| c.revision_id != expected)
        {
            return Err(StoreError::RevisionMismatch);
        }
        let statements = change(current.as_ref())?;
        let new = StoredPolicy {
            statements,
            revision_id: uuid::Uuid::new_v4().to_string(),
        };
        if new.statements == "[]" {
            tx.execute(
                "DELETE FROM function_policies WHERE function_id = ?1 AND qualifier = ?2",
                params![id, qualifier],
            )?;
        } else {
            tx.execute(
                "INSERT INTO function_policies (function_id, qualifier, statements, revision_id)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (function_id, qualifier) DO UPDATE SET statements = ?3, revision_id = ?4",
                params![id, qualifier, new.statements, new.revision_id],
            )?;
        }
        tx.commit()?;
        Ok(new)
    }
}
