//! Container image content on disk: blobs by digest, upload sessions, the cache of unpacked
//! layers, and image roots.
//!
//! - `blobs/sha256/<hex>`: every blob and manifest, written once, verified against its digest
//!   while it streams in, renamed into place only when complete.
//! - `uploads/<uuid>`: the bytes of an upload in progress. Sessions live in memory (with their
//!   running hash), so a restart ends them and clients start the blob again; their files are
//!   removed at start and when they expire.
//! - `layers/<hex of the blob>/`: a layer unpacked once under [`crate::image_layer`]'s policy
//!   (`tree/`, and `layer.json`: its diff_id, size, entries and whiteouts), shared by every image
//!   that uses it.
//! - An image root is built by merging its layers (hard links) into the code directory's tree of
//!   the manifest's digest, so versions pin and collect it like a zip's tree.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::image_layer::{self, Compression, LayerError, LayerLimits, Whiteout};

/// How long an upload may sit idle before it is forgotten.
pub const UPLOAD_TTL: Duration = Duration::from_secs(3600);
/// Blobs nothing references are kept this long, so that a push's manifest can still name them.
pub const BLOB_GRACE: Duration = Duration::from_secs(3600);
/// Upload sessions open at once, per repository, per account and in all (each holds a file
/// open).
pub const MAX_UPLOADS_PER_OWNER: usize = 32;
pub const MAX_UPLOADS_PER_ACCOUNT: usize = 64;
pub const MAX_UPLOADS: usize = 256;

/// `sha256:<64 lowercase hex>`, the only digest algorithm accepted; `None` otherwise.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the upload session is unknown or has expired")]
    UploadUnknown,
    #[error("the upload is in use by another request")]
    UploadBusy,
    #[error("too many uploads are open; finish or cancel some first")]
    TooManyUploads,
    #[error("the content's digest is {actual}, not {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("the digest '{0}' is not a sha256 digest")]
    DigestInvalid(String),
    #[error("the blob is larger than {0} bytes")]
    TooLarge(u64),
    #[error("blob {0} is not stored")]
    Unknown(String),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("image storage failed at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct Session {
    /// Who opened it (the registry's repository key); another owner cannot touch it.
    owner: String,
    /// The account of that repository.
    account: String,
    /// `None` while a request is writing.
    writer: Option<UploadWriter>,
    touched: Instant,
}

/// The open end of an upload: bytes appended here are written and hashed.
pub struct UploadWriter {
    file: File,
    hash: Sha256,
    offset: u64,
}

impl UploadWriter {
    /// Appends bytes (a page-cache write; durability comes at [`Images::finish_upload`]). A
    /// write that fails part way is cut off again, so the file holds what the offset and hash
    /// say, and the upload can resume at its offset.
    pub fn write(&mut self, bytes: &[u8], limit: u64) -> Result<(), BlobError> {
        if self.offset + bytes.len() as u64 > limit {
            return Err(BlobError::TooLarge(limit));
        }
        // At the offset, whatever an earlier failure left past it.
        if let Err(source) = self.file.write_all_at(bytes, self.offset) {
            // Should this fail too, finishing refuses the upload by its length.
            let _ = self.file.set_len(self.offset);
            return Err(BlobError::Io {
                path: PathBuf::from("upload"),
                source,
            });
        }
        self.hash.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Bytes received so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// The image content directory.
pub struct Images {
    root: PathBuf,
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images").field("root", &self.root).finish()
    }
}

impl Images {
    /// Opens (creating) the directory; uploads and staging from an earlier run are removed.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        for sub in ["uploads", "staging"] {
            let p = root.join(sub);
            if p.exists() {
                fs::remove_dir_all(&p).map_err(io_at(&p))?;
            }
        }
        for sub in ["blobs/sha256", "uploads", "staging", "layers"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            sessions: Mutex::default(),
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where a stored blob is, if it is stored.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let p = self.root.join("blobs/sha256").join(digest_hex(digest)?);
        p.is_file().then_some(p)
    }

    /// The size of a stored blob.
    pub fn blob_size(&self, digest: &str) -> Option<u64> {
        fs::metadata(self.blob_path(digest)?).ok().map(|m| m.len())
    }

