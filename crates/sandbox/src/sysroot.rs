//! A curated system tree: what sandboxes see at `/usr` and `/etc` instead of the host's.
//!
//! The caller names what its runtimes need (interpreters, standard libraries, a few shell tools,
//! TLS roots, time zones); [`build`] adds everything those files need to run: the targets of
//! symbolic links along every path, and for ELF files the dynamic loader and every shared library
//! in their `DT_NEEDED` closure (found the way `ld.so` would: `DT_RUNPATH`/`DT_RPATH` with
//! `$ORIGIN`, then the system library directories). Nothing else of the host is visible: no
//! package manager, compiler, host configuration or private keys.
//!
//! The tree is made of hard links to the host's files when they share a filesystem (so it costs
//! no space and builds in tens of milliseconds), or copies otherwise. It is content-addressed:
//! its directory name hashes every included path with its inode, size and modification time, so
//! a restart reuses it and a host upgrade makes a new one. Set-id bits never survive.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// What goes into a sysroot.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Host paths (files or whole directories) to include with their closure. Missing ones are
    /// skipped.
    pub include: Vec<PathBuf>,
    /// Host subtrees never included (below an included directory).
    pub exclude: Vec<PathBuf>,
    /// Files written into the tree: (absolute path inside, content).
    pub synthetic: Vec<(PathBuf, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { mode: u32 },
    Symlink(PathBuf),
}

/// The closure of a plan: every host path to reproduce.
#[derive(Debug, Default)]
struct Closure {
    entries: BTreeMap<PathBuf, Entry>,
    /// Stat data of every file, for the content address.
    stamps: Vec<(PathBuf, u64, u64, u64, i64)>,
    exclude: Vec<PathBuf>,
    lib_dirs: Vec<PathBuf>,
    /// Directories whose every entry is included.
    expanded: BTreeSet<PathBuf>,
}

/// The system library directories, as `ld.so` searches them on this architecture.
fn lib_dirs() -> Vec<PathBuf> {
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    [
        format!("/lib/{triple}"),
        format!("/usr/lib/{triple}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// `a/b/../c` → `a/c`, without touching the filesystem.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

impl Closure {
    fn excluded(&self, p: &Path) -> bool {
        self.exclude.iter().any(|e| p.starts_with(e))
    }

    /// Adds `path` (absolute) and everything it needs.
    fn include(&mut self, path: &Path, depth: usize) -> io::Result<()> {
        let path = normalise(path);
        if depth > 40 || self.excluded(&path) {
            return Ok(());
        }
        // Symbolic links along the way are reproduced, and their targets followed.
        let mut prefix = PathBuf::from("/");
        let components: Vec<_> = path.components().skip(1).collect();
        for (i, c) in components.iter().enumerate() {
            prefix.push(c);
            let Ok(meta) = fs::symlink_metadata(&prefix) else {
                return Ok(());
            };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&prefix)?;
                self.entries
                    .insert(prefix.clone(), Entry::Symlink(target.clone()));
                let base = prefix.parent().unwrap_or(Path::new("/"));
                let mut resolved = if target.is_absolute() {
                    target
                } else {
                    base.join(target)
                };
                for rest in &components[i + 1..] {
                    resolved.push(rest);
                }
                return self.include(&resolved, depth + 1);
            }
            let last = i + 1 == components.len();
            if !last {
                self.entries.entry(prefix.clone()).or_insert(Entry::Dir);
            }
        }
        if self.entries.contains_key(&path) && !matches!(self.entries[&path], Entry::Dir) {
            return Ok(());
        }
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            self.entries.insert(path.clone(), Entry::Dir);
            if self.expanded.insert(path.clone()) {
                let mut children: Vec<PathBuf> =
                    fs::read_dir(&path)?.flatten().map(|e| e.path()).collect();
                children.sort();
                for child in children {
                    self.include(&child, depth + 1)?;
                }
            }
        } else if meta.is_file() {
            // Set-id bits are kept here only so that `place_file` knows to copy without them.
            let mode = meta.permissions().mode() & 0o7777;
            self.entries.insert(path.clone(), Entry::File { mode });
            self.stamps.push((
                path.clone(),
                meta.ino(),
                meta.size(),
                meta.dev(),
                meta.mtime(),
            ));
            for dep in elf_needs(&path, &self.lib_dirs) {
                self.include(&dep, depth + 1)?;
            }
        }
        Ok(())
    }

    /// A stable name for this exact set of host files and synthetic contents.
    fn address(&self, synthetic: &[(PathBuf, Vec<u8>)]) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |b: &[u8]| {
            for x in b {
                h = (h ^ *x as u64).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for (p, e) in &self.entries {
            feed(p.as_os_str().as_encoded_bytes());
            match e {
                Entry::Dir => feed(b"d"),
                Entry::File { mode } => feed(&mode.to_le_bytes()),
                Entry::Symlink(t) => feed(t.as_os_str().as_encoded_bytes()),
            }
        }
        for (p, ino, size, dev, mtime) in &self.stamps {
            feed(p.as_os_str().as_encoded_bytes());
            for n in [*ino, *size, *dev, *mtime as u64] {
                feed(&n.to_le_bytes());
            }
        }
        for (p, c) in synthetic {
            feed(p.as_os_str().as_encoded_bytes());
            feed(c);
        }
        format!("{h:016x}")
    }
}

/// The libraries and loader an ELF file needs (empty for anything else).
fn elf_needs(path: &Path, lib_dirs: &[PathBuf]) -> Vec<PathBuf> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let Ok(mut file) = fs::File::open(path) else {
        return Vec::new();
    };
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
        return Vec::new();
    }
    let cache = object::ReadCache::new(file);
    let data = &cache;
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(data) else {
        return Vec::new();
    };
    let Ok(endian) = header.endian() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(phdrs) = header.program_headers(endian, data) {
        for ph in phdrs {
            if let Ok(Some(interp)) = ph.interpreter(endian, data) {
                out.push(PathBuf::from(String::from_utf8_lossy(interp).into_owned()));
            }
        }
    }
    let Ok(sections) = header.sections(endian, data) else {
        return out;
    };
    let Ok(dynamic) = sections.dynamic_table(endian, data) else {
        return out;
    };
    let origin = path.parent().unwrap_or(Path::new("/"));
    let mut needed = Vec::new();
    let mut search = Vec::new();
    for d in dynamic.iter() {
        let Ok(s) = dynamic.string(d) else { continue };
        let s = String::from_utf8_lossy(s).into_owned();
        match d.tag {
            object::elf::DT_NEEDED => needed.push(s),
            object::elf::DT_RUNPATH | object::elf::DT_RPATH => {
                for dir in s.split(':').filter(|d| !d.is_empty()) {
                    let dir = dir
                        .replace("${ORIGIN}", &origin.to_string_lossy())
                        .replace("$ORIGIN", &origin.to_string_lossy());
                    search.push(PathBuf::from(dir));
                }
            }
            _ => {}
        }
    }
    search.extend(lib_dirs.iter().cloned());
    for name in needed {
        if let Some(found) = search.iter().map(|d| d.join(&name)).find(|p| p.exists()) {
            out.push(found);
        }
    }
    out
}

