//! The zip extractor: unpacks an untrusted deployment package into a directory, or refuses it.
//!
//! Every check happens while extracting, so a hostile archive is stopped at the limit, not after:
//! the decompressed bytes are counted as they are written (declared sizes are never trusted), entry
//! names are validated before any file is created, and symlinks are created last, after every
//! regular file, so that no write can ever pass through one. Every symlink's target is resolved
//! through the package's other symlinks (as the kernel would resolve it), so a chain of links
//! that are each harmless alone cannot lead out of the package. Names longer than the
//! filesystem takes are refused as client errors. The caller extracts into a private staging
//! directory and removes it on error, so nothing half-written survives a rejection.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};

use zip::ZipArchive;

/// What an archive may hold.
#[derive(Debug, Clone, Copy)]
pub struct ExtractLimits {
    /// Total bytes of all files once decompressed.
    pub max_unzipped_bytes: u64,
    /// Number of entries.
    pub max_entries: usize,
}

/// What was extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    pub unzipped_bytes: u64,
    pub files: usize,
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the zip archive is corrupt or unreadable: {0}")]
    Corrupt(String),
    #[error("entry '{0}' has an unsafe path (absolute, or escaping the archive root)")]
    UnsafePath(String),
    #[error("entry '{0}' appears more than once in the archive")]
    Duplicate(String),
    #[error("the archive lists the same entry name more than once")]
    DuplicateNames,
    #[error("symlink '{name}' points outside the archive root ('{target}')")]
    SymlinkEscapes { name: String, target: String },
    #[error(
        "entry '{0}' has a name that is too long (at most {NAME_MAX} bytes per component, {PATH_MAX} bytes and {DEPTH_MAX} levels in all)"
    )]
    NameTooLong(String),
    #[error("unzipped size must be smaller than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the archive has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("the archive's names have more than {limit} path components in all")]
    TooDeep { limit: usize },
    #[error("entry '{0}' is encrypted; encrypted archives are not supported")]
    Encrypted(String),
    #[error("writing the extracted files failed")]
    Io(#[source] io::Error),
}

/// The longest name of one path component (the kernel's `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// The longest entry path, leaving room below `PATH_MAX` for where the package is stored.
pub const PATH_MAX: usize = 3072;
/// The deepest entry path.
pub const DEPTH_MAX: usize = 256;

/// A normalised relative path inside the archive: components without `.`, `..` or empty parts.
fn normalise(raw: &str) -> Result<Vec<String>, ArchiveError> {
    let unsafe_path = || ArchiveError::UnsafePath(raw.to_owned());
    if raw.contains('\0') {
        return Err(unsafe_path());
    }
    // Archives made on Windows sometimes use backslashes as separators.
    let s = raw.replace('\\', "/");
    if s.starts_with('/') || s.as_bytes().get(1) == Some(&b':') {
        return Err(unsafe_path());
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(unsafe_path()),
            c if c.len() > NAME_MAX => return Err(ArchiveError::NameTooLong(truncated(raw))),
            c => parts.push(c.to_owned()),
        }
    }
    if s.len() > PATH_MAX || parts.len() > DEPTH_MAX {
        return Err(ArchiveError::NameTooLong(truncated(raw)));
    }
    Ok(parts)
}

/// A name short enough to quote in an error message.
fn truncated(raw: &str) -> String {
    if raw.len() <= 100 {
        return raw.to_owned();
    }
    let mut end = 100;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &raw[..end])
}

/// The most links one resolution may follow, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS_FOLLOWED: usize = 40;

/// Resolves `target`, read in directory `dir` (components), through the package's symlinks, as
/// the kernel would. `None` if the walk leaves the package at any point, or follows more than
/// [`MAX_LINKS_FOLLOWED`] links in all (a loop, or a chain built to take exponential time).
fn resolve(
    links: &HashMap<Vec<String>, String>,
    dir: &[String],
    target: &str,
    budget: &mut usize,
) -> Option<Vec<String>> {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return None;
    }
    let mut cur: Vec<String> = dir.to_vec();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                cur.pop()?;
            }
            c => {
                cur.push(c.to_owned());
                if let Some(next) = links.get(&cur) {
                    *budget = budget.checked_sub(1)?;
                    let parent = &cur[..cur.len() - 1];
                    cur = resolve(links, parent, next, budget)?;
                }
            }
        }
    }
    Some(cur)
}

