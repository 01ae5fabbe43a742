//! Container image layers: one layer blob (a tar, plain, gzip or zstd) unpacked into a fresh
//! directory under our own policy, or refused; and layers merged into an image root by hard
//! links, whiteouts applied.
//!
//! The policy (OCI `layer.md`, containerd's `applyNaive`, RUSTSEC-2021-0080):
//! - names are normalised (`./` stripped); absolute names, `..` and duplicates are refused;
//! - no entry is written through a symlink: each layer starts from an empty directory, so only
//!   the layer's own earlier symlinks could redirect a later entry, and an entry whose parent
//!   crosses one is refused;
//! - symlinks are created verbatim and never followed here;
//! - a hard link must name an earlier regular file of the same layer;
//! - devices, FIFOs and sockets are skipped; setuid, setgid and other high mode bits are dropped;
//! - whiteouts (`.wh.<name>`, `.wh..wh..opq`) are kept out of the tree and returned, to be applied
//!   when layers are merged;
//! - bytes and entries are counted while reading the decompressed stream (bombs stop at the
//!   limit), and the stream's SHA-256 is the layer's `diff_id`, checked when one is expected.
//!
//! Files keep the server's ownership, as code trees do; modes come from the layer.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// How a layer blob is compressed (from its media type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names (`…tar`, `…tar+gzip`/`.gzip`, `…tar+zstd`).
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
            Some(Self::Zstd)
        } else if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
            Some(Self::Gzip)
        } else if media_type.ends_with(".tar") || media_type.ends_with("tar") {
            Some(Self::None)
        } else {
            None
        }
    }
}

/// What a layer may hold.
#[derive(Debug, Clone, Copy)]
pub struct LayerLimits {
    /// Bytes of the decompressed stream (the tar itself).
    pub max_bytes: u64,
    /// Number of entries.
    pub max_entries: usize,
}

/// A deletion a layer makes in the layers below it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Whiteout {
    /// `dir/.wh.name`: `dir/name` goes.
    Path(PathBuf),
    /// `dir/.wh..wh..opq`: everything below `dir` from lower layers goes.
    Opaque(PathBuf),
}

/// What a layer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:<hex>` of the decompressed stream.
    pub diff_id: String,
    /// Decompressed bytes.
    pub bytes: u64,
    pub entries: usize,
    /// Devices, FIFOs and sockets left out.
    pub skipped: usize,
    pub whiteouts: Vec<Whiteout>,
}

/// Why a layer was refused.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("the layer is not a readable tar stream: {0}")]
    Corrupt(String),
    #[error("entry '{0}' has an unsafe path (absolute, or escaping the layer)")]
    UnsafePath(String),
    #[error("entry '{0}' appears more than once in the layer")]
    Duplicate(String),
    #[error("entry '{0}' would be written through a symlink")]
    ThroughSymlink(String),
    #[error(
        "hard link '{name}' must name an earlier regular file of the same layer, not '{target}'"
    )]
    HardLinkOutside { name: String, target: String },
    #[error("the layer is larger than {limit} bytes uncompressed")]
    TooLarge { limit: u64 },
    #[error("the layer has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("the layer's content is {actual}, not the diff_id {expected} its image names")]
    DiffIdMismatch { expected: String, actual: String },
    #[error("writing the layer failed")]
    Io(#[source] io::Error),
}

impl From<io::Error> for LayerError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads the decompressed stream, hashing and counting it.
struct Counted<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.limit {
            return Err(io::Error::other(TOO_LARGE));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

const TOO_LARGE: &str = "layer over its size limit";

fn too_large(e: &io::Error) -> bool {
    e.to_string().contains(TOO_LARGE)
}

/// An error reading the stream: the size limit, or a corrupt stream.
fn read_error(e: io::Error, limits: LayerLimits) -> LayerError {
    if too_large(&e) {
        LayerError::TooLarge {
            limit: limits.max_bytes,
        }
    } else {
        LayerError::Corrupt(e.to_string())
    }
}

/// The entry's name made relative and plain, or `None` if it is unsafe.
fn normalise(raw: &[u8]) -> Option<PathBuf> {
    if raw.first() == Some(&b'/') || raw.contains(&0) {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let mut out = PathBuf::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => out.push(p),
        }
    }
    Some(out)
}

