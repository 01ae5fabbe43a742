//! The narrow interface between sandbox logic and the kernel.
//!
//! Every mount, namespace change, cgroup file write and privilege drop goes through [`Kernel`].
//! [`LinuxKernel`] performs the calls; [`RecordingKernel`] records them (and keeps cgroup files in
//! memory), so the setup sequences for cgroup v1 and v2 run as ordinary unprivileged unit tests.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Mount flags we use, as libc values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFlags(pub u64);

impl MountFlags {
    pub const NONE: Self = Self(0);
    pub const RDONLY: Self = Self(libc::MS_RDONLY);
    pub const NOSUID: Self = Self(libc::MS_NOSUID);
    pub const NODEV: Self = Self(libc::MS_NODEV);
    pub const NOEXEC: Self = Self(libc::MS_NOEXEC);
    pub const BIND: Self = Self(libc::MS_BIND);
    pub const REC: Self = Self(libc::MS_REC);
    pub const REMOUNT: Self = Self(libc::MS_REMOUNT);
    pub const PRIVATE: Self = Self(libc::MS_PRIVATE);
}

impl std::ops::BitOr for MountFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Namespaces to unshare, as `CLONE_NEW*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces(pub i32);

impl Namespaces {
    /// Mount, PID, IPC, UTS and network namespaces (`sandbox-init` itself).
    pub const SANDBOX: Self = Self(
        libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWNET,
    );
    /// [`Self::SANDBOX`] but the network namespace, for a sandbox joining one made for it.
    pub const SANDBOX_JOINED_NET: Self = Self(Self::SANDBOX.0 & !libc::CLONE_NEWNET);
    /// The cgroup namespace (PID 1, once in the sandbox's cgroup: that group is its root).
    pub const CGROUP: Self = Self(libc::CLONE_NEWCGROUP);
}

/// Resource limits we set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rlimit {
    NoFile,
    NProc,
    Core,
}

/// Every kernel operation the sandbox performs.
pub trait Kernel: Send + Sync {
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    fn write(&self, path: &Path, data: &str) -> io::Result<()>;
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Opens a file for reading and writing through one descriptor (cgroup files whose state
    /// is per open file, such as `memory.peak`).
    fn open_rw(&self, path: &Path) -> io::Result<std::fs::File>;
    /// Opens a file for reading, to be read again and again at offset 0 (cgroup counters).
    fn open_read(&self, path: &Path) -> io::Result<std::fs::File>;
    fn exists(&self, path: &Path) -> bool;
    fn unshare(&self, namespaces: Namespaces) -> io::Result<()>;
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// Attaches a detached mount (from `fsmount`) at `target`.
    fn move_mount(&self, mount_fd: RawFd, target: &Path) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    fn umount_detach(&self, target: &Path) -> io::Result<()>;
    fn symlink(&self, target: &str, link: &Path) -> io::Result<()>;
    /// Creates an empty file at `path` (a mountpoint) without opening it; fails if it exists.
    fn create_file(&self, path: &Path) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// Makes `path` this process's root directory (for a process started before its sandbox's
    /// root is pivoted; see `init/function.rs`).
    fn chroot(&self, path: &Path) -> io::Result<()>;
    fn setrlimit(&self, which: Rlimit, limit: u64) -> io::Result<()>;
    /// Drops every capability from the bounding set, clears supplementary groups and switches to
    /// `uid`/`gid` (which also empties the permitted and effective sets).
    fn become_user(&self, uid: u32, gid: u32) -> io::Result<()>;
    fn no_new_privs(&self) -> io::Result<()>;
    /// Empties the bounding, permitted, effective and inheritable capability sets without
    /// changing uid (inside a user namespace, where no other uid is mapped).
    fn drop_capabilities(&self) -> io::Result<()>;
    fn kill(&self, pid: i32, signal: i32) -> io::Result<()>;
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn drop_bounding_set() -> io::Result<()> {
    for cap in 0..=63 {
        // SAFETY: PR_CAPBSET_DROP takes an integer; EINVAL for caps beyond the kernel's last.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxKernel;

impl Kernel for LinuxKernel {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        match std::fs::create_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        // cgroup files want one write(2) with the whole value.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(data.as_bytes())
    }
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn open_rw(&self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::File::open(path)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn unshare(&self, namespaces: Namespaces) -> io::Result<()> {
        // SAFETY: unshare takes flags only and affects the calling process.
        check(unsafe { libc::unshare(namespaces.0) })
    }
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let src = CString::new(source).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let tgt = cstr(target)?;
        let fs = fstype
            .map(CString::new)
            .transpose()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let dat = data
            .map(CString::new)
            .transpose()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: all pointers are valid NUL-terminated strings (or null) for the duration of the call.
        check(unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                fs.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                flags.0 as libc::c_ulong,
                dat.as_ref().map_or(std::ptr::null(), |s| s.as_ptr().cast()),
            )
        })
    }
    fn move_mount(&self, mount_fd: RawFd, target: &Path) -> io::Result<()> {
        // SAFETY: the caller passes a descriptor it owns, open for the duration of the call.
        let from = unsafe { std::os::fd::BorrowedFd::borrow_raw(mount_fd) };
        rustix::mount::move_mount(
            from,
            c"",
            rustix::fs::CWD,
            target,
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(io::Error::from)
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        let a = cstr(new_root)?;
        let b = cstr(put_old)?;
        // SAFETY: both arguments are valid C strings; pivot_root has no libc wrapper.
        check(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) as libc::c_int })
    }
    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        let t = cstr(target)?;
        // SAFETY: valid C string.
        check(unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) })
    }
    fn symlink(&self, target: &str, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }
    fn create_file(&self, path: &Path) -> io::Result<()> {
        // Made, never opened: a file open for writing holds its mount's write access, and a
        // process another thread forks meanwhile would keep it until it `exec`s, so that the
        // mount could not be made read-only (EBUSY) at the end of the root's template.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::RegularFile,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .map_err(io::Error::from)
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        std::env::set_current_dir(path)
    }
    fn chroot(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::chroot(path)
    }
    fn setrlimit(&self, which: Rlimit, limit: u64) -> io::Result<()> {
        let resource = match which {
            Rlimit::NoFile => libc::RLIMIT_NOFILE,
            Rlimit::NProc => libc::RLIMIT_NPROC,
            Rlimit::Core => libc::RLIMIT_CORE,
        };
        let r = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: `r` is a valid rlimit for the duration of the call.
        check(unsafe { libc::setrlimit(resource, &r) })
    }
    fn become_user(&self, uid: u32, gid: u32) -> io::Result<()> {
        drop_bounding_set()?;
        // SAFETY: setgroups with an empty list; setresgid/setresuid take plain integers.
        unsafe {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(gid, gid, gid))?;
            check(libc::setresuid(uid, uid, uid))?;
        }
        Ok(())
    }
    fn drop_capabilities(&self) -> io::Result<()> {
        drop_bounding_set()?;
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        // SAFETY: capset with a v3 header and two zeroed data words, both valid for the call.
        check(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int })
    }
    fn no_new_privs(&self) -> io::Result<()> {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }
    fn kill(&self, pid: i32, signal: i32) -> io::Result<()> {
        // SAFETY: kill takes integers only.
        check(unsafe { libc::kill(pid, signal) })
    }
}

/// One recorded kernel call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateDir(PathBuf),
    RemoveDir(PathBuf),
    Write(PathBuf, String),
    Unshare(i32),
    Mount {
        source: String,
        target: PathBuf,
        fstype: Option<String>,
        flags: u64,
        data: Option<String>,
    },
    MoveMount(RawFd, PathBuf),
    PivotRoot(PathBuf, PathBuf),
    UmountDetach(PathBuf),
    Symlink(String, PathBuf),
    CreateFile(PathBuf),
    SetHostname(String),
    Chdir(PathBuf),
    Chroot(PathBuf),
    SetRlimit(Rlimit, u64),
    BecomeUser(u32, u32),
    NoNewPrivs,
    DropCapabilities,
    Kill(i32, i32),
}

/// A fake kernel that records calls and keeps written files in memory.
#[derive(Debug, Default)]
pub struct RecordingKernel {
    calls: Mutex<Vec<Call>>,
    files: Mutex<HashMap<PathBuf, String>>,
    refused: Mutex<HashMap<PathBuf, i32>>,
}

impl RecordingKernel {
    pub fn new() -> Self {
        Self::default()
    }
    /// Pretends a file exists with this content (e.g. `cgroup.controllers`).
    pub fn set_file(&self, path: impl Into<PathBuf>, content: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), content.to_owned());
    }
    /// Makes every write to `path` fail with `errno` (recorded all the same).
    pub fn refuse(&self, path: impl Into<PathBuf>, errno: i32) {
        self.refused.lock().unwrap().insert(path.into(), errno);
    }
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }
    /// The files written, in order, with what was written.
    pub fn writes(&self) -> Vec<(String, String)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Write(p, v) => Some((p.display().to_string(), v)),
                _ => None,
            })
            .collect()
    }
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Kernel for RecordingKernel {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::CreateDir(path.into()));
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), String::new());
        Ok(())
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::RemoveDir(path.into()));
        Ok(())
    }
    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        self.record(Call::Write(path.into(), data.into()));
        if let Some(errno) = self.refused.lock().unwrap().get(path) {
            return Err(io::Error::from_raw_os_error(*errno));
        }
        self.files.lock().unwrap().insert(path.into(), data.into());
        Ok(())
    }
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn open_rw(&self, _: &Path) -> io::Result<std::fs::File> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    fn open_read(&self, _: &Path) -> io::Result<std::fs::File> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.lock().unwrap().contains_key(path)
    }
    fn unshare(&self, namespaces: Namespaces) -> io::Result<()> {
        self.record(Call::Unshare(namespaces.0));
        Ok(())
    }
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            source: source.into(),
            target: target.into(),
            fstype: fstype.map(Into::into),
            flags: flags.0,
            data: data.map(Into::into),
        });
        Ok(())
    }
    fn move_mount(&self, mount_fd: RawFd, target: &Path) -> io::Result<()> {
        self.record(Call::MoveMount(mount_fd, target.into()));
        Ok(())
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        self.record(Call::PivotRoot(new_root.into(), put_old.into()));
        Ok(())
    }
    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        self.record(Call::UmountDetach(target.into()));
        Ok(())
    }
    fn symlink(&self, target: &str, link: &Path) -> io::Result<()> {
        self.record(Call::Symlink(target.into(), link.into()));
        Ok(())
    }
    fn create_file(&self, path: &Path) -> io::Result<()> {
        self.record(Call::CreateFile(path.into()));
        Ok(())
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.record(Call::SetHostname(name.into()));
        Ok(())
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chdir(path.into()));
        Ok(())
    }
    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chroot(path.into()));
        Ok(())
    }
    fn setrlimit(&self, which: Rlimit, limit: u64) -> io::Result<()> {
        self.record(Call::SetRlimit(which, limit));
        Ok(())
    }
    fn become_user(&self, uid: u32, gid: u32) -> io::Result<()> {
        self.record(Call::BecomeUser(uid, gid));
        Ok(())
    }
    fn no_new_privs(&self) -> io::Result<()> {
        self.record(Call::NoNewPrivs);
        Ok(())
    }
    fn drop_capabilities(&self) -> io::Result<()> {
        self.record(Call::DropCapabilities);
        Ok(())
    }
    fn kill(&self, pid: i32, signal: i32) -> io::Result<()> {
        self.record(Call::Kill(pid, signal));
        Ok(())
    }
}
