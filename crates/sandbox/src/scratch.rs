//! Disk-backed `/tmp`: each sandbox gets an ext4 filesystem of its own, on a sparse file through a
//! loop device, of exactly the size asked for. Unlike a tmpfs, its pages are not the sandbox's
//! memory (page cache is reclaimable), so a 128 MB function can fill a 512 MB `/tmp`.
//!
//! A [`ScratchPool`] prepares filesystems in the background (a few per size recently asked for),
//! so a cold start only takes one. Each is handed over as a *detached* mount (`fsmount`): it
//! belongs to no mount namespace until the sandbox attaches it with `move_mount`, and nothing is
//! left to clean up after any crash: the backing file is unlinked as soon as it is made (a sparse
//! copy of an empty filesystem that mkfs.ext4 makes once per size, also unlinked), the
//! loop device clears itself when its last user goes (`LO_FLAGS_AUTOCLEAR`), and the mount goes
//! with the last descriptor or namespace that holds it. Filesystems are never reused.
//!
//! The data directory must be on a disk. On a tmpfs the backing files' pages would be memory
//! that no reclaim can free, charged to the environments through the loop device's writeback:
//! a function filling `/tmp` would fill the host's memory, and an environment at its memory limit
//! with dirty `/tmp` pages can stall the kernel's reclaim. [`ScratchPool::start`] refuses such a
//! directory, and sandboxes get a tmpfs `/tmp` counted as their memory instead.
//!
//! The loop ioctls are written here: `LOOP_CONFIGURE` (one call instead of three) is not in the
//! loop-device crates, which also need bindgen and libclang to build.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;
/// `statfs`'s `f_type` of the filesystems kept in memory.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// ext4 and loop block size: direct I/O needs the loop's block size to be at least the backing
/// filesystem's, and a 4 KiB ext4 block fits every common one.
const BLOCK: u64 = 4096;
/// How many distinct sizes the pool keeps filesystems ready for.
const SIZES_KEPT: usize = 4;

/// `struct loop_info64` from `linux/loop.h`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `linux/loop.h`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaches `file` to a free loop device that clears itself once unused. Returns the device,
/// open, and its path.
fn attach_loop(file: &File) -> io::Result<(OwnedFd, PathBuf)> {
    // Threads of this process asking for a free device at once would all be told the same one:
    // take turns (another process can still race us; that is retried).
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/loop-control")?;
    let mut direct_io = true;
    for attempt in 0..64 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?;
        let mut name = [0u8; 64];
        name[..10].copy_from_slice(b"lamina-tmp");
        let config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: BLOCK as u32,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR | if direct_io { LO_FLAGS_DIRECT_IO } else { 0 },
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which `config` is, for the call.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config) };
        if rc == 0 {
            return Ok((dev.into(), path));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Another process took the device between GET_FREE and CONFIGURE.
            Some(libc::EBUSY) => std::thread::sleep(Duration::from_micros(100 << (attempt % 6))),
            // The backing filesystem does not do direct I/O: go through its page cache.
            Some(libc::EINVAL) if direct_io => direct_io = false,
            _ => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ResourceBusy,
        "no free loop device after 64 tries",
    ))
}

/// Whether `dir` (or, where it does not exist yet, its nearest existing ancestor) is on a
/// filesystem kept in memory (tmpfs, ramfs), where a disk-backed `/tmp` cannot live.
pub fn in_memory(dir: &Path) -> io::Result<bool> {
    let mut at = dir;
    let stat = loop {
        let here = if at.as_os_str().is_empty() {
            Path::new(".")
        } else {
            at
        };
        match (rustix::fs::statfs(here), at.parent()) {
            (Err(rustix::io::Errno::NOENT), Some(up)) => at = up,
            (r, _) => break r?,
        }
    };
    let kind = stat.f_type as i64;
    Ok(kind == TMPFS_MAGIC || kind == RAMFS_MAGIC)
}

