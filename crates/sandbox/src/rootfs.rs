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
        build_image_base(k, &plan.mountpoint, plan)?;
    }
    let root = &plan.mountpoint;
    bind_all(k, root, &plan.binds)?;
    add_tmp(k, root, plan.tmp, tmp_mount)?;
    pivot(k, root)
}

/// Where a sandbox whose mount namespace is a copy of the template ([`build_template`]) builds
/// an image's root: an empty directory of the template's root, where nothing is mounted until
/// `/tmp` (which then goes into the image's root instead).
const SPARE: &str = "/tmp";

/// Completes the root of a sandbox whose mount namespace is a copy of the template
/// ([`build_template`]), whose root is the base already and whose `/proc` is mounted
/// ([`mount_proc`]). The function's trees arrive as detached mounts (`mounts`, one per bind of
/// the plan, in order; see [`detached_trees`]), since no host path is reachable from here.
/// With [`RootPlan::on_base`] they are attached in place: no pivot. An image's root is built
/// whole on a tmpfs of its own and pivoted into, as [`build`] does.
pub fn build_in_template(
    k: &dyn Kernel,
    plan: &RootPlan,
    mounts: &[RawFd],
    tmp_mount: Option<RawFd>,
) -> io::Result<()> {
    if mounts.len() != plan.binds.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} mounts were passed for {} trees",
                mounts.len(),
                plan.binds.len()
            ),
        ));
    }
    let root = if plan.on_base {
        Path::new("/")
    } else {
        let root = Path::new(SPARE);
        build_image_base(k, root, plan)?;
        root
    };
    for (b, &fd) in plan.binds.iter().zip(mounts) {
        let target = root.join(b.target.strip_prefix("/").unwrap_or(&b.target));
        create_path(k, root, &b.target, b.file)?;
        k.move_mount(fd, &target)?;
        // A clone of a shared mount is its peer: private, the host's mounts and unmounts under
        // it reach no sandbox (nor visit each of them).
        k.mount("none", &target, None, MountFlags::PRIVATE, None)?;
        k.mount("none", &target, None, ro(), None)?;
    }
    add_tmp(k, root, plan.tmp, tmp_mount)?;
    if plan.on_base {
        return Ok(());
    }
    pivot(k, root)
}

/// The base of an image's root at `root`: none of the system tree (the image has its own), the
/// plan's top-level links, `/proc` and `/dev`.
fn build_image_base(k: &dyn Kernel, root: &Path, plan: &RootPlan) -> io::Result<()> {
    build_base(
        k,
        &Base {
            mountpoint: root.into(),
            binds: Vec::new(),
            symlinks: plan.symlinks.clone(),
            dirs: Vec::new(),
        },
    )
}

/// Makes the template's root on the thread's own copy of the host's mount namespace: the base,
/// pivoted into and read-only. Each sandbox then enters the template and copies it (`setns`, then
/// `unshare`), so it starts on this root: no `pivot_root` of its own, which visits every thread
/// on the host, and no base of its own to build.
pub fn build_template(k: &dyn Kernel, base: &Base) -> io::Result<()> {
    build_system(k, base)?;
    pivot(k, &base.mountpoint)
}

/// The root's template (see [`build_template`]): its mount namespace, and its root in it.
/// `setns` puts a process at the namespace's own root, which is the template's only when the
/// server's root is the namespace's: a server in a `chroot` (or started on a bind of `/`) must
/// also be taken to `root`, which a sandbox does with `fchdir` and `chroot` right after `setns`.
pub struct Template {
    pub ns: std::os::fd::OwnedFd,
    pub root: std::os::fd::OwnedFd,
}

