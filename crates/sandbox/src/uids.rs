//! Uids for sandboxes. Every live sandbox runs as a uid (and gid) no other process on the host
//! uses, so sandboxes cannot signal or trace each other and never share a per-uid limit such as
//! `RLIMIT_NPROC`.
//!
//! Each server reserves a range of [`RANGE`] ids for its whole life by holding an exclusive
//! `flock` on `<lock_dir>/<slot>.lock`: servers sharing a host never collide, and a crashed
//! server's range is free again as soon as its process is gone (the kernel drops the lock).
//! Within its range a server hands out ids from a free list, so no two live sandboxes share one.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

/// The first id of slot 0: far above the ids of people and packages (and of the usual
/// `/etc/subuid` ranges, which start at 100000), below 2^31 for tools that read ids as signed.
pub const BASE: u32 = 1_000_000_000;
/// Ids per server.
pub const RANGE: u32 = 100_000;
/// Slots: `BASE + SLOTS * RANGE` stays below 2^31.
const SLOTS: u32 = 10_000;

/// A server's reserved range of ids.
#[derive(Debug)]
pub struct UidRange {
    base: u32,
    /// Held for the server's life: the reservation.
    _lock: File,
    ids: Mutex<Ids>,
}

#[derive(Debug, Default)]
struct Ids {
    /// Never handed out yet: `base + next` onwards.
    next: u32,
    /// Given back.
    free: Vec<u32>,
}

impl UidRange {
    /// Reserves the first free range, recording the reservation under `lock_dir`.
    pub fn reserve(lock_dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(lock_dir)?;
        for slot in 0..SLOTS {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(lock_dir.join(format!("{slot}.lock")))?;
            // SAFETY: flock on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(Self {
                    base: BASE + slot * RANGE,
                    _lock: file,
                    ids: Mutex::new(Ids::default()),
                });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(e);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "every uid range is taken by another server",
        ))
    }

    /// The first id of this range.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// An id no live sandbox of this server uses, or `None` when all are in use.
    pub fn take(&self) -> Option<u32> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = ids.free.pop() {
            return Some(id);
        }
        if ids.next < RANGE {
            ids.next += 1;
            return Some(self.base + ids.next - 1);
        }
        None
    }

    /// Gives an id back once its sandbox (and every process in it) is gone.
    pub fn give(&self, id: u32) {
        debug_assert!((self.base..self.base + RANGE).contains(&id));
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_get_disjoint_ranges_and_ids_are_reused_only_when_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = UidRange::reserve(dir.path()).unwrap();
        let b = UidRange::reserve(dir.path()).unwrap();
        assert_ne!(a.base(), b.base());
        assert!(a.base().abs_diff(b.base()) >= RANGE);
        let x = a.take().unwrap();
        let y = a.take().unwrap();
        assert_ne!(x, y);
        a.give(x);
        assert_eq!(a.take(), Some(x));
        // A dropped range is free for the next server.
        let base = a.base();
        drop(a);
        let c = UidRange::reserve(dir.path()).unwrap();
        assert_eq!(c.base(), base);
    }
}