/// Refuses a path one of whose parents (within `root`) is a symlink; makes the missing ones.
fn parents(root: &Path, rel: &Path, name: &str) -> Result<(), LayerError> {
    let mut at = root.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    for c in &components[..components.len().saturating_sub(1)] {
        at.push(c);
        match at.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(LayerError::ThroughSymlink(name.to_owned()));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(LayerError::Duplicate(name.to_owned())),
            Err(_) => fs::create_dir(&at)?,
        }
    }
    Ok(())
}

fn mode_of(header: &tar::Header, default: u32) -> u32 {
    // Sticky kept; setuid, setgid and anything above dropped.
    header.mode().map_or(default, |m| m & 0o1777)
}

/// Unpacks `blob` into `dest`, which must be an empty directory; the caller removes it when this
/// fails. `expected_diff_id` (`sha256:<hex>`) is checked against the decompressed stream.
pub fn unpack(
    blob: impl Read,
    compression: Compression,
    dest: &Path,
    limits: LayerLimits,
    expected_diff_id: Option<&str>,
) -> Result<Unpacked, LayerError> {
    let stream: Box<dyn Read> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(blob)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(blob)
                .map_err(|e| LayerError::Corrupt(e.to_string()))?,
        ),
    };
    let mut counted = Counted {
        inner: stream,
        hash: Sha256::new(),
        bytes: 0,
        limit: limits.max_bytes,
    };
    let mut out = Unpacked {
        diff_id: String::new(),
        bytes: 0,
        entries: 0,
        skipped: 0,
        whiteouts: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut counted);
        let entries = archive
            .entries()
            .map_err(|e| LayerError::Corrupt(e.to_string()))?;
        let mut seen: HashSet<PathBuf> = HashSet::new();
        let mut files: HashSet<PathBuf> = HashSet::new();
        for entry in entries {
            let mut entry = entry.map_err(|e| read_error(e, limits))?;
            out.entries += 1;
            if out.entries > limits.max_entries {
                return Err(LayerError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            let rel = normalise(&raw).ok_or_else(|| LayerError::UnsafePath(name.clone()))?;
            if rel.as_os_str().is_empty() {
                continue; // the root itself
            }
            let base = rel
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(hidden) = base.strip_prefix(".wh.") {
                let dir = rel.parent().map(Path::to_path_buf).unwrap_or_default();
                if hidden == ".wh..opq" {
                    out.whiteouts.push(Whiteout::Opaque(dir));
                } else if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                    out.whiteouts.push(Whiteout::Path(dir.join(hidden)));
                }
                continue;
            }
            let kind = entry.header().entry_type();
            let is_dir = kind.is_dir();
            if !seen.insert(rel.clone()) && !is_dir {
                return Err(LayerError::Duplicate(name));
            }
            parents(dest, &rel, &name)?;
            let path = dest.join(&rel);
            match kind {
                tar::EntryType::Directory => match path.symlink_metadata() {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(LayerError::Duplicate(name)),
                    Err(_) => {
                        fs::create_dir(&path)?;
                        let mode = mode_of(entry.header(), 0o755) | 0o700;
                        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                    }
                },
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mode = mode_of(entry.header(), 0o644);
                    let mut file = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .mode(0o600)
                        .open(&path)
                        .map_err(|e| match e.kind() {
                            io::ErrorKind::AlreadyExists => LayerError::Duplicate(name.clone()),
                            _ => LayerError::Io(e),
                        })?;
                    io::copy(&mut entry, &mut file).map_err(|e| {
                        if too_large(&e) {
                            LayerError::TooLarge {
                                limit: limits.max_bytes,
                            }
                        } else {
                            LayerError::Io(e)
                        }
                    })?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                    files.insert(rel);
                }
                tar::EntryType::Symlink => {
                    let target = entry.link_name_bytes().ok_or_else(|| {
                        LayerError::Corrupt(format!("symlink '{name}' has no target"))
                    })?;
                    let target =
                        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target);
                    symlink(target, &path).map_err(|e| match e.kind() {
                        io::ErrorKind::AlreadyExists => LayerError::Duplicate(name.clone()),
                        _ => LayerError::Io(e),
                    })?;
                }
                tar::EntryType::Link => {
                    let raw_target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    let target_name = String::from_utf8_lossy(&raw_target).into_owned();
                    let target = normalise(&raw_target)
                        .filter(|t| files.contains(t))
                        .ok_or_else(|| LayerError::HardLinkOutside {
                            name: name.clone(),
                            target: target_name,
                        })?;
                    fs::hard_link(dest.join(&target), &path).map_err(|e| match e.kind() {
                        io::ErrorKind::AlreadyExists => LayerError::Duplicate(name.clone()),
                        _ => LayerError::Io(e),
                    })?;
                    files.insert(rel);
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    out.skipped += 1
                }
                // Metadata entries (pax, GNU long names) are read by the tar crate itself.
                _ => out.skipped += 1,
            }
        }
    }
    // The rest of the stream (end-of-archive blocks, padding) belongs to the diff_id too.
    io::copy(&mut counted, &mut io::sink()).map_err(|e| read_error(e, limits))?;
    out.bytes = counted.bytes;
    out.diff_id = format!("sha256:{}", hex::encode(counted.hash.finalize()));
    if let Some(expected) = expected_diff_id
        && expected != out.diff_id
    {
        return Err(LayerError::DiffIdMismatch {
            expected: expected.to_owned(),
            actual: out.diff_id,
        });
    }
    Ok(out)
}