    /// Marks a stored blob as just used (collection keeps unreferenced blobs for
    /// [`BLOB_GRACE`] after their last use); `false` if it is not stored.
    pub fn touch_blob(&self, digest: &str) -> bool {
        let Some(path) = self.blob_path(digest) else {
            return false;
        };
        let _ = File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        true
    }

    /// Reads a whole (small) blob.
    pub fn read_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>, BlobError> {
        let path = self
            .blob_path(digest)
            .ok_or_else(|| BlobError::Unknown(digest.to_owned()))?;
        let len = fs::metadata(&path).map_err(io_at(&path))?.len();
        if len > limit {
            return Err(BlobError::TooLarge(limit));
        }
        fs::read(&path).map_err(io_at(&path))
    }

    /// Stores bytes whose digest is already known to be `sha256(bytes)` or computes it.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, BlobError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        if self.touch_blob(&digest) {
            return Ok(digest);
        }
        let staged = self
            .root
            .join("staging")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let mut f = File::create(&staged).map_err(io_at(&staged))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(io_at(&staged))?;
        self.settle(&staged, &digest)?;
        Ok(digest)
    }

    fn settle(&self, staged: &Path, digest: &str) -> Result<(), BlobError> {
        let dir = self.root.join("blobs/sha256");
        let hex = digest_hex(digest).ok_or_else(|| BlobError::DigestInvalid(digest.into()))?;
        let dest = dir.join(hex);
        fs::rename(staged, &dest).map_err(io_at(&dest))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&dir))
    }

    /// Opens an upload session for `owner` (a repository of `account`); returns its id.
    pub fn start_upload(&self, account: &str, owner: &str) -> Result<String, BlobError> {
        let id = uuid::Uuid::new_v4().to_string();
        let path = self.root.join("uploads").join(&id);
        let file = File::create(&path).map_err(io_at(&path))?;
        let mut sessions = self.sessions();
        sessions.retain(|id, s| {
            // A session whose writer is out is streaming a request: never expired under it.
            let keep = s.writer.is_none() || s.touched.elapsed() < UPLOAD_TTL;
            if !keep {
                let _ = fs::remove_file(self.root.join("uploads").join(id));
            }
            keep
        });
        if sessions.len() >= MAX_UPLOADS
            || sessions.values().filter(|s| s.owner == owner).count() >= MAX_UPLOADS_PER_OWNER
            || sessions.values().filter(|s| s.account == account).count() >= MAX_UPLOADS_PER_ACCOUNT
        {
            drop(sessions);
            let _ = fs::remove_file(&path);
            return Err(BlobError::TooManyUploads);
        }
        sessions.insert(
            id.clone(),
            Session {
                owner: owner.to_owned(),
                account: account.to_owned(),
                writer: Some(UploadWriter {
                    file,
                    hash: Sha256::new(),
                    offset: 0,
                }),
                touched: Instant::now(),
            },
        );
        Ok(id)
    }

    /// Takes an upload's writer for one request; give it back with [`Self::return_upload`],
    /// or finish it.
    pub fn take_upload(&self, id: &str, owner: &str) -> Result<UploadWriter, BlobError> {
        let mut sessions = self.sessions();
        let s = sessions
            .get_mut(id)
            .filter(|s| s.owner == owner && s.touched.elapsed() < UPLOAD_TTL)
            .ok_or(BlobError::UploadUnknown)?;
        s.touched = Instant::now();
        s.writer.take().ok_or(BlobError::UploadBusy)
    }

    /// An upload's progress, for status requests.
    pub fn upload_offset(&self, id: &str, owner: &str) -> Result<u64, BlobError> {
        let sessions = self.sessions();
        let s = sessions
            .get(id)
            .filter(|s| s.owner == owner && s.touched.elapsed() < UPLOAD_TTL)
            .ok_or(BlobError::UploadUnknown)?;
        s.writer
            .as_ref()
            .map(UploadWriter::offset)
            .ok_or(BlobError::UploadBusy)
    }

    /// Gives a writer back after a request appended to it.
    pub fn return_upload(&self, id: &str, writer: UploadWriter) {
        if let Some(s) = self.sessions().get_mut(id) {
            s.writer = Some(writer);
            s.touched = Instant::now();
        }
    }

    /// Ends an upload without storing anything.
    pub fn cancel_upload(&self, id: &str, owner: &str) -> Result<(), BlobError> {
        let mut sessions = self.sessions();
        if sessions.get(id).is_none_or(|s| s.owner != owner) {
            return Err(BlobError::UploadUnknown);
        }
        sessions.remove(id);
        let _ = fs::remove_file(self.root.join("uploads").join(id));
        Ok(())
    }

    /// Completes an upload: its content must hash to `digest`, and the file must hold exactly the
    /// bytes hashed. The blob is durable on return. The session ends either way. Returns the size.
    pub fn finish_upload(
        &self,
        id: &str,
        writer: UploadWriter,
        digest: &str,
    ) -> Result<u64, BlobError> {
        self.sessions().remove(id);
        let path = self.root.join("uploads").join(id);
        let result = (|| {
            digest_hex(digest).ok_or_else(|| BlobError::DigestInvalid(digest.into()))?;
            let actual = format!("sha256:{}", hex::encode(writer.hash.finalize()));
            if actual != digest {
                return Err(BlobError::DigestMismatch {
                    expected: digest.into(),
                    actual,
                });
            }
            let len = writer.file.metadata().map_err(io_at(&path))?.len();
            if len != writer.offset {
                return Err(io_at(&path)(io::Error::other(format!(
                    "the upload file holds {len} bytes, not the {} received",
                    writer.offset
                ))));
            }
            if !self.touch_blob(digest) {
                writer.file.sync_all().map_err(io_at(&path))?;
                self.settle(&path, digest)?;
            }
            Ok(writer.offset)
        })();
        let _ = fs::remove_file(&path);
        result
    }

    /// A layer unpacked, now unless cached. The diff_id is checked while unpacking, a cached
    /// layer is held to `limits` as an unpacked one is, and a layer that fails leaves nothing
    /// behind.
    pub fn unpacked_layer(
        &self,
        blob_digest: &str,
        media_type: &str,
        diff_id: &str,
        limits: LayerLimits,
    ) -> Result<CachedLayer, BlobError> {
        let hex =
            digest_hex(blob_digest).ok_or_else(|| BlobError::DigestInvalid(blob_digest.into()))?;
        let dir = self.root.join("layers").join(hex);
        let meta = dir.join("layer.json");
        // One larger than its whiteout budget allows (JSON escapes a byte in at most six) was
        // written before the budget: unpacked again, and refused.
        if fs::metadata(&meta).is_ok_and(|m| m.len() <= 8 * image_layer::MAX_WHITEOUT_BYTES)
            && let Ok(text) = fs::read(&meta)
            && let Ok(m) = serde_json::from_slice::<LayerMeta>(&text)
            && m.diff_id == diff_id
        {
            return m.within(limits, dir.join("tree"));
        }
        let compression = Compression::of_media_type(media_type).ok_or_else(|| {
            LayerError::Corrupt(format!("unsupported layer media type '{media_type}'"))
        })?;
        let blob = self
            .blob_path(blob_digest)
            .ok_or_else(|| BlobError::Unknown(blob_digest.to_owned()))?;
        let work = self
            .root
            .join("staging")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let tree = work.join("tree");
        fs::create_dir_all(&tree).map_err(io_at(&tree))?;
        let result = (|| {
            let file = File::open(&blob).map_err(io_at(&blob))?;
            let unpacked = image_layer::unpack(
                io::BufReader::with_capacity(256 * 1024, file),
                compression,
                &tree,
                limits,
                Some(diff_id),
            )?;
            let m = LayerMeta {
                diff_id: unpacked.diff_id.clone(),
                bytes: unpacked.bytes,
                entries: unpacked.entries,
                whiteouts: unpacked.whiteouts,
            };
            let json = serde_json::to_vec(&m).expect("layer metadata serialises");
            fs::write(work.join("layer.json"), json).map_err(io_at(&work))?;
            sync_tree(&work)?;
            match fs::rename(&work, &dir) {
                Ok(()) => {}
                // Unpacked already: by another build at the same time, or by an older release
                // whose metadata this one cannot read. The tree is the same; the metadata is
                // replaced, so the cache answers next time.
                Err(_) if meta.exists() => {
                    fs::rename(work.join("layer.json"), &meta).map_err(io_at(&meta))?
                }
                Err(e) => return Err(io_at(&dir)(e)),
            }
            Ok(CachedLayer {
                tree: dir.join("tree"),
                whiteouts: m.whiteouts,
                bytes: m.bytes,
                entries: m.entries,
            })
        })();
        let _ = fs::remove_dir_all(&work);
        result
    }

    /// Merges unpacked layers (lowest first) into `dest`, which must not exist yet; built in
    /// staging and renamed, so `dest` is either whole or absent.
    pub fn build_root(
        &self,
        layers: &[(PathBuf, Vec<Whiteout>)],
        dest: &Path,
    ) -> Result<(), BlobError> {
        if dest.is_dir() {
            return Ok(());
        }
        let work = self
            .root
            .join("staging")
            .join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir_all(&work).map_err(io_at(&work))?;
        let result = (|| {
            let refs: Vec<(&Path, &[Whiteout])> = layers
                .iter()
                .map(|(p, w)| (p.as_path(), w.as_slice()))
                .collect();
            image_layer::merge(&refs, &work)?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).map_err(io_at(&work))?;
            sync_tree(&work)?;
            match fs::rename(&work, dest) {
                Ok(()) => Ok(()),
                Err(_) if dest.is_dir() => Ok(()),
                Err(e) => Err(io_at(dest)(e)),
            }
        })();
        // Gone on success (renamed), otherwise removed: a failure, or another build of the same
        // root that finished first.
        if work.exists() {
            let _ = fs::remove_dir_all(&work);
        }
        result
    }

    /// Removes blobs not in `keep` (once older than [`BLOB_GRACE`]), unpacked layers of blobs
    /// not in `keep`, and expired uploads. Returns how many items went.
    pub fn collect(&self, keep: &HashSet<String>) -> Result<usize, BlobError> {
        let mut removed = 0;
        let blobs = self.root.join("blobs/sha256");
        let now = SystemTime::now();
        for entry in fs::read_dir(&blobs).map_err(io_at(&blobs))? {
            let entry = entry.map_err(io_at(&blobs))?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > BLOB_GRACE);
            if !keep.contains(&digest) && old {
                fs::remove_file(entry.path()).map_err(io_at(&entry.path()))?;
                removed += 1;
            }
        }
        let layers = self.root.join("layers");
        for entry in fs::read_dir(&layers).map_err(io_at(&layers))? {
            let entry = entry.map_err(io_at(&layers))?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep.contains(&digest) {
                fs::remove_dir_all(entry.path()).map_err(io_at(&entry.path()))?;
                removed += 1;
            }
        }
        let mut sessions = self.sessions();
        sessions.retain(|id, s| {
            let keep = s.writer.is_none() || s.touched.elapsed() < UPLOAD_TTL;
            if !keep {
                let _ = fs::remove_file(self.root.join("uploads").join(id));
                removed += 1;
            }
            keep
        });
        Ok(removed)
    }
}

