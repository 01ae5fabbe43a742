//! The sandbox's root filesystem: a small read-only tmpfs holding read-only binds of a curated
//! system tree (see [`crate::sysroot`]), the function's code and runtime, a size-limited `/tmp`
//! (an ext4 filesystem of its own on disk, or a tmpfs), a fresh `/proc` that shows the function
//! only its own processes and masks sensitive files, and a minimal `/dev`.
//!
//! Mount sources are neutral (`tmpfs`, `proc`): nothing names the server or its paths.

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::kernel::{Kernel, MountFlags};

/// A host path presented read-only inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Whether the source is a file (the mountpoint is created as a file).
    pub file: bool,
}

/// What the root is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootPlan {
    /// An existing empty host directory to mount the new root on (private to the mount namespace).
    pub mountpoint: PathBuf,
    /// Read-only binds, mounted in order (a parent before anything inside it).
    pub binds: Vec<Bind>,
    /// Top-level names that are symlinks on the host (`bin` → `usr/bin` on merged-/usr systems).
    pub symlinks: Vec<(String, String)>,
    /// What `/tmp` is.
    pub tmp: Tmp,
    /// The root extends the [`Base`] the sandbox built while it waited: `binds` holds only what
    /// the base lacks, and `mountpoint` and `symlinks` are the base's. Otherwise a base built
    /// ahead is let go and the whole root built from this plan.
    #[serde(default)]
    pub on_base: bool,
}

/// The part of the root every function shares (the system tree, `/proc`, `/dev`), which a
/// sandbox builds before it knows its function: a launch then only binds the function's own
/// trees, moves `/tmp` in and pivots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub mountpoint: PathBuf,
    pub binds: Vec<Bind>,
    pub symlinks: Vec<(String, String)>,
    /// Empty directories made in the base, where the function's trees are bound later over
    /// them: an interpreter started ahead ([`crate::Zygote`]) must find every directory of its
    /// `LD_LIBRARY_PATH`, since the dynamic loader remembers for good one it once found missing.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

/// The sandbox's `/tmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tmp {
    /// A tmpfs of this many MB (its pages count against the sandbox's memory).
    Tmpfs { mb: u64 },
    /// A filesystem of its own, handed over as a detached mount with the spec (see
    /// [`crate::scratch`]): disk, not memory.
    Mount,
}

/// `/proc` entries hidden behind `/dev/null`, as container runtimes do.
const MASKED_PROC: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "sysrq-trigger",
    "latency_stats",
];
/// `/proc` subtrees made read-only.
const READONLY_PROC: &[&str] = &["sys", "irq", "bus", "fs"];
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

fn ro() -> MountFlags {
    MountFlags::BIND
        | MountFlags::REMOUNT
        | MountFlags::RDONLY
        | MountFlags::NOSUID
        | MountFlags::NODEV
}

/// Builds the root and pivots into it. Runs inside the new mount and PID namespaces. `tmp_mount`
/// is the detached mount for [`Tmp::Mount`]. With [`RootPlan::on_base`], the base must have been
/// built ([`build_base`]); without it, a base built ahead must have been let go ([`drop_base`]).
pub fn build(k: &dyn Kernel, plan: &RootPlan, tmp_mount: Option<RawFd>) -> io::Result<()> {
    if !plan.on_base {
        build_base(
            k,
            &Base {
                mountpoint: plan.mountpoint.clone(),
                binds: Vec::new(),
                symlinks: plan.symlinks.clone(),
                dirs: Vec::new(),
            },
        )?;
    }
    let root = &plan.mountpoint;
    bind_all(k, root, &plan.binds)?;
    match (plan.tmp, tmp_mount) {
        (Tmp::Mount, Some(fd)) => k.move_mount(fd, &root.join("tmp"))?,
        (Tmp::Mount, None) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no mount was passed for /tmp",
            ));
        }
        (Tmp::Tmpfs { mb }, _) => k.mount(
            "tmpfs",
            &root.join("tmp"),
            Some("tmpfs"),
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(&format!("size={mb}m,mode=1777")),
        )?,
    }
    k.chdir(root)?;
    k.pivot_root(root, &root.join("oldroot"))?;
    k.chdir(Path::new("/"))?;
    k.umount_detach(Path::new("/oldroot"))?;
    k.remove_dir(Path::new("/oldroot"))?;
    k.mount(
        "none",
        Path::new("/"),
        None,
        MountFlags::REMOUNT
            | MountFlags::BIND
            | MountFlags::RDONLY
            | MountFlags::NOSUID
            | MountFlags::NODEV,
        None,
    )?;
    Ok(())
}