enum Kind {
    Dir,
    File,
    Symlink,
}

/// Path components of all the entries' names together, at most: a hundred thousand entries
/// twenty deep.
pub const MAX_COMPONENTS: usize = 2_000_000;

/// Extracts `zip` into `dest`, which must exist and be empty.
pub fn extract(zip: &[u8], dest: &Path, limits: ExtractLimits) -> Result<Extracted, ArchiveError> {
    let mut archive =
        ZipArchive::new(Cursor::new(zip)).map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    // The reader indexes entries by name and silently keeps one of two equal names, so exact
    // duplicates are found by walking the central directory ourselves.
    if let Some(names) = central_directory_names(zip) {
        let unique: HashSet<&[u8]> = names.iter().copied().collect();
        if unique.len() != names.len() {
            return Err(ArchiveError::DuplicateNames);
        }
    }
    // Local headers that disagree with the central directory ("zip cloaking") are refused.
    archive
        .validate_header_consistency()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;

    // First pass: names, kinds and link targets, so that every path problem is found before any
    // write.
    let mut kinds: HashMap<Vec<String>, Kind> = HashMap::new();
    let mut links: HashMap<Vec<String>, String> = HashMap::new();
    let mut order = Vec::with_capacity(archive.len());
    // Each component is held twice until the end: deep names in many entries are bounded.
    let mut components = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let parts = normalise(&raw)?;
        components += parts.len();
        if components > MAX_COMPONENTS {
            return Err(ArchiveError::TooDeep {
                limit: MAX_COMPONENTS,
            });
        }
        let kind = if entry.is_symlink() {
            Kind::Symlink
        } else if entry.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        if entry.encrypted() {
            return Err(ArchiveError::Encrypted(raw));
        }
        drop(entry);
        if parts.is_empty() {
            if matches!(kind, Kind::Dir) {
                continue;
            }
            return Err(ArchiveError::UnsafePath(raw));
        }
        if let Some(previous) = kinds.get(&parts) {
            // The same directory listed twice is harmless; anything else is ambiguous.
            if !(matches!(previous, Kind::Dir) && matches!(kind, Kind::Dir)) {
                return Err(ArchiveError::Duplicate(raw));
            }
            continue;
        }
        if matches!(kind, Kind::Symlink) {
            let mut entry = archive
                .by_index(i)
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
            let mut target = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
            links.insert(parts.clone(), target);
        }
        order.push((i, parts.clone(), raw));
        kinds.insert(parts, kind);
    }
    // Every link must stay inside, followed through every other link.
    for (parts, target) in &links {
        let mut budget = MAX_LINKS_FOLLOWED;
        if resolve(&links, &parts[..parts.len() - 1], target, &mut budget).is_none() {
            return Err(ArchiveError::SymlinkEscapes {
                name: parts.join("/"),
                target: target.clone(),
            });
        }
    }
    // No entry may live below a file or a symlink: that would write through it.
    for parts in kinds.keys() {
        for n in 1..parts.len() {
            if let Some(Kind::File | Kind::Symlink) = kinds.get(&parts[..n]) {
                return Err(ArchiveError::Duplicate(parts.join("/")));
            }
        }
    }

    let mut total: u64 = 0;
    let mut files = 0;
    let mut to_link = Vec::new();
    let mut made_dirs: HashSet<PathBuf> = HashSet::new();
    for (i, parts, _raw) in order {
        let path = parts.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        match kinds[&parts] {
            Kind::Dir => {
                if made_dirs.insert(path.clone()) {
                    fs::create_dir_all(&path).map_err(ArchiveError::Io)?;
                }
            }
            Kind::Symlink => {
                let target = links[&parts].clone();
                total += target.len() as u64;
                to_link.push((path, target));
            }
            Kind::File => {
                let mut entry = archive
                    .by_index(i)
                    .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
                let remaining = limits.max_unzipped_bytes.saturating_sub(total);
                if entry.size() > remaining {
                    return Err(ArchiveError::TooLarge {
                        limit: limits.max_unzipped_bytes,
                    });
                }
                if let Some(parent) = path.parent()
                    && made_dirs.insert(parent.to_path_buf())
                {
                    fs::create_dir_all(parent).map_err(ArchiveError::Io)?;
                }
                // Only the permission bits that matter survive: never setuid, setgid or sticky.
                let exec = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
                let mode = if exec { 0o755 } else { 0o644 };
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(mode)
                    .open(&path)
                    .map_err(ArchiveError::Io)?;
                let written = copy_limited(&mut entry, &mut out, remaining)?.ok_or(
                    ArchiveError::TooLarge {
                        limit: limits.max_unzipped_bytes,
                    },
                )?;
                total += written;
                files += 1;
            }
        }
    }
    for (path, target) in to_link {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(ArchiveError::Io)?;
        }
        symlink(&target, &path).map_err(ArchiveError::Io)?;
        files += 1;
    }
    Ok(Extracted {
        unzipped_bytes: total,
        files,
    })
}