/// Makes the template (see [`build_template`]) on a thread of its own, which leaves the host's
/// mount namespace for a copy of it; the caller's threads stay where they are. The namespace
/// lives as long as the [`Template`]'s descriptors. Needs root.
pub fn make_template(base: &Base) -> io::Result<Template> {
    let base = base.clone();
    std::thread::Builder::new()
        .name("root-template".into())
        .spawn(move || {
            let k = crate::kernel::LinuxKernel;
            // A mount namespace of this thread's own (and with it its own root and working
            // directory), which dies with the thread unless a descriptor holds it.
            k.unshare(crate::kernel::Namespaces(
                libc::CLONE_NEWNS | libc::CLONE_FS,
            ))?;
            let ns = std::fs::File::open("/proc/thread-self/ns/mnt")?;
            build_template(&k, &base)?;
            let root = rustix::fs::open(
                "/",
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            Ok(Template {
                ns: ns.into(),
                root,
            })
        })?
        .join()
        .map_err(|_| io::Error::other("the thread making the root's template panicked"))?
}

/// Mounts `/tmp` under `root`.
fn add_tmp(k: &dyn Kernel, root: &Path, tmp: Tmp, tmp_mount: Option<RawFd>) -> io::Result<()> {
    match (tmp, tmp_mount) {
        (Tmp::Mount, Some(fd)) => k.move_mount(fd, &root.join("tmp")),
        (Tmp::Mount, None) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no mount was passed for /tmp",
        )),
        (Tmp::Tmpfs { mb }, _) => k.mount(
            "tmpfs",
            &root.join("tmp"),
            Some("tmpfs"),
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(&format!("size={mb}m,mode=1777")),
        ),
    }
}

/// Makes `root` the root of this mount namespace, lets the old one go and makes the new one
/// read-only.
fn pivot(k: &dyn Kernel, root: &Path) -> io::Result<()> {
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
    )
}

/// Detached copies (`open_tree`) of `binds`' sources, for [`build_in_template`]: made by the
/// server, which can reach them. A source that is a symbolic link is refused, not followed.
pub fn detached_trees(binds: &[Bind]) -> io::Result<Vec<std::os::fd::OwnedFd>> {
    use rustix::mount::OpenTreeFlags;
    binds
        .iter()
        .map(|b| {
            rustix::mount::open_tree(
                rustix::fs::CWD,
                &b.source,
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("{}: {e}", b.source.display()),
                )
            })
        })
        .collect()
}

/// Builds what every root shares on `base.mountpoint`: the tmpfs, the top-level links, `base`'s
/// binds, a fresh `/proc` and a minimal `/dev`. Runs inside the new mount and PID namespaces.
pub fn build_base(k: &dyn Kernel, base: &Base) -> io::Result<()> {
    build_system(k, base)?;
    mount_proc(k, &base.mountpoint.join("proc"))
}

/// The base without `/proc`, which belongs to a PID namespace.
fn build_system(k: &dyn Kernel, base: &Base) -> io::Result<()> {
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
    // Read-only: nothing under /dev is written but its devices, which are mounts of their own.
    k.mount(
        "none",
        &dev,
        None,
        MountFlags::REMOUNT
            | MountFlags::BIND
            | MountFlags::RDONLY
            | MountFlags::NOSUID
            | MountFlags::NOEXEC,
        None,
    )?;
    Ok(())
}