/// A layer's `layer.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct LayerMeta {
    diff_id: String,
    bytes: u64,
    /// Entries as [`LayerLimits::max_entries`] counts them.
    entries: usize,
    whiteouts: Vec<Whiteout>,
}

impl LayerMeta {
    /// The cached layer, unless it holds more than `limits` allow.
    fn within(self, limits: LayerLimits, tree: PathBuf) -> Result<CachedLayer, BlobError> {
        let refused = if self.bytes > limits.max_bytes {
            Some(LayerError::TooLarge {
                limit: limits.max_bytes,
            })
        } else if self.entries > limits.max_entries {
            Some(LayerError::TooManyEntries {
                limit: limits.max_entries,
            })
        } else if image_layer::whiteout_bytes(&self.whiteouts) > limits.max_whiteout_bytes {
            Some(LayerError::TooManyWhiteouts {
                limit: limits.max_whiteout_bytes,
            })
        } else {
            None
        };
        match refused {
            Some(e) => Err(e.into()),
            None => Ok(CachedLayer {
                tree,
                whiteouts: self.whiteouts,
                bytes: self.bytes,
                entries: self.entries,
            }),
        }
    }
}

/// A layer unpacked into the cache.
#[derive(Debug)]
pub struct CachedLayer {
    /// Its tree, to merge from.
    pub tree: PathBuf,
    pub whiteouts: Vec<Whiteout>,
    /// Bytes of the decompressed stream.
    pub bytes: u64,
    /// Entries, as [`LayerLimits::max_entries`] counts them.
    pub entries: usize,
}