fn le16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn le32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn le64(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
}

/// The raw entry names of the central directory, in order, duplicates kept. `None` when the
/// directory cannot be walked this simply (the zip reader has its own checks for that).
fn central_directory_names(zip: &[u8]) -> Option<Vec<&[u8]>> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let search_from = zip.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..=zip.len().checked_sub(22)?)
        .rev()
        .find(|&i| &zip[i..i + 4] == EOCD)?;
    let mut count = le16(zip, eocd + 10)?;
    let mut offset = le32(zip, eocd + 16)?;
    if count == 0xFFFF || offset == 0xFFFF_FFFF {
        // ZIP64: the locator sits just before the classic record.
        let locator = eocd.checked_sub(20)?;
        if &zip[locator..locator + 4] != b"PK\x06\x07" {
            return None;
        }
        let record = le64(zip, locator + 8)?;
        if zip.get(record..record + 4)? != b"PK\x06\x06" {
            return None;
        }
        count = le64(zip, record + 32)?;
        offset = le64(zip, record + 48)?;
    }
    let mut names = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        if zip.get(offset..offset + 4)? != b"PK\x01\x02" {
            return None;
        }
        let name_len = le16(zip, offset + 28)?;
        let extra_len = le16(zip, offset + 30)?;
        let comment_len = le16(zip, offset + 32)?;
        names.push(zip.get(offset + 46..offset + 46 + name_len)?);
        offset += 46 + name_len + extra_len + comment_len;
    }
    Some(names)
}

