//! Packaging: a directory becomes a deployment zip, deterministically.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use zip::write::SimpleFileOptions;

/// Reads `path`: a `.zip` file as it is, or a directory zipped with modes and symlinks kept.
pub fn load(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    }
    let mut files = Vec::new();
    walk(path, path, &mut files)?;
    files.sort();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for rel in files {
        let full = path.join(&rel);
        let name = rel.to_string_lossy().replace('\\', "/");
        let meta = fs::symlink_metadata(&full)?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&full)?;
            w.add_symlink(name, target.to_string_lossy(), SimpleFileOptions::default())?;
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode)
            .last_modified_time(zip::DateTime::default());
        w.start_file(name, opts)?;
        w.write_all(&fs::read(&full).with_context(|| format!("cannot read {}", full.display()))?)?;
    }
    Ok(w.finish()?.into_inner())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_a_directory_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        fs::write(dir.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            dir.path().join("bootstrap"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        fs::write(dir.path().join("lib/x.py"), "x = 1\n").unwrap();
        let a = load(dir.path()).unwrap();
        let b = load(dir.path()).unwrap();
        assert_eq!(
            a, b,
            "the same tree must give the same bytes (and CodeSha256)"
        );
        let mut z = zip::ZipArchive::new(Cursor::new(a)).unwrap();
        assert_eq!(z.len(), 2);
        assert_eq!(
            z.by_name("bootstrap").unwrap().unix_mode().unwrap() & 0o777,
            0o755
        );
        assert!(z.by_name("lib/x.py").is_ok());
    }
}
