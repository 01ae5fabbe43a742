//! A cgroup file read or written again and again (a counter, a freezer's state): opened once,
//! then read and written at offset 0, so that each use costs no path lookup. A kernel that cannot
//! hand out descriptors (the recording fake) is used by path.
//!
//! A descriptor outlives its group: once the group is removed, reads and writes fail with
//! `ENODEV`, which [`CgroupFile`] reports as `NotFound`, like the path of a removed group.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::kernel::Kernel;

#[derive(Debug)]
pub(super) enum CgroupFile {
    Open(File),
    Path(PathBuf),
}

impl CgroupFile {
    /// Opens `path` for reading, and for writing too when `write`.
    pub(super) fn new(path: PathBuf, k: &dyn Kernel, write: bool) -> Self {
        let file = if write {
            k.open_rw(&path)
        } else {
            k.open_read(&path)
        };
        match file {
            Ok(f) => Self::Open(f),
            Err(_) => Self::Path(path),
        }
    }

    /// The file's number.
    pub(super) fn read_u64(&self, k: &dyn Kernel) -> io::Result<u64> {
        match self {
            Self::Open(f) => read_u64_at_start(f),
            Self::Path(p) => parse(&k.read(p)?),
        }
    }

    /// Whether a line of the file, trimmed, is `line` (cgroup files are short: the first 128
    /// bytes are read).
    pub(super) fn has_line(&self, k: &dyn Kernel, line: &str) -> io::Result<bool> {
        let has = |text: &str| text.lines().any(|l| l.trim() == line);
        match self {
            Self::Open(f) => {
                let mut buf = [0u8; 128];
                let n = f.read_at(&mut buf, 0).map_err(gone)?;
                Ok(has(std::str::from_utf8(&buf[..n]).unwrap_or("")))
            }
            Self::Path(p) => Ok(has(&k.read(p)?)),
        }
    }

    pub(super) fn write(&self, k: &dyn Kernel, value: &str) -> io::Result<()> {
        match self {
            Self::Open(f) => f.write_at(value.as_bytes(), 0).map(drop).map_err(gone),
            Self::Path(p) => k.write(p, value),
        }
    }
}

/// A removed group's files answer `ENODEV` through descriptors opened before.
fn gone(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ENODEV) {
        io::Error::new(io::ErrorKind::NotFound, e)
    } else {
        e
    }
}

/// Reads the number at the start of an open cgroup file.
pub(super) fn read_u64_at_start(f: &File) -> io::Result<u64> {
    let mut buf = [0u8; 32];
    let n = f.read_at(&mut buf, 0).map_err(gone)?;
    parse(std::str::from_utf8(&buf[..n]).unwrap_or(""))
}

fn parse(text: &str) -> io::Result<u64> {
    text.trim()
        .parse()
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}
