//! The image registry's records: repositories (per account and region), the blobs each
//! repository may serve, manifests ("images") and their tags. The bytes are in
//! [`crate::images::Images`].

use std::collections::{BTreeMap, HashSet};

use lamina_model::{AccountId, Region, now_millis};
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

/// A repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub id: i64,
    pub account: AccountId,
    pub region: Region,
    pub name: String,
    pub created_ms: i64,
    /// `MUTABLE` or `IMMUTABLE`.
    pub tag_mutability: String,
}

/// A manifest stored in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub digest: String,
    pub media_type: String,
    /// Bytes of the manifest.
    pub size: u64,
    pub pushed_ms: i64,
    /// The blobs and manifests it references.
    pub refs: Vec<String>,
    pub tags: Vec<String>,
}

/// A manifest being stored.
#[derive(Debug, Clone)]
pub struct NewImage<'a> {
    pub digest: &'a str,
    pub media_type: &'a str,
    pub size: u64,
    pub refs: &'a [String],
    pub tag: Option<&'a str>,
}

fn repository_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Repository, StoreError>> {
    let (account, region): (String, String) = (r.get(1)?, r.get(2)?);
    Ok((|| {
        Ok(Repository {
            id: r.get(0)?,
            account: AccountId::parse(&account).map_err(|e| StoreError::Corrupt(e.message))?,
            region: Region::parse(&region).map_err(|e| StoreError::Corrupt(e.message))?,
            name: r.get(3)?,
            created_ms: r.get(4)?,
            tag_mutability: r.get(5)?,
        })
    })())
}

const REPO_COLUMNS: &str = "id, account, region, name, created_ms, tag_mutability";