/// Builds what every root shares on `base.mountpoint`: the tmpfs, the top-level links, `base`'s
/// binds, a fresh `/proc` and a minimal `/dev`. Runs inside the new mount and PID namespaces.
pub fn build_base(k: &dyn Kernel, base: &Base) -> io::Result<()> {
    let root = &base.mountpoint;
    // Nothing we mount may propagate back to the host.
    k.mount(
        "none",
        Path::new("/"),
        None,
        MountFlags::REC | MountFlags::PRIVATE,
        None,
    )?;
    k.mount(
        "tmpfs",
        root,
        Some("tmpfs"),
        MountFlags::NOSUID | MountFlags::NODEV,
        Some("size=1m,mode=755"),
    )?;
    for dir in ["tmp", "proc", "dev", "oldroot"] {
        k.create_dir(&root.join(dir))?;
    }
    for (link, target) in &base.symlinks {
        k.symlink(target, &root.join(link))?;
    }
    bind_all(k, root, &base.binds)?;
    for dir in &base.dirs {
        create_path(k, root, dir, false)?;
    }
    let proc = root.join("proc");
    // hidepid=2: the function sees only processes of its own uid, not PID 1 (whose command line
    // would name the server's binary) nor anything else that runs as root.
    k.mount(
        "proc",
        &proc,
        Some("proc"),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some("hidepid=2"),
    )?;
    let dev = root.join("dev");
    k.mount(
        "tmpfs",
        &dev,
        Some("tmpfs"),
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some("size=64k,mode=755"),
    )?;
    for d in DEVICES {
        let target = dev.join(d);
        k.create_file(&target)?;
        k.mount(&format!("/dev/{d}"), &target, None, MountFlags::BIND, None)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        k.symlink(target, &dev.join(name))?;
    }
    for p in MASKED_PROC {
        let target = proc.join(p);
        if k.exists(&target) {
            k.mount("/dev/null", &target, None, MountFlags::BIND, None)?;
        }
    }
    for p in READONLY_PROC {
        let target = proc.join(p);
        if k.exists(&target) {
            k.mount(
                &target.to_string_lossy(),
                &target,
                None,
                MountFlags::BIND | MountFlags::REC,
                None,
            )?;
            k.mount("none", &target, None, ro(), None)?;
        }
    }
    Ok(())
}

/// Lets go of a base built ahead, for a root that does not extend it (an image's).
pub fn drop_base(k: &dyn Kernel, base: &Base) -> io::Result<()> {
    k.umount_detach(&base.mountpoint)
}

/// Read-only binds of `binds` under `root`, their mountpoints made as needed.
fn bind_all(k: &dyn Kernel, root: &Path, binds: &[Bind]) -> io::Result<()> {
    for b in binds {
        let target = root.join(b.target.strip_prefix("/").unwrap_or(&b.target));
        create_path(k, root, &b.target, b.file)?;
        k.mount(
            &b.source.to_string_lossy(),
            &target,
            None,
            MountFlags::BIND | MountFlags::REC,
            None,
        )?;
        k.mount("none", &target, None, ro(), None)?;
    }
    Ok(())
}

