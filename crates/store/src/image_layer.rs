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
//!   when layers are merged: each once, however often the layer names it, and within a budget of
//!   bytes ([`LayerLimits::max_whiteout_bytes`]), as they are held in memory and in the cache;
//! - a path is at most [`MAX_DEPTH`] components deep;
//! - bytes and entries (directories made for deeper entries included) are counted while reading
//!   the decompressed stream (bombs stop at the limit), and the stream's SHA-256 is the layer's
//!   `diff_id`, checked when one is expected;
//! - long names (GNU `L` and `K` entries, pax `path` and `linkpath`) are read here, within
//!   bounds: at most [`MAX_LONG_NAME`] bytes a name, [`MAX_PAX`] a pax header;
//! - what the layer holds is remembered by 128-bit keys of its paths, not by the paths.
//!
//! Files keep the server's ownership, as code trees do; modes come from the layer.

use std::collections::HashSet;
use std::fs;
use std::hash::{BuildHasher, Hash, RandomState};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

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
    /// Number of entries, directories made for deeper entries included.
    pub max_entries: usize,
    /// Bytes of the whiteouts recorded, each counted as [`whiteout_cost`] gives.
    pub max_whiteout_bytes: u64,
}

/// The most whiteout bytes an image's layers may record together (about 200,000 whiteouts of
/// 20-byte paths; real images hold tens to thousands).
pub const MAX_WHITEOUT_BYTES: u64 = 16 << 20;

/// The deepest path a layer may hold, in components. Linux images rarely go past 30; merging
/// and removing a tree recurses once a level, so the bound keeps that small.
pub const MAX_DEPTH: usize = 256;

/// What a whiteout counts against [`LayerLimits::max_whiteout_bytes`]: its path, and a nominal
/// 64 bytes for what holds it (in memory and in the cache's JSON).
pub fn whiteout_cost(whiteout: &Whiteout) -> u64 {
    let (Whiteout::Path(p) | Whiteout::Opaque(p)) = whiteout;
    p.as_os_str().len() as u64 + 64
}

/// The cost of whiteouts together (see [`whiteout_cost`]).
pub fn whiteout_bytes(whiteouts: &[Whiteout]) -> u64 {
    whiteouts.iter().map(whiteout_cost).sum()
}

/// A deletion a layer makes in the layers below it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    #[error("entry '{name}' is more than {limit} components deep")]
    TooDeep { name: String, limit: usize },
    #[error("the layer's whiteouts take more than {limit} bytes")]
    TooManyWhiteouts { limit: u64 },
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

/// The most bytes of a long name or link (Linux's `PATH_MAX`).
pub const MAX_LONG_NAME: u64 = 4096;
/// The most bytes of a pax extended header.
pub const MAX_PAX: u64 = 1 << 20;

/// What a layer being unpacked holds so far, by 128-bit keys of its paths (relative to `root`).
struct Tree<'a> {
    root: &'a Path,
    keys: (RandomState, RandomState),
    /// Entries written.
    seen: HashSet<u128>,
    /// Regular files, which hard links may name.
    files: HashSet<u128>,
    /// Directories known to be real directories: an entry below one needs no look at its
    /// parents (nothing in a layer turns a directory into anything else).
    dirs: HashSet<u128>,
    /// Whiteouts recorded, and their cost so far.
    whiteouts: HashSet<u128>,
    whiteout_bytes: u64,
}