fn sync_tree(path: &Path) -> Result<(), BlobError> {
    use std::os::fd::AsRawFd;
    let dir = File::open(path).map_err(io_at(path))?;
    // SAFETY: `dir` is an open descriptor for the duration of the call; syncfs only reads it.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io_at(path)(io::Error::last_os_error()));
    }
    Ok(())
}

/// One layer of an image, as its manifest and configuration name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The blob's digest (compressed, as stored).
    pub digest: String,
    pub media_type: String,
    /// `sha256:<hex>` of the uncompressed tar, from the configuration's `rootfs.diff_ids`.
    pub diff_id: String,
}

/// What an image function runs from: a manifest's layers, all stored as blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    /// The manifest's digest: the image root is the code tree of its hex.
    pub manifest_digest: String,
    pub layers: Vec<LayerRef>,
    /// Bytes of all layers uncompressed (Lambda's 10 GB image limit).
    pub max_bytes: u64,
    /// Entries of all layers together (directories made for deeper entries included).
    pub max_entries: usize,
}

/// A function's code: a zip, or an image whose root is built from stored layers.
#[derive(Debug, Clone, Copy)]
pub enum Package<'a> {
    Zip(&'a [u8]),
    Image(&'a ImagePlan),
}

impl Package<'_> {
    /// Bytes the package adds to the account's code storage (images are kept by the registry).
    pub fn stored_len(&self) -> u64 {
        match self {
            Package::Zip(z) => z.len() as u64,
            Package::Image(_) => 0,
        }
    }
}