impl Store {
    /// Creates a repository; `AlreadyExists` if the name is taken in the account and region.
    pub fn create_repository(
        &self,
        account: &AccountId,
        region: &Region,
        name: &str,
        tag_mutability: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Repository, StoreError> {
        let now = now_millis();
        let tags = serde_json::to_string(tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let conn = self.conn();
        let n = conn.execute(
            "INSERT INTO ecr_repositories (account, region, name, created_ms, tag_mutability, tags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![
                account.as_str(),
                region.as_str(),
                name,
                now,
                tag_mutability,
                tags
            ],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(Repository {
            id: conn.last_insert_rowid(),
            account: account.clone(),
            region: region.clone(),
            name: name.to_owned(),
            created_ms: now,
            tag_mutability: tag_mutability.to_owned(),
        })
    }

    /// One repository by name.
    pub fn repository(
        &self,
        account: &AccountId,
        region: &Region,
        name: &str,
    ) -> Result<Option<Repository>, StoreError> {
        self.conn()
            .prepare_cached(&format!(
                "SELECT {REPO_COLUMNS} FROM ecr_repositories WHERE account = ?1 AND region = ?2 AND name = ?3"
            ))?
            .query_row(params![account.as_str(), region.as_str(), name], repository_of)
            .optional()?
            .transpose()
    }

    /// The repositories of an account and region, by name.
    pub fn repositories(
        &self,
        account: &AccountId,
        region: &Region,
    ) -> Result<Vec<Repository>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {REPO_COLUMNS} FROM ecr_repositories WHERE account = ?1 AND region = ?2 ORDER BY name"
        ))?;
        let rows = stmt.query_map(params![account.as_str(), region.as_str()], repository_of)?;
        rows.map(|r| r?).collect()
    }

    /// Deletes a repository (with its images if `force`); `NotEmpty` if it holds images.
    pub fn delete_repository(&self, repo: &Repository, force: bool) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let images: i64 = tx.query_row(
            "SELECT COUNT(*) FROM ecr_images WHERE repo_id = ?1",
            [repo.id],
            |r| r.get(0),
        )?;
        if images > 0 && !force {
            return Err(StoreError::NotEmpty);
        }
        tx.execute("DELETE FROM ecr_repositories WHERE id = ?1", [repo.id])?;
        tx.commit()?;
        Ok(())
    }

    /// Makes a stored blob visible in a repository.
    pub fn link_blob(&self, repo_id: i64, digest: &str, size: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO ecr_blobs (repo_id, digest, size) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![repo_id, digest, size as i64],
        )?;
        Ok(())
    }

    /// The size of a blob a repository may serve.
    pub fn repository_blob(&self, repo_id: i64, digest: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT size FROM ecr_blobs WHERE repo_id = ?1 AND digest = ?2")?
            .query_row(params![repo_id, digest], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|n| n as u64))
    }

    /// The size of a blob any repository of the account holds (cross-repository mounts).
    pub fn account_blob(
        &self,
        account: &AccountId,
        digest: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT b.size FROM ecr_blobs b JOIN ecr_repositories r ON r.id = b.repo_id
                 WHERE r.account = ?1 AND b.digest = ?2 LIMIT 1",
            )?
            .query_row(params![account.as_str(), digest], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|n| n as u64))
    }

    /// Stores a manifest (its bytes already in the blob store) and moves `tag` to it.
    /// `Immutable` if the repository's tags are immutable and the tag names another image.
    pub fn put_image(&self, repo: &Repository, image: NewImage<'_>) -> Result<(), StoreError> {
        let refs =
            serde_json::to_string(image.refs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Under the collection's lock, from the look at its blobs to the commit: a collection
        // either sees the manifest's references, or removed their blobs before the look.
        let _collecting = self.gc.read().unwrap_or_else(|e| e.into_inner());
        for digest in image.refs.iter().map(String::as_str).chain([image.digest]) {
            if self.images.blob_path(digest).is_none() {
                return Err(crate::BlobError::Unknown(digest.to_owned()).into());
            }
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO ecr_images (repo_id, digest, media_type, size, pushed_ms, refs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![
                repo.id,
                image.digest,
                image.media_type,
                image.size as i64,
                now_millis(),
                refs
            ],
        )?;
        tx.execute(
            "INSERT INTO ecr_blobs (repo_id, digest, size) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![repo.id, image.digest, image.size as i64],
        )?;
        if let Some(tag) = image.tag {
            let current: Option<String> = tx
                .query_row(
                    "SELECT digest FROM ecr_tags WHERE repo_id = ?1 AND tag = ?2",
                    params![repo.id, tag],
                    |r| r.get(0),
                )
                .optional()?;
            match current {
                Some(d) if d == image.digest => {}
                Some(_) if repo.tag_mutability == "IMMUTABLE" => {
                    return Err(StoreError::Immutable(tag.to_owned()));
                }
                _ => {
                    tx.execute(
                        "INSERT INTO ecr_tags (repo_id, tag, digest) VALUES (?1, ?2, ?3)
                         ON CONFLICT (repo_id, tag) DO UPDATE SET digest = excluded.digest",
                        params![repo.id, tag, image.digest],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A manifest by tag or digest.
    pub fn image(&self, repo_id: i64, reference: &str) -> Result<Option<ImageRecord>, StoreError> {
        let digest = if reference.starts_with("sha256:") {
            reference.to_owned()
        } else {
            let d: Option<String> = self
                .conn()
                .prepare_cached("SELECT digest FROM ecr_tags WHERE repo_id = ?1 AND tag = ?2")?
                .query_row(params![repo_id, reference], |r| r.get(0))
                .optional()?;
            match d {
                Some(d) => d,
                None => return Ok(None),
            }
        };
        Ok(self.images_of(repo_id, Some(&digest))?.pop())
    }

    /// Every manifest of a repository with its tags, newest first.
    pub fn images(&self, repo_id: i64) -> Result<Vec<ImageRecord>, StoreError> {
        self.images_of(repo_id, None)
    }

    /// The repository's manifests, or the one of `digest`.
    fn images_of(
        &self,
        repo_id: i64,
        digest: Option<&str>,
    ) -> Result<Vec<ImageRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT i.digest, i.media_type, i.size, i.pushed_ms, i.refs,
                    (SELECT json_group_array(tag) FROM (SELECT tag FROM ecr_tags t
                       WHERE t.repo_id = i.repo_id AND t.digest = i.digest ORDER BY tag))
             FROM ecr_images i WHERE i.repo_id = ?1 AND (?2 IS NULL OR i.digest = ?2)
             ORDER BY i.pushed_ms DESC, i.digest",
        )?;
        let rows = stmt.query_map(params![repo_id, digest], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (digest, media_type, size, pushed_ms, refs, tags) = row?;
            let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
            Ok(ImageRecord {
                digest,
                media_type,
                size: size as u64,
                pushed_ms,
                refs: serde_json::from_str(&refs).map_err(corrupt)?,
                tags: serde_json::from_str(&tags).map_err(corrupt)?,
            })
        })
        .collect()
    }

    /// Removes a tag; `Some(digest)` it named.
    pub fn untag_image(&self, repo_id: i64, tag: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "DELETE FROM ecr_tags WHERE repo_id = ?1 AND tag = ?2 RETURNING digest",
                params![repo_id, tag],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Removes a manifest and its tags; `false` if it was not there. One that a manifest list
    /// of the repository names is refused ([`StoreError::InIndex`]), as ECR refuses it: the
    /// list would name a manifest that is gone.
    pub fn delete_image(&self, repo_id: i64, digest: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // `refs` is a JSON list of digests, which hold no LIKE wildcards.
        let list: Option<String> = tx
            .query_row(
                "SELECT digest FROM ecr_images WHERE repo_id = ?1 AND digest != ?2
                 AND refs LIKE '%\"' || ?2 || '\"%' AND (media_type LIKE '%index%'
                 OR media_type LIKE '%manifest.list%') LIMIT 1",
                params![repo_id, digest],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(list) = list {
            return Err(StoreError::InIndex(list));
        }
        tx.execute(
            "DELETE FROM ecr_tags WHERE repo_id = ?1 AND digest = ?2",
            params![repo_id, digest],
        )?;
        let n = tx.execute(
            "DELETE FROM ecr_images WHERE repo_id = ?1 AND digest = ?2",
            params![repo_id, digest],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every manifest and every blob a manifest references: what image collection keeps
    /// (blobs uploaded but not referenced yet are kept for a grace period by the collector).
    pub fn referenced_blobs(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.conn();
        let mut keep: HashSet<String> = conn
            .prepare("SELECT digest FROM ecr_images")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT refs FROM ecr_images")?;
        for refs in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let refs: Vec<String> =
                serde_json::from_str(&refs?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            keep.extend(refs);
        }
        Ok(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobError;

    #[test]
    fn a_manifest_is_stored_only_with_every_blob_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let account = AccountId::parse("000000000000").unwrap();
        let region = Region::parse("us-east-1").unwrap();
        let repo = store
            .create_repository(&account, &region, "r", "MUTABLE", &BTreeMap::new())
            .unwrap();
        let manifest = store.image_content().put_blob(b"{}").unwrap();
        let layer = store.image_content().put_blob(b"layer").unwrap();
        let missing = format!("sha256:{}", "0".repeat(64));
        fn image<'a>(manifest: &'a str, refs: &'a [String]) -> NewImage<'a> {
            NewImage {
                digest: manifest,
                media_type: "application/vnd.oci.image.manifest.v1+json",
                size: 2,
                refs,
                tag: Some("t"),
            }
        }
        // Its blob gone (collected, say) by the time of the commit: refused, nothing stored.
        let refs = [layer.clone(), missing.clone()];
        let e = store.put_image(&repo, image(&manifest, &refs));
        assert!(
            matches!(&e, Err(StoreError::Blob(BlobError::Unknown(d))) if *d == missing),
            "{e:?}"
        );
        assert!(store.images(repo.id).unwrap().is_empty());
        store.put_image(&repo, image(&manifest, &[layer])).unwrap();
        assert_eq!(store.images(repo.id).unwrap().len(), 1);
    }
}