impl Tree<'_> {
    fn key(&self, item: &(impl Hash + ?Sized)) -> u128 {
        let (a, b) = &self.keys;
        (a.hash_one(item) as u128) << 64 | b.hash_one(item) as u128
    }

    /// Records a whiteout in `out` unless it already is, charging its cost to the budget.
    fn whiteout(
        &mut self,
        whiteout: Whiteout,
        out: &mut Unpacked,
        limits: LayerLimits,
    ) -> Result<(), LayerError> {
        if !self.whiteouts.insert(self.key(&whiteout)) {
            return Ok(());
        }
        self.whiteout_bytes += whiteout_cost(&whiteout);
        if self.whiteout_bytes > limits.max_whiteout_bytes {
            return Err(LayerError::TooManyWhiteouts {
                limit: limits.max_whiteout_bytes,
            });
        }
        out.whiteouts.push(whiteout);
        Ok(())
    }

    /// Refuses a path one of whose parents is a symlink; makes the missing ones, each counted
    /// as an entry of `out`.
    fn parents(
        &mut self,
        rel: &Path,
        name: &str,
        out: &mut Unpacked,
        limits: LayerLimits,
    ) -> Result<(), LayerError> {
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        // The deepest parent known, then every one below it.
        let depth = parent.components().count();
        let known = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty())
            .position(|a| self.dirs.contains(&self.key(a)))
            .unwrap_or(depth);
        let mut prefix = PathBuf::new();
        for (i, c) in parent.components().enumerate() {
            prefix.push(c);
            if i < depth - known {
                continue;
            }
            let at = self.root.join(&prefix);
            match at.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(LayerError::ThroughSymlink(name.to_owned()));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(LayerError::Duplicate(name.to_owned())),
                Err(_) => {
                    out.entries += 1;
                    if out.entries > limits.max_entries {
                        return Err(LayerError::TooManyEntries {
                            limit: limits.max_entries,
                        });
                    }
                    fs::create_dir(&at)?;
                }
            }
            let key = self.key(&prefix);
            self.dirs.insert(key);
        }
        Ok(())
    }
}

/// Names that extension entries (GNU `L` and `K`, pax `x`) give the entry after them.
#[derive(Default)]
struct Extended {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

impl Extended {
    /// Reads an extension entry's body of `size` bytes, at most `max`.
    fn read(
        entry: &mut impl Read,
        size: u64,
        max: u64,
        limits: LayerLimits,
    ) -> Result<Vec<u8>, LayerError> {
        if size > max {
            return Err(LayerError::Corrupt(format!(
                "an extended header or long name of {size} bytes (at most {max})"
            )));
        }
        let mut body = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut body)
            .map_err(|e| read_error(e, limits))?;
        Ok(body)
    }

