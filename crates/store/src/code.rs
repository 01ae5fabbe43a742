//! Content-addressed function code on disk.
//!
//! Layout under the code directory:
//! - `zips/<sha256-hex>.zip`: the package exactly as uploaded (what GetFunction downloads);
//! - `trees/<sha256-hex>/`: the package extracted, what an execution environment mounts at
//!   `/var/task`;
//! - `staging/`: work in progress. Anything here at start belongs to a crashed write and is removed.
//!
//! Both final forms appear by `rename` only once complete and flushed, so a reader never sees a
//! partial package. Nothing here knows about functions: the store decides which hashes are
//! referenced and asks [`CodeDir::retain`] to drop the rest.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::archive::{self, ArchiveError, ExtractLimits};

/// A package that is safely on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    /// Hex SHA-256 of the zip.
    pub sha256_hex: String,
    /// Bytes of the zip.
    pub size: u64,
    /// Bytes of the files once extracted.
    pub unzipped_size: u64,
}

impl StoredCode {
    /// `CodeSha256` as Lambda shows it: base64 of the raw digest.
    pub fn sha256_base64(&self) -> String {
        use base64::Engine;
        let raw = hex::decode(&self.sha256_hex).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

/// Why a package could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("code storage i/o failed at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CodeError + '_ {
    move |source| CodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The code directory.
#[derive(Debug)]
pub struct CodeDir {
    root: PathBuf,
}

impl CodeDir {
    /// Opens (creating if needed) the code directory and clears `staging/`.
    pub fn open(root: &Path) -> Result<Self, CodeError> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        for sub in ["zips", "trees"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        // `staging/` holds interrupted writes and `opt/` merged layer trees (a cache, rebuilt on
        // demand): both start empty.
        for sub in [dir.staging(), root.join("opt")] {
            if sub.exists() {
                fs::remove_dir_all(&sub).map_err(io_at(&sub))?;
            }
            fs::create_dir_all(&sub).map_err(io_at(&sub))?;
        }
        Ok(dir)
    }

    fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// Where the zip of a stored package lives.
    pub fn zip_path(&self, sha256_hex: &str) -> PathBuf {
        self.root.join("zips").join(format!("{sha256_hex}.zip"))
    }

    /// Where the extracted tree of a stored package lives.
    pub fn tree_path(&self, sha256_hex: &str) -> PathBuf {
        self.root.join("trees").join(sha256_hex)
    }

    /// Validates a package without storing it (UpdateFunctionCode's DryRun).
    pub fn check(
        &self,
        zip: &[u8],
        limits: ExtractLimits,
    ) -> Result<archive::Extracted, CodeError> {
        let work = self
            .staging()
            .join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir(&work).map_err(io_at(&work))?;
        let result = archive::extract(zip, &work, limits).map_err(CodeError::from);
        let _ = fs::remove_dir_all(&work);
        result
    }

    /// Validates, extracts and durably stores a package. Idempotent for identical bytes.
    pub fn put(&self, zip: &[u8], limits: ExtractLimits) -> Result<StoredCode, CodeError> {
        let sha256_hex = hex::encode(Sha256::digest(zip));
        let tree = self.tree_path(&sha256_hex);
        let zip_path = self.zip_path(&sha256_hex);
        let work = self
            .staging()
            .join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir(&work).map_err(io_at(&work))?;
        let result = self.put_inner(zip, limits, &sha256_hex, &tree, &zip_path, &work);
        // Whatever happened, the work directory goes: on success its contents were renamed away.
        let _ = fs::remove_dir_all(&work);
        result
    }

    fn put_inner(
        &self,
        zip: &[u8],
        limits: ExtractLimits,
        sha256_hex: &str,
        tree: &Path,
        zip_path: &Path,
        work: &Path,
    ) -> Result<StoredCode, CodeError> {
        // The same bytes always extract to the same tree, but limits may have changed since: the
        // archive is checked again every time, into a scratch tree that is kept only if needed.
        let staged_tree = work.join("tree");
        fs::create_dir(&staged_tree).map_err(io_at(&staged_tree))?;
        let extracted = archive::extract(zip, &staged_tree, limits)?;

        if !tree.exists() {
            sync_filesystem(&staged_tree)?;
            match fs::rename(&staged_tree, tree) {
                Ok(()) => {}
                // Another upload of the same bytes won the race; its tree is identical.
                Err(e) if tree.exists() => {
                    tracing::debug!("tree {sha256_hex} already present: {e}")
                }
                Err(e) => return Err(io_at(tree)(e)),
            }
        }
        if !zip_path.exists() {
            let staged_zip = work.join("code.zip");
            let mut f = File::create(&staged_zip).map_err(io_at(&staged_zip))?;
            f.write_all(zip).map_err(io_at(&staged_zip))?;
            f.sync_all().map_err(io_at(&staged_zip))?;
            fs::rename(&staged_zip, zip_path).map_err(io_at(zip_path))?;
        }
        for dir in [self.root.join("zips"), self.root.join("trees")] {
            fsync_dir(&dir)?;
        }
        Ok(StoredCode {
            sha256_hex: sha256_hex.to_owned(),
            size: zip.len() as u64,
            unzipped_size: extracted.unzipped_bytes,
        })
    }

    /// The `/opt` of a function: its layers' trees merged in order (a later layer's file wins),
    /// built once per distinct list from hard links, so it costs no copy of the data.
    pub fn merged(&self, layer_shas: &[String]) -> Result<PathBuf, CodeError> {
        let key = hex::encode(Sha256::digest(layer_shas.join(",").as_bytes()));
        let target = self.root.join("opt").join(&key);
        if target.exists() {
            return Ok(target);
        }
        let work = self
            .staging()
            .join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir_all(&work).map_err(io_at(&work))?;
        let result = (|| {
            for sha in layer_shas {
                link_tree(&self.tree_path(sha), &work)?;
            }
            match fs::rename(&work, &target) {
                Ok(()) => Ok(()),
                Err(_) if target.exists() => Ok(()),
                Err(e) => Err(io_at(&target)(e)),
            }
        })();
        let _ = fs::remove_dir_all(&work);
        result.map(|()| target)
    }

    /// Removes every package whose hash is not in `keep`. Returns how many were removed.
    pub fn retain(&self, keep: &HashSet<String>) -> Result<usize, CodeError> {
        let mut removed = 0;
        let zips = self.root.join("zips");
        for entry in fs::read_dir(&zips).map_err(io_at(&zips))? {
            let entry = entry.map_err(io_at(&zips))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let hash = name.strip_suffix(".zip").unwrap_or(&name);
            if !keep.contains(hash) {
                fs::remove_file(entry.path()).map_err(io_at(&entry.path()))?;
                removed += 1;
            }
        }
        let trees = self.root.join("trees");
        for entry in fs::read_dir(&trees).map_err(io_at(&trees))? {
            let entry = entry.map_err(io_at(&trees))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                fs::remove_dir_all(entry.path()).map_err(io_at(&entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every hash that has a zip or a tree on disk.
    pub fn present(&self) -> Result<HashSet<String>, CodeError> {
        let mut out = HashSet::new();
        for sub in ["zips", "trees"] {
            let dir = self.root.join(sub);
            for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
                let entry = entry.map_err(io_at(&dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                out.insert(name.strip_suffix(".zip").unwrap_or(&name).to_owned());
            }
        }
        Ok(out)
    }
}

/// Hard-links every file of `from` into `to`, replacing what is there.
fn link_tree(from: &Path, to: &Path) -> Result<(), CodeError> {
    for entry in fs::read_dir(from).map_err(io_at(from))? {
        let entry = entry.map_err(io_at(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io_at(&src))?;
        if kind.is_dir() {
            if dst.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                fs::remove_file(&dst).map_err(io_at(&dst))?;
            }
            fs::create_dir_all(&dst).map_err(io_at(&dst))?;
            link_tree(&src, &dst)?;
            continue;
        }
        if let Ok(m) = dst.symlink_metadata() {
            if m.is_dir() {
                fs::remove_dir_all(&dst).map_err(io_at(&dst))?;
            } else {
                fs::remove_file(&dst).map_err(io_at(&dst))?;
            }
        }
        if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(io_at(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(io_at(&dst))?;
        } else {
            fs::hard_link(&src, &dst).map_err(io_at(&dst))?;
        }
    }
    Ok(())
}

/// Flushes the whole filesystem holding `path`: one `syncfs` instead of an fsync per file.
fn sync_filesystem(path: &Path) -> Result<(), CodeError> {
    let dir = File::open(path).map_err(io_at(path))?;
    // SAFETY: `dir` is an open file descriptor for the duration of the call; syncfs only reads it.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc != 0 {
        return Err(io_at(path)(io::Error::last_os_error()));
    }
    Ok(())
}

fn fsync_dir(path: &Path) -> Result<(), CodeError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zip::write::SimpleFileOptions;

    const LIMITS: ExtractLimits = ExtractLimits {
        max_unzipped_bytes: 1 << 20,
        max_entries: 100,
    };

    fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(name, SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let code = CodeDir::open(dir.path()).unwrap();
        let zip = zip_of("index.py", b"def handler(e, c): return 1\n");
        let a = code.put(&zip, LIMITS).unwrap();
        let b = code.put(&zip, LIMITS).unwrap();
        assert_eq!(a, b);
        assert_eq!(fs::read(code.zip_path(&a.sha256_hex)).unwrap(), zip);
        assert!(code.tree_path(&a.sha256_hex).join("index.py").is_file());
        assert_eq!(fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
    }

    #[test]
    fn a_rejected_archive_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let code = CodeDir::open(dir.path()).unwrap();
        let err = code.put(&zip_of("../x", b"1"), LIMITS).unwrap_err();
        assert!(matches!(
            err,
            CodeError::Archive(ArchiveError::UnsafePath(_))
        ));
        assert!(code.present().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
    }

    #[test]
    fn retain_drops_unreferenced_and_open_clears_staging() {
        let dir = tempfile::tempdir().unwrap();
        let code = CodeDir::open(dir.path()).unwrap();
        let a = code.put(&zip_of("a", b"1"), LIMITS).unwrap();
        let b = code.put(&zip_of("b", b"2"), LIMITS).unwrap();
        fs::create_dir(dir.path().join("staging/leftover")).unwrap();
        let keep: HashSet<String> = [a.sha256_hex.clone()].into();
        assert_eq!(code.retain(&keep).unwrap(), 2);
        assert_eq!(code.present().unwrap(), keep);
        assert!(!code.zip_path(&b.sha256_hex).exists());
        let _ = CodeDir::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
    }
}