/// Fails where `dir` is on a filesystem kept in memory (tmpfs, ramfs), whose pages backing a
/// `/tmp` could never be reclaimed (see the module's documentation).
fn refuse_memory_fs(dir: &Path) -> io::Result<()> {
    if in_memory(dir)? {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} is on a filesystem kept in memory; put the data directory on a disk for a disk-backed /tmp",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Where e2fsprogs' `tool` (mkfs.ext4, debugfs) lives in the tree at `root` (root's PATH is
/// not always set for services).
pub(crate) fn e2fsprogs_in(root: &Path, tool: &str) -> Option<PathBuf> {
    ["usr/sbin", "sbin", "usr/bin"]
        .iter()
        .map(|dir| root.join(dir).join(tool))
        .find(|p| p.exists())
}

/// Where e2fsprogs' `tool` lives on this host.
fn e2fsprogs(tool: &str) -> Option<PathBuf> {
    e2fsprogs_in(Path::new("/"), tool)
}

/// How many empty filesystem images (one per size) are kept to copy from.
const TEMPLATES_KEPT: usize = 16;

/// Prepares empty ext4 filesystems for sandboxes' `/tmp`.
#[derive(Clone)]
pub struct ScratchPool {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where backing files are created (and unlinked at once).
    dir: PathBuf,
    mkfs: PathBuf,
    debugfs: PathBuf,
    /// Filesystems ready to hand out, by size in MB.
    ready: Mutex<HashMap<u64, Vec<OwnedFd>>>,
    /// Sizes asked for recently, newest first.
    wanted: Mutex<VecDeque<u64>>,
    wake: Condvar,
    /// Calibrated image size for each filesystem size.
    image_bytes: Mutex<HashMap<u64, u64>>,
    /// An empty filesystem per image size, made by mkfs.ext4 once, unlinked and kept open: every
    /// new filesystem of that size is a sparse copy of it (a few hundred KB of metadata), which
    /// costs no process.
    templates: Mutex<HashMap<u64, Arc<File>>>,
    /// How many filesystems of each wanted size to keep ready.
    spare: usize,
    counter: AtomicU64,
}

impl std::fmt::Debug for ScratchPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchPool")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl ScratchPool {
    /// Checks that this host can make loop-backed filesystems (root, loop devices, e2fsprogs'
    /// mkfs.ext4 and debugfs, the new mount API) by making one, and starts the background
    /// filler with `warm_mb` wanted.
    pub fn start(dir: &Path, spare: usize, warm_mb: u64) -> io::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        refuse_memory_fs(dir)?;
        let tool = |name: &str| {
            e2fsprogs(name).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{name} not found (Debian: apt-get install e2fsprogs)"),
                )
            })
        };
        let (mkfs, debugfs) = (tool("mkfs.ext4")?, tool("debugfs")?);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            mkfs,
            debugfs,
            ready: Mutex::new(HashMap::new()),
            wanted: Mutex::new(VecDeque::from([warm_mb])),
            wake: Condvar::new(),
            image_bytes: Mutex::new(HashMap::new()),
            templates: Mutex::new(HashMap::new()),
            spare,
            counter: AtomicU64::new(0),
        });
        drop(inner.make(16)?);
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("scratch-pool".into())
            .spawn(move || fill(weak))?;
        Ok(Self { inner })
    }

    /// An empty filesystem of `mb` MB with a world-writable, sticky root: a detached mount.
    pub fn take(&self, mb: u64) -> io::Result<OwnedFd> {
        let inner = &self.inner;
        {
            let mut wanted = inner.wanted.lock().unwrap_or_else(|e| e.into_inner());
            if wanted.front() != Some(&mb) {
                wanted.retain(|m| *m != mb);
                wanted.push_front(mb);
                wanted.truncate(SIZES_KEPT);
            }
        }
        let ready = inner
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&mb)
            .and_then(Vec::pop);
        inner.wake.notify_one();
        match ready {
            Some(fd) => Ok(fd),
            None => inner.make(mb),
        }
    }

    /// Filesystems ready now, for tests and metrics.
    pub fn ready(&self, mb: u64) -> usize {
        self.inner
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&mb)
            .map_or(0, Vec::len)
    }
}