    /// The entry's name and link target, from its extensions or its header. A pax `size` other
    /// than the header's is refused: the stream is read by the header's.
    fn names<R: Read>(
        self,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), LayerError> {
        let (mut name, mut link) = (self.name, self.link);
        for e in self
            .pax
            .as_deref()
            .map(tar::PaxExtensions::new)
            .into_iter()
            .flatten()
        {
            let e = e.map_err(|e| LayerError::Corrupt(e.to_string()))?;
            match e.key_bytes() {
                b"path" => name = Some(e.value_bytes().to_vec()),
                b"linkpath" => link = Some(e.value_bytes().to_vec()),
                b"size" => {
                    let size = std::str::from_utf8(e.value_bytes())
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok());
                    if size != Some(entry.size()) {
                        return Err(LayerError::Corrupt(
                            "a pax size other than its header's (entries of 8 GiB or more are not supported)".into(),
                        ));
                    }
                }
                _ => {}
            }
        }
        let trim = |mut v: Vec<u8>| {
            while v.last() == Some(&0) {
                v.pop();
            }
            v
        };
        let name = name.map_or_else(|| entry.header().path_bytes().into_owned(), trim);
        let link = link
            .map(trim)
            .or_else(|| entry.header().link_name_bytes().map(|l| l.into_owned()));
        Ok((name, link))
    }
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
        // Several gzip members one after the other are one stream (eStargz layers are).
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
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
        // Raw: the tar crate would read a long name or pax header whole, however large.
        let entries = archive
            .entries()
            .map_err(|e| LayerError::Corrupt(e.to_string()))?
            .raw(true);
        let mut tree = Tree {
            root: dest,
            keys: (RandomState::new(), RandomState::new()),
            seen: HashSet::new(),
            files: HashSet::new(),
            dirs: HashSet::new(),
            whiteouts: HashSet::new(),
            whiteout_bytes: 0,
        };
        let mut extended = Extended::default();
        for entry in entries {
            let mut entry = entry.map_err(|e| read_error(e, limits))?;
            out.entries += 1;
            if out.entries > limits.max_entries {
                return Err(LayerError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            let kind = entry.header().entry_type();
            let size = entry.size();
            if kind.is_gnu_longname() {
                extended.name = Some(Extended::read(&mut entry, size, MAX_LONG_NAME, limits)?);
                continue;
            }
            if kind.is_gnu_longlink() {
                extended.link = Some(Extended::read(&mut entry, size, MAX_LONG_NAME, limits)?);
                continue;
            }
            if kind.is_pax_local_extensions() {
                extended.pax = Some(Extended::read(&mut entry, size, MAX_PAX, limits)?);
                continue;
            }
            if kind.is_pax_global_extensions() {
                Extended::read(&mut entry, size, MAX_PAX, limits)?;
                continue;
            }
            // Read raw, an old GNU sparse entry's extension blocks would be taken for its data.
            if kind.is_gnu_sparse()
                && entry
                    .header()
                    .as_gnu()
                    .is_some_and(|g| g.isextended[0] != 0)
            {
                return Err(LayerError::Corrupt(
                    "an old GNU sparse file of more than four regions, which is not supported; write the layer in the PAX format".into(),
                ));
            }
            let (raw, link) = std::mem::take(&mut extended).names(&entry)?;
            if raw.len() as u64 > MAX_LONG_NAME {
                return Err(LayerError::Corrupt(format!(
                    "a name of {} bytes (at most {MAX_LONG_NAME})",
                    raw.len()
                )));
            }
            let name = String::from_utf8_lossy(&raw).into_owned();
            let rel = normalise(&raw).ok_or_else(|| LayerError::UnsafePath(name.clone()))?;
            if rel.as_os_str().is_empty() {
                continue; // the root itself
            }
            if rel.components().count() > MAX_DEPTH {
                return Err(LayerError::TooDeep {
                    name,
                    limit: MAX_DEPTH,
                });
            }
            let base = rel
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(hidden) = base.strip_prefix(".wh.") {
                // `.wh..` and `.wh...` would name the directory itself or its parent.
                if hidden == "." || hidden == ".." {
                    return Err(LayerError::UnsafePath(name));
                }
                let dir = rel.parent().map(Path::to_path_buf).unwrap_or_default();
                if hidden == ".wh..opq" {
                    tree.whiteout(Whiteout::Opaque(dir), &mut out, limits)?;
                } else if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                    tree.whiteout(Whiteout::Path(dir.join(hidden)), &mut out, limits)?;
                }
                continue;
            }
            let is_dir = kind.is_dir();
            let key = tree.key(&rel);
            if !tree.seen.insert(key) && !is_dir {
                return Err(LayerError::Duplicate(name));
            }
            tree.parents(&rel, &name, &mut out, limits)?;
            let path = dest.join(&rel);
            match kind {
                tar::EntryType::Directory => {
                    match path.symlink_metadata() {
                        // Made for an entry below it, or named again: the entry's mode holds.
                        Ok(m) if m.is_dir() => {}
                        Ok(_) => return Err(LayerError::Duplicate(name)),
                        Err(_) => fs::create_dir(&path)?,
                    }
                    let mode = mode_of(entry.header(), 0o755) | 0o700;
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                    tree.dirs.insert(key);
                }
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
                    tree.files.insert(key);
                }
                tar::EntryType::Symlink => {
                    let target = link.ok_or_else(|| {
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
                    let raw_target = link.unwrap_or_default();
                    let target_name = String::from_utf8_lossy(&raw_target).into_owned();
                    let target = normalise(&raw_target)
                        .filter(|t| tree.files.contains(&tree.key(t)))
                        .ok_or_else(|| LayerError::HardLinkOutside {
                            name: name.clone(),
                            target: target_name,
                        })?;
                    fs::hard_link(dest.join(&target), &path).map_err(|e| match e.kind() {
                        io::ErrorKind::AlreadyExists => LayerError::Duplicate(name.clone()),
                        _ => LayerError::Io(e),
                    })?;
                    tree.files.insert(key);
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    out.skipped += 1
                }
                // GNU sparse files, volume headers and the like.
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
            // Names only (a whiteout stored before `..` was refused is skipped), and never
            // through a symlink.
            if rel.components().any(|c| !matches!(c, Component::Normal(_)))
                || !plain_parents(dest, rel)
            {
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
/// written through a symlink of a lower layer. A directory's subdirectories are entered once its
/// listing is closed: one descriptor open at a time, however deep the tree.
fn link_tree(from: &Path, to: &Path) -> Result<(), LayerError> {
    let mut below = Vec::new();
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
            }
            // The upper layer's mode holds for a directory of a lower one.
            fs::set_permissions(&dst, fs::metadata(&src)?.permissions())?;
            below.push((src, dst));
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
    for (src, dst) in below {
        link_tree(&src, &dst)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