impl crate::Store {
    /// The image content directory.
    pub fn image_content(&self) -> &Images {
        &self.images
    }

    /// Stores a package: a zip extracted, or an image's root built from its layers (each
    /// unpacked once into the shared cache, then merged). The plan's limits, and
    /// [`image_layer::MAX_WHITEOUT_BYTES`], cover the layers together: each layer gets what
    /// those below it left. Callers hold the collection lock.
    pub(crate) fn put_package(
        &self,
        package: Package<'_>,
        limits: crate::ExtractLimits,
    ) -> Result<crate::StoredCode, crate::StoreError> {
        let plan = match package {
            Package::Zip(zip) => return Ok(self.code.put(zip, limits)?),
            Package::Image(plan) => plan,
        };
        let hex = digest_hex(&plan.manifest_digest)
            .ok_or_else(|| BlobError::DigestInvalid(plan.manifest_digest.clone()))?;
        let (mut total, mut entries, mut whiteout_bytes) = (0u64, 0usize, 0u64);
        let mut trees = Vec::with_capacity(plan.layers.len());
        for layer in &plan.layers {
            let l = self.images.unpacked_layer(
                &layer.digest,
                &layer.media_type,
                &layer.diff_id,
                LayerLimits {
                    max_bytes: plan.max_bytes.saturating_sub(total),
                    max_entries: plan.max_entries.saturating_sub(entries),
                    max_whiteout_bytes: image_layer::MAX_WHITEOUT_BYTES
                        .saturating_sub(whiteout_bytes),
                },
            )?;
            total += l.bytes;
            entries += l.entries;
            whiteout_bytes += image_layer::whiteout_bytes(&l.whiteouts);
            trees.push((l.tree, l.whiteouts));
        }
        self.images.build_root(&trees, &self.code.tree_path(hex))?;
        Ok(crate::StoredCode {
            sha256_hex: hex.to_owned(),
            size: 0,
            unzipped_size: total,
        })
    }
}

impl Images {
    /// A fresh path in staging for a download in progress (removed at the next start).
    pub fn staging_file(&self) -> PathBuf {
        self.root
            .join("staging")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Moves a downloaded file into the blob store if it hashes to `digest`; removes it either
    /// way. Returns its size.
    pub fn import(&self, file: &Path, digest: &str) -> Result<u64, BlobError> {
        let result = (|| {
            let mut f = File::open(file).map_err(io_at(file))?;
            let mut hash = Sha256::new();
            let size = io::copy(&mut f, &mut hash).map_err(io_at(file))?;
            let actual = format!("sha256:{}", hex::encode(hash.finalize()));
            if actual != digest {
                return Err(BlobError::DigestMismatch {
                    expected: digest.into(),
                    actual,
                });
            }
            if !self.touch_blob(digest) {
                f.sync_all().map_err(io_at(file))?;
                self.settle(file, digest)?;
            }
            Ok(size)
        })();
        let _ = fs::remove_file(file);
        result
    }
}

#[cfg(test)]
mod tests;