/// A fresh `/proc` at `proc`, for this process's PID namespace, with its sensitive files masked
/// and its system subtrees read-only.
pub fn mount_proc(k: &dyn Kernel, proc: &Path) -> io::Result<()> {
    // hidepid=2: the function sees only processes of its own uid, not PID 1 (whose command line
    // would name the server's binary) nor anything else that runs as root.
    k.mount(
        "proc",
        proc,
        Some("proc"),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some("hidepid=2"),
    )?;
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
        let base = test_base();
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

    /// A base with one tree of the system, a top-level link and a loader directory.
    fn test_base() -> Base {
        Base {
            mountpoint: "/run/root".into(),
            binds: vec![Bind {
                source: "/sysroot/usr".into(),
                target: "/usr".into(),
                file: false,
            }],
            symlinks: vec![("bin".into(), "usr/bin".into())],
            dirs: vec!["/var/task/lib".into()],
        }
    }

    fn function_plan(on_base: bool) -> RootPlan {
        RootPlan {
            mountpoint: "/run/root".into(),
            binds: vec![
                Bind {
                    source: "/data/code/trees/abc".into(),
                    target: "/var/task".into(),
                    file: false,
                },
                Bind {
                    source: "/data/opt".into(),
                    target: "/opt".into(),
                    file: false,
                },
            ],
            symlinks: vec![("bin".into(), "usr/bin".into())],
            tmp: Tmp::Mount,
            on_base,
        }
    }

    #[test]
    fn the_template_is_the_base_pivoted_into_without_a_proc() {
        let k = RecordingKernel::new();
        let base = test_base();
        build_template(&k, &base).unwrap();
        let calls = k.calls();
        assert!(
            matches!(&calls[0], Call::Mount { target, flags, .. } if target == Path::new("/") && *flags == (libc::MS_REC | libc::MS_PRIVATE))
        );
        assert!(calls.contains(&Call::CreateDir("/run/root/var/task/lib".into())));
        // /proc belongs to each sandbox's PID namespace: not in the template.
        assert!(
            !calls
                .iter()
                .any(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "proc"))
        );
        // /dev is read-only (its devices are mounts of their own).
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, flags, .. } if target == Path::new("/run/root/dev") && flags & libc::MS_REMOUNT != 0 && flags & libc::MS_RDONLY != 0)));
        assert!(calls.contains(&Call::PivotRoot(
            "/run/root".into(),
            "/run/root/oldroot".into()
        )));
        // Nothing of the host is left, not even the old root's mountpoint; the root is read-only.
        let n = calls.len();
        assert_eq!(calls[n - 3], Call::UmountDetach("/oldroot".into()));
        assert_eq!(calls[n - 2], Call::RemoveDir("/oldroot".into()));
        assert!(
            matches!(&calls[n - 1], Call::Mount { target, flags, .. } if target == Path::new("/") && flags & libc::MS_RDONLY != 0)
        );
    }

    #[test]
    fn a_sandbox_on_the_template_attaches_its_trees_in_place_without_pivoting() {
        let k = RecordingKernel::new();
        mount_proc(&k, Path::new("/proc")).unwrap();
        build_in_template(&k, &function_plan(true), &[7, 8], Some(9)).unwrap();
        let calls = k.calls();
        assert!(
            matches!(&calls[0], Call::Mount { target, fstype: Some(t), .. } if target == Path::new("/proc") && t == "proc")
        );
        let task = calls
            .iter()
            .position(|c| *c == Call::MoveMount(7, "/var/task".into()))
            .expect("the code attached");
        assert!(
            matches!(&calls[task + 1], Call::Mount { target, flags, .. } if target == Path::new("/var/task") && *flags == libc::MS_PRIVATE)
        );
        assert!(
            matches!(&calls[task + 2], Call::Mount { target, flags, .. } if target == Path::new("/var/task") && flags & libc::MS_RDONLY != 0 && flags & libc::MS_NOSUID != 0)
        );
        assert!(calls.contains(&Call::MoveMount(8, "/opt".into())));
        assert!(calls.contains(&Call::MoveMount(9, "/tmp".into())));
        assert!(!calls.iter().any(|c| matches!(c, Call::PivotRoot(..))));

        // One mount per tree, or nothing is attached.
        let k = RecordingKernel::new();
        let e = build_in_template(&k, &function_plan(true), &[7], Some(9)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(k.calls().is_empty());
    }

    #[test]
    fn an_image_on_the_template_gets_a_root_of_its_own_and_pivots() {
        let k = RecordingKernel::new();
        build_in_template(&k, &function_plan(false), &[7, 8], Some(9)).unwrap();
        let calls = k.calls();
        // A fresh tmpfs on the template's empty /tmp, with its own /proc and /dev.
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, fstype: Some(t), .. } if target == Path::new("/tmp") && t == "tmpfs")));
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, fstype: Some(t), .. } if target == Path::new("/tmp/proc") && t == "proc")));
        assert!(calls.contains(&Call::Symlink("usr/bin".into(), "/tmp/bin".into())));
        assert!(calls.contains(&Call::MoveMount(7, "/tmp/var/task".into())));
        assert!(calls.contains(&Call::MoveMount(9, "/tmp/tmp".into())));
        assert!(calls.contains(&Call::PivotRoot("/tmp".into(), "/tmp/oldroot".into())));
    }
}