/// Copies at most `limit` bytes, or returns `None` as soon as there is more to copy.
fn copy_limited(
    from: &mut impl Read,
    to: &mut impl Write,
    limit: u64,
) -> Result<Option<u64>, ArchiveError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut written: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(Some(written)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::Corrupt(e.to_string())),
        };
        written += n as u64;
        if written > limit {
            return Ok(None);
        }
        to.write_all(&buf[..n]).map_err(ArchiveError::Io)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use zip::write::SimpleFileOptions;

    const LIMITS: ExtractLimits = ExtractLimits {
        max_unzipped_bytes: 1 << 20,
        max_entries: 1000,
    };

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn run(zip: &[u8]) -> (tempfile::TempDir, Result<Extracted, ArchiveError>) {
        let dir = tempfile::tempdir().unwrap();
        let r = extract(zip, dir.path(), LIMITS);
        (dir, r)
    }

    #[test]
    fn extracts_files_and_modes() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(
            "bootstrap",
            SimpleFileOptions::default().unix_permissions(0o4755),
        )
        .unwrap();
        w.write_all(b"#!/bin/sh\n").unwrap();
        w.add_directory("lib/", SimpleFileOptions::default())
            .unwrap();
        w.start_file("lib/a.py", SimpleFileOptions::default())
            .unwrap();
        w.write_all(b"x = 1\n").unwrap();
        w.add_symlink("link", "lib/a.py", SimpleFileOptions::default())
            .unwrap();
        let zip = w.finish().unwrap().into_inner();
        let (dir, r) = run(&zip);
        let r = r.unwrap();
        assert_eq!(r.files, 3);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "setuid must be dropped, exec kept");
        assert_eq!(
            fs::read_to_string(dir.path().join("link")).unwrap(),
            "x = 1\n"
        );
    }

    #[test]
    fn refuses_traversal_and_absolute() {
        for name in [
            "../evil",
            "a/../../evil",
            "/etc/evil",
            "C:/evil",
            "a\\..\\..\\evil",
        ] {
            let (_d, r) = run(&zip_of(&[(name, b"x")]));
            assert!(
                matches!(r, Err(ArchiveError::UnsafePath(_))),
                "{name}: {r:?}"
            );
        }
    }

    #[test]
    fn names_deep_in_all_are_refused_before_anything_is_written() {
        // 8,000 entries 256 deep, each within the limits of one name: 2 million components.
        let deep = "a/".repeat(DEPTH_MAX - 1);
        let names: Vec<String> = (0..8000).map(|i| format!("{deep}{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let limits = ExtractLimits {
            max_unzipped_bytes: 1 << 20,
            max_entries: 10_000,
        };
        let dir = tempfile::tempdir().unwrap();
        let r = extract(&zip_of(&entries), dir.path(), limits);
        assert!(matches!(r, Err(ArchiveError::TooDeep { .. })), "{r:?}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_duplicates() {
        let (_d, r) = run(&zip_of(&[("a.txt", b"1"), ("./a.txt", b"2")]));
        assert!(matches!(r, Err(ArchiveError::Duplicate(_))), "{r:?}");
        let (_d, r) = run(&zip_of(&[("a", b"1"), ("a/b", b"2")]));
        assert!(matches!(r, Err(ArchiveError::Duplicate(_))), "{r:?}");
    }

    #[test]
    fn refuses_exact_duplicate_names() {
        let mut zip = zip_of(&[("app.py", b"1"), ("app.pz", b"2")]);
        for i in 0..zip.len() - 6 {
            if &zip[i..i + 6] == b"app.pz" {
                zip[i..i + 6].copy_from_slice(b"app.py");
            }
        }
        let names = central_directory_names(&zip);
        assert_eq!(names.map(|n| n.len()), Some(2));
        let (_d, r) = run(&zip);
        assert!(matches!(r, Err(ArchiveError::DuplicateNames)), "{r:?}");
    }

    #[test]
    fn refuses_escaping_symlinks_and_writes_through_links() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("up", "../../etc", SimpleFileOptions::default())
            .unwrap();
        let (_d, r) = run(&w.finish().unwrap().into_inner());
        assert!(
            matches!(r, Err(ArchiveError::SymlinkEscapes { .. })),
            "{r:?}"
        );

        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("abs", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let (_d, r) = run(&w.finish().unwrap().into_inner());
        assert!(
            matches!(r, Err(ArchiveError::SymlinkEscapes { .. })),
            "{r:?}"
        );

        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("d", "sub", SimpleFileOptions::default())
            .unwrap();
        w.start_file("d/x", SimpleFileOptions::default()).unwrap();
        w.write_all(b"through").unwrap();
        let (_d, r) = run(&w.finish().unwrap().into_inner());
        assert!(matches!(r, Err(ArchiveError::Duplicate(_))), "{r:?}");
    }

    #[test]
    fn refuses_chains_of_links_that_are_harmless_alone() {
        // a/up -> .. stays inside; r1 -> a/up/.. walks out through it; r2 -> r1/.. further.
        let opts = SimpleFileOptions::default();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_directory("a/", opts).unwrap();
        w.add_symlink("a/up", "..", opts).unwrap();
        w.add_symlink("r1", "a/up/..", opts).unwrap();
        w.add_symlink("r2", "r1/..", opts).unwrap();
        let (_d, r) = run(&w.finish().unwrap().into_inner());
        assert!(
            matches!(r, Err(ArchiveError::SymlinkEscapes { ref name, .. }) if name == "r1" || name == "r2"),
            "{r:?}"
        );
        // A link loop is refused too.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("x", "y/z", opts).unwrap();
        w.add_symlink("y", "x", opts).unwrap();
        let (_d, r) = run(&w.finish().unwrap().into_inner());
        assert!(
            matches!(r, Err(ArchiveError::SymlinkEscapes { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn a_chain_built_to_take_exponential_time_is_refused_at_once() {
        // l1 -> l0/l0/.../l0 (l0 -> .), l2 -> l1/l1/..., l3, l4: without a shared budget,
        // resolving l4 walks about 1000^4 links.
        let opts = SimpleFileOptions::default();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("l0", ".", opts).unwrap();
        for i in 1..5 {
            let target = vec![format!("l{}", i - 1); 1000].join("/");
            w.add_symlink(format!("l{i}"), target, opts).unwrap();
        }
        let started = std::time::Instant::now();
        let (_d, r) = run(&w.finish().unwrap().into_inner());
        assert!(
            matches!(r, Err(ArchiveError::SymlinkEscapes { .. })),
            "{r:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn keeps_ordinary_chains_of_links() {
        let opts = SimpleFileOptions::default();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("shared/lib.so.1.2", opts).unwrap();
        w.write_all(b"elf").unwrap();
        w.add_symlink("shared/lib.so.1", "lib.so.1.2", opts)
            .unwrap();
        w.add_symlink("shared/lib.so", "lib.so.1", opts).unwrap();
        w.add_symlink("current", "shared", opts).unwrap();
        w.add_symlink("bin/lib.so", "../current/lib.so", opts)
            .unwrap();
        let (dir, r) = run(&w.finish().unwrap().into_inner());
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("bin/lib.so")).unwrap(), b"elf");
    }

    #[test]
    fn refuses_overlong_names_as_client_errors() {
        let long = "n".repeat(NAME_MAX + 1);
        let (_d, r) = run(&zip_of(&[(long.as_str(), b"x")]));
        assert!(matches!(r, Err(ArchiveError::NameTooLong(_))), "{r:?}");
        let deep = vec!["d"; DEPTH_MAX + 1].join("/");
        let (_d, r) = run(&zip_of(&[(deep.as_str(), b"x")]));
        assert!(matches!(r, Err(ArchiveError::NameTooLong(_))), "{r:?}");
        let ok = "n".repeat(NAME_MAX);
        let (_d, r) = run(&zip_of(&[(ok.as_str(), b"x")]));
        r.unwrap();
    }

    #[test]
    fn stops_a_zip_bomb_at_the_limit() {
        let zeros = vec![0u8; (LIMITS.max_unzipped_bytes + 1) as usize];
        let zip = zip_of(&[("bomb", &zeros)]);
        assert!(
            zip.len() < 10_000,
            "deflate compresses zeros well: {}",
            zip.len()
        );
        let (d, r) = run(&zip);
        assert!(matches!(r, Err(ArchiveError::TooLarge { .. })), "{r:?}");
        drop(d);
        // Many small files that add up past the limit.
        let chunk = vec![7u8; 300 * 1024];
        let (_d, r) = run(&zip_of(&[
            ("a", &chunk),
            ("b", &chunk),
            ("c", &chunk),
            ("d", &chunk),
        ]));
        assert!(matches!(r, Err(ArchiveError::TooLarge { .. })), "{r:?}");
    }

    #[test]
    fn a_lying_size_header_is_caught_while_copying() {
        // Declare a tiny uncompressed size in the headers but store more data.
        let data = vec![1u8; 2 << 20];
        let mut zip = zip_of(&[("liar", &data)]);
        let declared = (data.len() as u32).to_le_bytes();
        let small = 10u32.to_le_bytes();
        let mut i = 0;
        while i + 4 <= zip.len() {
            if zip[i..i + 4] == declared {
                zip[i..i + 4].copy_from_slice(&small);
            }
            i += 1;
        }
        let (_d, r) = run(&zip);
        assert!(r.is_err(), "a lying archive must not extract: {r:?}");
    }

    #[test]
    fn refuses_garbage() {
        let (_d, r) = run(b"this is not a zip");
        assert!(matches!(r, Err(ArchiveError::Corrupt(_))));
        let mut zip = zip_of(&[("a.py", &[b'x'; 5000])]);
        let n = zip.len();
        zip[n / 3] ^= 0xff;
        let (_d, r) = run(&zip);
        assert!(r.is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let (_d, _r) = run(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_zips(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut zip = zip_of(&[("a.py", b"print(1)\n"), ("dir/b.txt", &[3u8; 300])]);
            for (idx, v) in flips {
                let i = idx.index(zip.len());
                zip[i] = v;
            }
            let (dir, r) = run(&zip);
            // Whatever happens, nothing may land outside the destination.
            if let Ok(x) = r { prop_assert!(x.unzipped_bytes <= LIMITS.max_unzipped_bytes); }
            prop_assert!(dir.path().exists());
        }

        #[test]
        fn any_name_is_either_rejected_or_stays_inside(name in "[a-z./\\\\]{1,20}") {
            let (dir, r) = run(&zip_of(&[(name.as_str(), b"x")]));
            if r.is_ok() {
                for e in walk(dir.path()) {
                    prop_assert!(e.starts_with(dir.path()));
                }
            }
        }
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                out.push(path.clone());
                if path.is_dir() {
                    out.extend(walk(&path));
                }
            }
        }
        out
    }
}