/// Creates the mountpoint for `inside` (and its parents) on the new root.
fn create_path(k: &dyn Kernel, root: &Path, inside: &Path, file: bool) -> io::Result<()> {
    let rel: PathBuf = inside.components().skip(1).collect();
    let mut cur = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == parts.len();
        if last && file {
            if !k.exists(&cur) {
                k.create_file(&cur)?;
            }
        } else if !k.exists(&cur) {
            k.create_dir(&cur)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Call, RecordingKernel};

    #[test]
    fn mounts_in_a_safe_order() {
        let k = RecordingKernel::new();
        let plan = RootPlan {
            mountpoint: "/run/root".into(),
            binds: vec![
                Bind {
                    source: "/usr".into(),
                    target: "/usr".into(),
                    file: false,
                },
                Bind {
                    source: "/data/code/trees/abc".into(),
                    target: "/var/task".into(),
                    file: false,
                },
            ],
            symlinks: vec![("bin".into(), "usr/bin".into())],
            tmp: Tmp::Tmpfs { mb: 512 },
            on_base: false,
        };
        build(&k, &plan, None).unwrap();
        let calls = k.calls();
        // First: stop propagation to the host. Last: read-only root.
        assert!(
            matches!(&calls[0], Call::Mount { target, flags, .. } if target == Path::new("/") && *flags == (libc::MS_REC | libc::MS_PRIVATE))
        );
        assert!(
            matches!(calls.last().unwrap(), Call::Mount { target, flags, .. } if target == Path::new("/") && flags & libc::MS_RDONLY != 0)
        );
        // Every bind is followed by its read-only remount.
        let task = calls.iter().position(|c| matches!(c, Call::Mount { target, flags, .. } if target == Path::new("/run/root/var/task") && *flags == (libc::MS_BIND | libc::MS_REC))).unwrap();
        assert!(
            matches!(&calls[task + 1], Call::Mount { target, flags, .. } if target == Path::new("/run/root/var/task") && flags & libc::MS_RDONLY != 0)
        );
        assert!(calls.contains(&Call::CreateDir("/run/root/var".into())));
        assert!(calls.contains(&Call::Mount {
            source: "tmpfs".into(),
            target: "/run/root/tmp".into(),
            fstype: Some("tmpfs".into()),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            data: Some("size=512m,mode=1777".into()),
        }));
        let pivot = calls
            .iter()
            .position(|c| matches!(c, Call::PivotRoot(..)))
            .unwrap();
        assert_eq!(
            calls[pivot],
            Call::PivotRoot("/run/root".into(), "/run/root/oldroot".into())
        );
        assert_eq!(calls[pivot + 2], Call::UmountDetach("/oldroot".into()));
    }

    #[test]
    fn a_launch_on_the_base_mounts_only_the_function_then_pivots() {
        let k = RecordingKernel::new();
        let base = Base {
            mountpoint: "/run/root".into(),
            binds: vec![Bind {
                source: "/sysroot/usr".into(),
                target: "/usr".into(),
                file: false,
            }],
            symlinks: vec![("bin".into(), "usr/bin".into())],
            dirs: vec!["/var/task/lib".into()],
        };
        build_base(&k, &base).unwrap();
        let ahead = k.calls();
        // The loader's directories under where the code goes, made on the base's tmpfs.
        assert!(ahead.contains(&Call::CreateDir("/run/root/var/task/lib".into())));
        // Ahead: the system tree, /proc and /dev, but no pivot and nothing of a function.
        assert!(ahead.iter().any(
            |c| matches!(c, Call::Mount { target, .. } if target == Path::new("/run/root/usr"))
        ));
        assert!(
            ahead
                .iter()
                .any(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "proc"))
        );
        assert!(!ahead.iter().any(|c| matches!(c, Call::PivotRoot(..))));
        let plan = RootPlan {
            mountpoint: "/run/root".into(),
            binds: vec![Bind {
                source: "/data/code/trees/abc".into(),
                target: "/var/task".into(),
                file: false,
            }],
            symlinks: Vec::new(),
            tmp: Tmp::Tmpfs { mb: 512 },
            on_base: true,
        };
        build(&k, &plan, None).unwrap();
        let launch = &k.calls()[ahead.len()..];
        let mounted: Vec<&Path> = launch
            .iter()
            .filter_map(|c| match c {
                Call::Mount { target, .. } => Some(target.as_path()),
                _ => None,
            })
            .collect();
        // At launch: the code (bound, then read-only), /tmp, and the read-only root after the
        // pivot; the base is not built again.
        assert_eq!(
            mounted,
            [
                Path::new("/run/root/var/task"),
                Path::new("/run/root/var/task"),
                Path::new("/run/root/tmp"),
                Path::new("/"),
            ]
        );
        assert!(launch.contains(&Call::PivotRoot(
            "/run/root".into(),
            "/run/root/oldroot".into()
        )));

        // A root that does not extend the base (an image's) lets it go first.
        drop_base(&k, &base).unwrap();
        assert_eq!(
            k.calls().last(),
            Some(&Call::UmountDetach("/run/root".into()))
        );
    }
}