/// The filler thread: keeps `spare` filesystems of each wanted size, until the pool is dropped.
fn fill(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let wanted: Vec<u64> = inner
            .wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        let mut made = false;
        for mb in wanted {
            let have = inner
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&mb)
                .map_or(0, Vec::len);
            if have < inner.spare {
                match inner.make(mb) {
                    Ok(fd) => {
                        inner
                            .ready
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(mb)
                            .or_default()
                            .push(fd);
                        made = true;
                    }
                    Err(e) => tracing::warn!(error = %e, mb, "preparing a /tmp filesystem failed"),
                }
            }
        }
        // Drop the sizes nobody wants any more.
        {
            let wanted = inner.wanted.lock().unwrap_or_else(|e| e.into_inner());
            inner
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|mb, _| wanted.contains(mb));
        }
        if !made {
            let guard = inner.wanted.lock().unwrap_or_else(|e| e.into_inner());
            let woken = inner
                .wake
                .wait_timeout(guard, Duration::from_secs(1))
                .map(|(_, t)| !t.timed_out())
                .unwrap_or(false);
            // Taken by a cold start that is still running: making a filesystem costs a core
            // for about 8 ms, so let the start have the CPU first.
            if woken {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Inner {
    /// Makes one filesystem whose free space is `mb` MB.
    fn make(&self, mb: u64) -> io::Result<OwnedFd> {
        let want = mb << 20;
        let known = self
            .image_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&mb)
            .copied();
        let size = known.unwrap_or(want + want / 16 + (8 << 20));
        let (mount, free) = self.format(size)?;
        if known.is_some() || free.abs_diff(want) < BLOCK * 4 {
            self.image_bytes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(mb, size);
            return Ok(mount);
        }
        // ext4's own overhead depends on the size: measure once per size, then make it exact.
        let size = (size as i128 + want as i128 - free as i128).max(BLOCK as i128 * 64) as u64;
        let size = size.div_ceil(BLOCK) * BLOCK;
        let (mount, free) = self.format(size)?;
        if free.abs_diff(want) > 1 << 20 {
            tracing::warn!(
                mb,
                free,
                "a /tmp filesystem's size is off by more than 1 MB"
            );
        }
        self.image_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(mb, size);
        Ok(mount)
    }

    /// Formats an image of `size` bytes and mounts it detached. Returns the mount and its free
    /// space in bytes.
    fn format(&self, size: u64) -> io::Result<(OwnedFd, u64)> {
        let image = size.div_ceil(BLOCK) * BLOCK;
        let template = self.template(image)?;
        let (file, path) = self.new_file()?;
        let made = file
            .set_len(image)
            .and_then(|()| copy_sparse(&template, &file));
        // Unlinked at once: the file lives only as long as the loop device uses it.
        let _ = std::fs::remove_file(&path);
        made?;
        let mount = mount_image(&file)?;
        let st = rustix::fs::fstatvfs(&mount)?;
        Ok((mount, st.f_bavail * st.f_frsize))
    }

    /// A new backing file in the pool's directory.
    fn new_file(&self) -> io::Result<(File, PathBuf)> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("tmp-{}-{n}.img", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?;
        Ok((file, path))
    }

    /// The empty filesystem of `image` bytes that new ones are copied from (made on first use).
    fn template(&self, image: u64) -> io::Result<Arc<File>> {
        if let Some(t) = self
            .templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&image)
        {
            return Ok(t.clone());
        }
        // Made without the lock (a start of another size need not wait for this mkfs); two
        // starts of a new size at once may both make one, and one is kept.
        let (file, path) = self.new_file()?;
        let made = (|| {
            file.set_len(image)?;
            let out = std::process::Command::new(&self.mkfs)
                .args([
                    "-q",
                    "-F",
                    "-b",
                    "4096",
                    "-m",
                    "0",
                    "-O",
                    "^has_journal,^resize_inode",
                    "-E",
                    "lazy_itable_init=1,nodiscard",
                ])
                .arg(&path)
                .env_clear()
                .stdin(std::process::Stdio::null())
                .output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "mkfs.ext4 failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(())
        })();
        let made = made.and_then(|()| empty_root(&self.debugfs, &path));
        let _ = std::fs::remove_file(&path);
        made?;
        let t = Arc::new(file);
        let mut templates = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        // Functions choose their size: a bounded number of templates is kept (each an open
        // file), and the others are made again when needed.
        if templates.len() >= TEMPLATES_KEPT
            && let Some(&old) = templates.keys().find(|&&k| k != image)
        {
            templates.remove(&old);
        }
        Ok(templates.entry(image).or_insert(t).clone())
    }
}

/// Makes a freshly formatted image's root what every `/tmp` starts as: empty (mkfs's
/// `lost+found` removed) and world-writable with the sticky bit. Done once on the template, so
/// that no copy pays for it, by debugfs on the image file: when it exits, the image holds the
/// change. (Mounted here instead, the image would be written back only at the unmount, when the
/// last copy of the mount's descriptor closes, and a child that another thread forks meanwhile
/// holds a copy until it execs: a `/tmp` copied from the image before that was root's and not
/// writable by the function.)
fn empty_root(debugfs: &Path, image: &Path) -> io::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new(debugfs)
        .args(["-w", "-f", "-"])
        .arg(image)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Two short lines fit in the pipe; the pipe is closed at the end of the statement. A write
    // that fails (debugfs gone already) is reported after its exit and what it said.
    let sent = child.stdin.take().map_or(Ok(()), |mut stdin| {
        stdin.write_all(b"rmdir lost+found\nset_inode_field / mode 041777\n")
    });
    let out = child.wait_with_output()?;
    // debugfs exits 0 whatever its requests did and says what failed on stderr, after its
    // banner ("debugfs 1.47.0 (5-Feb-2023)").
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l
                    .strip_prefix("debugfs ")
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    if !out.status.success() || !errors.is_empty() {
        return Err(io::Error::other(format!(
            "debugfs could not empty a new /tmp image's root ({}): {}",
            out.status,
            errors.join("; ")
        )));
    }
    sent
}

