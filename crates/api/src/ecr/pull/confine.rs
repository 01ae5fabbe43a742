//! What keeps a pull's process to its own: its staging directory, closed to it but for its own
//! part; no process of its uid outliving it; nothing it wrote stored but regular files, made
//! root's before the blob store keeps them.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The part of a pull's directory its process writes in (and reaches as its working
/// directory): the directory itself is root's alone, so `..` leads it nowhere.
const WORK: &str = "work";

/// Makes the pull's directory `dir` (root's, mode 0700) and its working part, owned by `uid`
/// when one was lent; returns the working part.
pub(super) fn stage(dir: &Path, uid: Option<u32>) -> io::Result<PathBuf> {
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    let work = dir.join(WORK);
    std::fs::DirBuilder::new().mode(0o700).create(&work)?;
    std::os::unix::fs::chown(&work, uid, uid)?;
    Ok(work)
}

/// Kills every process of `uid` (the pull's process may have left descendants, which its
/// parent-death signal does not reach); whether none is left. The uid is the pull's alone.
pub(super) fn sweep(uid: u32) -> bool {
    for _ in 0..20 {
        let left = processes_of(uid);
        if left.is_empty() {
            return true;
        }
        for pid in left {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    processes_of(uid).is_empty()
}

/// The live processes (not zombies, which run nothing) whose real, effective or saved uid is
/// `uid`.
fn processes_of(uid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let state = status.lines().find_map(|l| l.strip_prefix("State:"))?;
            if matches!(state.trim_start().chars().next(), Some('Z' | 'X')) {
                return None;
            }
            let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            uids.split_whitespace()
                .take(3)
                .any(|u| u.parse() == Ok(uid))
                .then_some(pid)
        })
        .collect()
}

/// Opens a file the pull's process wrote, refusing anything but a regular file with one name
/// (a symbolic link would lead the server elsewhere, a pipe would hold it, a hard link would
/// keep a name the process could write through), and, when the process ran as `uid`, one of
/// its, made root's and read-only to others (the file then joins the blob store).
pub(super) fn claim(path: &Path, uid: Option<u32>) -> Result<File, String> {
    let refused = |e: io::Error| format!("cannot read what the pull fetched: {e}");
    let file = File::options()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(refused)?;
    let meta = file.metadata().map_err(refused)?;
    if !meta.is_file() || meta.nlink() != 1 || uid.is_some_and(|u| meta.uid() != u) {
        return Err(refused(io::Error::other(
            "not a regular file of its own with one name",
        )));
    }
    if uid.is_some() {
        std::os::unix::fs::fchown(&file, Some(0), Some(0)).map_err(refused)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(refused)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn a_pull_stores_only_regular_files_made_roots() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer-0");
        std::fs::write(&file, b"x").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("link")).unwrap();
        assert!(claim(&dir.path().join("link"), None).is_err());
        assert!(claim(dir.path(), None).is_err());
        assert!(claim(&file, None).is_ok());
        // A second name (one the process could keep writing through) is refused.
        std::fs::hard_link(&file, dir.path().join("again")).unwrap();
        assert!(claim(&file, None).is_err());
        std::fs::remove_file(dir.path().join("again")).unwrap();
        assert!(root(), "this test changes a file's owner: run it as root");
        std::os::unix::fs::chown(&file, Some(4242), Some(4242)).unwrap();
        assert!(claim(&file, Some(4343)).is_err(), "another uid's file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        claim(&file, Some(4242)).unwrap();
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (0, 0, 0o644));
    }

    #[test]
    fn a_sweep_leaves_no_process_of_the_uid() {
        assert!(root(), "this test changes processes' uids: run it as root");
        // An id no one uses (this test's own), above the sandboxes' ranges' end.
        let uid = 2_100_000_000 + std::process::id() % 1000;
        let mut children: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("60")
                    .uid(uid)
                    .gid(uid)
                    .spawn()
                    .unwrap()
            })
            .collect();
        assert_eq!(processes_of(uid).len(), 3);
        assert!(sweep(uid));
        assert!(processes_of(uid).is_empty());
        for c in &mut children {
            let status = c.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9)
            );
        }
    }
}