/// Whether every parent of `rel` within `root` is a real directory (not a symlink).
fn plain_parents(root: &Path, rel: &Path) -> bool {
    let mut at = root.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    components[..components.len().saturating_sub(1)]
        .iter()
        .all(|c| {
            at.push(c);
            at.symlink_metadata().is_ok_and(|m| m.is_dir())
        })
}

fn remove_any(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Merges layers, lowest first, into `dest` (an empty directory): each layer's whiteouts remove
/// what the layers below put there (never through a symlink), then its tree is hard-linked in,
/// a later layer's entry replacing an earlier one.
pub fn merge(layers: &[(&Path, &[Whiteout])], dest: &Path) -> Result<(), LayerError> {
    for (tree, whiteouts) in layers {
        for w in *whiteouts {
            let rel = match w {
                Whiteout::Path(p) | Whiteout::Opaque(p) => p,
            };
            if !plain_parents(dest, rel) {
                continue;
            }
            let path = dest.join(rel);
            match w {
                Whiteout::Path(_) => remove_any(&path)?,
                Whiteout::Opaque(_) => {
                    let is_dir = path.symlink_metadata().is_ok_and(|m| m.is_dir());
                    if is_dir || rel.as_os_str().is_empty() {
                        for child in fs::read_dir(&path)? {
                            remove_any(&child?.path())?;
                        }
                    }
                }
            }
        }
        link_tree(tree, dest)?;
    }
    Ok(())
}

/// Hard-links every entry of `from` into `to` (copying a file whose link count is exhausted),
/// replacing what is there; directories are made real directories first, so nothing is ever
/// written through a symlink of a lower layer.
fn link_tree(from: &Path, to: &Path) -> Result<(), LayerError> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if dst.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                fs::remove_file(&dst)?;
            }
            if dst.symlink_metadata().is_err() {
                fs::create_dir(&dst)?;
                fs::set_permissions(&dst, fs::metadata(&src)?.permissions())?;
            }
            link_tree(&src, &dst)?;
            continue;
        }
        remove_any(&dst)?;
        if kind.is_symlink() {
            symlink(fs::read_link(&src)?, &dst)?;
        } else if let Err(e) = fs::hard_link(&src, &dst) {
            if e.raw_os_error() != Some(libc::EMLINK) {
                return Err(e.into());
            }
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