/// Copies `src` into `dst` (already as long) where `src` has data: its holes stay holes.
fn copy_sparse(src: &File, dst: &File) -> io::Result<()> {
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut off: libc::off_t = 0;
    loop {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(s, off, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            // No data past `off`: done.
            return if e.raw_os_error() == Some(libc::ENXIO) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(s, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let (mut from, mut to) = (data, data);
        while from < hole {
            // SAFETY: both offsets are locals the call advances; the descriptors are ours.
            let n = unsafe {
                libc::copy_file_range(s, &mut from, d, &mut to, (hole - from) as usize, 0)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the /tmp template ended early",
                ));
            }
        }
        off = hole;
    }
}

/// Attaches `image` to a loop device and mounts its filesystem detached. The loop device holds
/// the image from then on, and clears itself once the mount is gone.
fn mount_image(image: &File) -> io::Result<OwnedFd> {
    let (dev, dev_path) = attach_loop(image)?;
    let mount = mount_ext4(&dev_path)?;
    // The mount holds the device now: closing ours lets autoclear detach it when unmounted.
    drop(dev);
    Ok(mount)
}

/// Whether ext4 takes `no_prefetch_block_bitmaps` here; cleared once a mount without it
/// succeeds where the mount with it was refused.
static SKIP_READ_AHEAD: AtomicBool = AtomicBool::new(true);

/// Mounts the ext4 filesystem on `device` as a detached mount (nosuid, nodev).
fn mount_ext4(device: &Path) -> io::Result<OwnedFd> {
    if !SKIP_READ_AHEAD.load(Ordering::Relaxed) {
        return mount_ext4_with(device, false);
    }
    match mount_ext4_with(device, true) {
        // Kernels before 5.9 know no such option (with a disk-backed /tmp, that is 5.8 alone:
        // LOOP_CONFIGURE came in 5.8). From 5.17 an unknown option is refused as it is set;
        // before, ext4 takes its options as one string and refuses it at FSCONFIG_CMD_CREATE.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let made = mount_ext4_with(device, false)?;
            SKIP_READ_AHEAD.store(false, Ordering::Relaxed);
            tracing::info!(
                "ext4 refused no_prefetch_block_bitmaps: /tmp filesystems read their block bitmaps ahead"
            );
            Ok(made)
        }
        made => made,
    }
}

fn mount_ext4_with(device: &Path, no_read_ahead: bool) -> io::Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let fs = rustix::mount::fsopen("ext4", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "source", device)?;
    // The sparse file reads as zeros: the inode tables need no zeroing in the background.
    rustix::mount::fsconfig_set_flag(fs.as_fd(), "noinit_itable")?;
    // Nor are the block bitmaps read ahead after the mount (a function's first write reads the
    // one it needs): the read-ahead cost every start a pass of ext4's lazy-init thread and reads
    // through the loop device.
    if no_read_ahead {
        rustix::mount::fsconfig_set_flag(fs.as_fd(), "no_prefetch_block_bitmaps")?;
    }
    rustix::mount::fsconfig_create(fs.as_fd())?;
    let mount = rustix::mount::fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?;
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_in_memory_is_refused() {
        // /dev/shm is a tmpfs on every Linux host; a tmpfs made here would need root.
        let shm = Path::new("/dev/shm");
        assert_eq!(
            rustix::fs::statfs(shm).expect("statfs /dev/shm").f_type as i64,
            TMPFS_MAGIC,
            "this test needs /dev/shm to be a tmpfs"
        );
        let dir = tempfile::tempdir_in(shm).expect("a directory in /dev/shm");
        let e =
            ScratchPool::start(&dir.path().join("scratch"), 0, 16).expect_err("a pool on a tmpfs");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("on a disk"), "{e}");
    }

    #[test]
    fn a_request_debugfs_cannot_do_is_an_error() {
        // debugfs says what failed on stderr only, and exits 0.
        let dir = tempfile::tempdir_in("/var/tmp").expect("a directory in /var/tmp");
        let image = dir.path().join("again.img");
        File::create(&image).unwrap().set_len(16 << 20).unwrap();
        let mkfs = std::process::Command::new(e2fsprogs("mkfs.ext4").unwrap())
            .args(["-q", "-F"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(mkfs.success());
        let debugfs = e2fsprogs("debugfs").unwrap();
        empty_root(&debugfs, &image).expect("the first time");
        let e = empty_root(&debugfs, &image).expect_err("lost+found is gone the second time");
        assert!(e.to_string().contains("rmdir"), "{e}");
    }
}