/// Links `from` at `to`, or copies it (without set-id bits) across filesystems.
fn place_file(from: &Path, to: &Path, mode: u32) -> io::Result<()> {
    if mode & 0o6000 == 0 && fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o777))
}

/// Builds (or reuses) the sysroot of `plan` under `parent`; returns its directory.
pub fn build(parent: &Path, plan: &Plan) -> io::Result<PathBuf> {
    let mut closure = Closure {
        exclude: plan.exclude.clone(),
        lib_dirs: lib_dirs(),
        ..Default::default()
    };
    for p in &plan.include {
        closure.include(p, 0)?;
    }
    let name = closure.address(&plan.synthetic);
    let dest = parent.join(&name);
    fs::create_dir_all(parent)?;
    if !dest.exists() {
        let work = parent.join(format!("{name}.tmp-{}", std::process::id()));
        if work.exists() {
            fs::remove_dir_all(&work)?;
        }
        fs::create_dir(&work)?;
        let at = |p: &Path| work.join(p.strip_prefix("/").unwrap_or(p));
        for (path, entry) in &closure.entries {
            let to = at(path);
            match entry {
                Entry::Dir => fs::create_dir_all(&to)?,
                Entry::Symlink(target) => {
                    if let Some(p) = to.parent() {
                        fs::create_dir_all(p)?;
                    }
                    std::os::unix::fs::symlink(target, &to)?;
                }
                Entry::File { mode } => {
                    if let Some(p) = to.parent() {
                        fs::create_dir_all(p)?;
                    }
                    place_file(path, &to, *mode)?;
                }
            }
        }
        for (path, content) in &plan.synthetic {
            let to = at(path);
            if let Some(p) = to.parent() {
                fs::create_dir_all(p)?;
            }
            let _ = fs::remove_file(&to);
            fs::write(&to, content)?;
        }
        fs::set_permissions(&work, fs::Permissions::from_mode(0o755))?;
        match fs::rename(&work, &dest) {
            Ok(()) => {}
            // Another server built the same tree first.
            Err(_) if dest.exists() => fs::remove_dir_all(&work)?,
            Err(e) => return Err(e),
        }
    }
    // Older trees (from before a host upgrade) are not used any more.
    for e in fs::read_dir(parent)?.flatten() {
        if e.file_name() != name.as_str() && e.path().is_dir() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    Ok(dest)
}

/// The top-level entries of a sysroot.
#[derive(Debug, Default)]
pub struct TopLevel {
    /// Directories, to bind.
    pub dirs: Vec<String>,
    /// Symbolic links (name, target relative to `/`), to recreate.
    pub links: Vec<(String, String)>,
}

/// The top-level entries of a sysroot: directories to bind and symbolic links to recreate.
pub fn top_level(sysroot: &Path) -> io::Result<TopLevel> {
    let mut dirs = BTreeSet::new();
    let mut links = Vec::new();
    for e in fs::read_dir(sysroot)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(e.path())?;
        if meta.file_type().is_symlink() {
            let t = fs::read_link(e.path())?;
            links.push((name, t.to_string_lossy().trim_start_matches('/').to_owned()));
        } else if meta.is_dir() {
            dirs.insert(name);
        }
    }
    links.sort();
    Ok(TopLevel {
        dirs: dirs.into_iter().collect(),
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_a_binary_with_its_libraries_and_links_and_nothing_else() {
        let sh = fs::canonicalize("/bin/sh").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan {
            include: vec!["/bin/sh".into()],
            exclude: vec![],
            synthetic: vec![("/etc/hosts".into(), "127.0.0.1 localhost\n".into())],
        };
        let root = build(dir.path(), &plan).unwrap();
        // The shell itself, through whatever links lead to it.
        assert!(root.join(sh.strip_prefix("/").unwrap()).is_file());
        // Its C library.
        let libc_found = walk(&root).iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
        });
        assert!(libc_found, "libc is in the closure");
        assert_eq!(
            fs::read_to_string(root.join("etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n"
        );
        // Nothing unrelated.
        assert!(!root.join("usr/bin/dpkg").exists());
        // The same plan on an unchanged host is the same tree.
        assert_eq!(build(dir.path(), &plan).unwrap(), root);
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                out.push(path.clone());
                if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    out.extend(walk(&path));
                }
            }
        }
        out
    }
}
