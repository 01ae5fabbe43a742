//! `lamina server --check`: what isolation this host offers, one line per feature, with what to
//! change when one is missing. Read from `/proc` and `/sys` under a root directory (`/` on a
//! real host, a fake tree in tests).

use std::path::Path;

use crate::cgroup::Layout;
use crate::kernel::Kernel;

/// How a feature stands on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Present and used.
    Ok,
    /// Missing: functions run with less isolation, or not at all.
    Missing,
    /// Not needed in this mode, or not used by this version.
    Note,
}

/// One feature's finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub feature: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to change, when something is missing.
    pub fix: Option<String>,
}

fn check(
    feature: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: Option<&str>,
) -> Check {
    Check {
        feature,
        status,
        detail: detail.into(),
        fix: fix.map(str::to_owned),
    }
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

fn number(root: &Path, rel: &str) -> Option<u64> {
    read(root, rel)?.trim().parse().ok()
}

/// Every finding, for a server running as root (`root_user`) on the host under `root`.
pub fn run(k: &dyn Kernel, root: &Path, root_user: bool) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(if root_user {
        check("privileges", Status::Ok, "root: a uid of its own per environment", None)
    } else {
        check(
            "privileges",
            Status::Note,
            "not root: environments share one uid inside user namespaces, without cgroup limits or disk-backed /tmp",
            Some("run the server as root for per-environment uids, cgroups and /tmp on disk"),
        )
    });

    let max_userns = number(root, "proc/sys/user/max_user_namespaces").unwrap_or(0);
    let debian_clone = number(root, "proc/sys/kernel/unprivileged_userns_clone");
    let apparmor = number(
        root,
        "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    );
    out.push(if root_user {
        check("user namespaces", Status::Note, "not needed as root", None)
    } else if max_userns == 0 {
        check("user namespaces", Status::Missing, "user.max_user_namespaces is 0: functions cannot run", Some("sysctl -w user.max_user_namespaces=15000, or run as root"))
    } else if debian_clone == Some(0) {
        check("user namespaces", Status::Missing, "kernel.unprivileged_userns_clone is 0: functions cannot run", Some("sysctl -w kernel.unprivileged_userns_clone=1, or run as root"))
    } else if apparmor == Some(1) {
        check("user namespaces", Status::Missing, "AppArmor restricts unprivileged user namespaces: functions cannot run", Some("sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, give lamina an AppArmor profile with `userns`, or run as root"))
    } else {
        check("user namespaces", Status::Ok, format!("allowed (up to {max_userns})"), None)
    });

    let v2 = root.join("sys/fs/cgroup/cgroup.controllers").exists();
    let version = if v2 { "v2 (unified)" } else { "v1 or hybrid" };
    out.push(match (root_user, Layout::detect(k, &root.join("sys/fs/cgroup"))) {
        (true, Some(layout)) => check("cgroups", Status::Ok, format!("{}: memory, CPU, pids and freezer limits", layout.name()), None),
        (true, None) => check("cgroups", Status::Missing, format!("{version}, but the memory, cpu and pids controllers are not all available: limits are NOT enforced"), Some("enable the memory, cpu and pids controllers (cgroup v2: boot with systemd.unified_cgroup_hierarchy=1; v1: mount them under /sys/fs/cgroup)")),
        (false, _) => check("cgroups", Status::Missing, format!("{version}; not used without root: memory, CPU and process limits are NOT enforced"), Some("run the server as root")),
    });

    let seccomp = read(root, "proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    out.push(
        if seccomp.contains("errno") && seccomp.contains("kill_process") {
            check(
                "seccomp",
                Status::Ok,
                "filters with errno and kill_process actions",
                None,
            )
        } else {
            check(
                "seccomp",
                Status::Missing,
                "no seccomp filter support: functions cannot run",
                Some("use a kernel built with CONFIG_SECCOMP_FILTER"),
            )
        },
    );

    // e2fsprogs' mkfs.ext4 makes each size's empty image once, and its debugfs empties the
    // image's root.
    let e2fsprogs = ["mkfs.ext4", "debugfs"]
        .iter()
        .all(|tool| crate::scratch::e2fsprogs_in(root, tool).is_some());
    let loops = root.join("dev/loop-control").exists();
    out.push(match (root_user, loops, e2fsprogs) {
        (true, true, true) => check(
            "/tmp on disk",
            Status::Ok,
            "an ext4 filesystem on a loop device per environment",
            None,
        ),
        (true, false, _) => check(
            "/tmp on disk",
            Status::Missing,
            "no /dev/loop-control: /tmp is a tmpfs counted as the function's memory",
            Some("load the loop module (modprobe loop)"),
        ),
        (true, true, false) => check(
            "/tmp on disk",
            Status::Missing,
            "no mkfs.ext4 or no debugfs: /tmp is a tmpfs counted as the function's memory",
            Some("install e2fsprogs (on Alpine, e2fsprogs-extra too)"),
        ),
        (false, _, _) => check(
            "/tmp on disk",
            Status::Note,
            "needs root: /tmp is a tmpfs counted as the function's memory",
            Some("run the server as root"),
        ),
    });

    let nft = ["usr/sbin/nft", "sbin/nft"]
        .iter()
        .any(|p| root.join(p).exists());
    let forwarding = number(root, "proc/sys/net/ipv4/ip_forward") == Some(1);
    out.push(match (root_user, nft) {
        (true, true) => check(
            "network",
            Status::Ok,
            format!(
                "egress through a veth pair per environment and the nftables table inet lamina (IPv4 forwarding is {}; the server turns it on)",
                if forwarding { "on" } else { "off" }
            ),
            None,
        ),
        (true, false) => check(
            "network",
            Status::Missing,
            "nft is not installed: functions get loopback only",
            Some("apt-get install nftables (or the distribution's nftables package)"),
        ),
        (false, _) => check(
            "network",
            Status::Note,
            "not root: functions get loopback only (egress needs a firewall only root can set)",
            Some("run the server as root for egress and VPCs"),
        ),
    });
    let overlay = read(root, "proc/filesystems").is_some_and(|f| f.contains("overlay"));
    out.push(check(
        "container images",
        Status::Ok,
        format!(
            "image roots are merged with hard links; no overlay filesystem needed (overlay {})",
            if overlay { "available" } else { "absent" }
        ),
        None,
    ));
    out
}

/// The findings for this host and this process's privileges.
pub fn run_here() -> Vec<Check> {
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    run(&crate::kernel::LinuxKernel, Path::new("/"), root_user)
}

/// Where the server keeps its state, `dir`: on a disk, each environment's disk-backed `/tmp` is
/// a file there; on a tmpfs those files would be memory, so `/tmp` is a tmpfs instead (see
/// `scratch`).
pub fn data_dir(dir: &Path) -> Check {
    match crate::scratch::in_memory(dir) {
        Ok(false) => check(
            "data directory",
            Status::Ok,
            format!("{} is on a disk", dir.display()),
            None,
        ),
        Ok(true) => check(
            "data directory",
            Status::Missing,
            format!(
                "{} is on a filesystem kept in memory: /tmp is a tmpfs counted as the function's memory",
                dir.display()
            ),
            Some("put the data directory on a disk (--data-dir, or data_dir in the configuration)"),
        ),
        Err(e) => check(
            "data directory",
            Status::Missing,
            format!("{}: {e}", dir.display()),
            Some("give --data-dir a directory the server can create"),
        ),
    }
}

/// Whether functions can run at all with these findings.
pub fn can_run(checks: &[Check]) -> bool {
    !checks
        .iter()
        .any(|c| c.status == Status::Missing && c.detail.contains("functions cannot run"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::RecordingKernel;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn find<'a>(c: &'a [Check], feature: &str) -> &'a Check {
        c.iter().find(|c| c.feature == feature).unwrap()
    }

    #[test]
    fn rootless_hosts_are_told_what_blocks_user_namespaces() {
        let k = RecordingKernel::new();
        let host = tree(&[
            ("proc/sys/user/max_user_namespaces", "15000\n"),
            (
                "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
                "1\n",
            ),
            (
                "proc/sys/kernel/seccomp/actions_avail",
                "kill_process kill_thread trap errno user_notif trace log allow\n",
            ),
        ]);
        let checks = run(&k, host.path(), false);
        let userns = find(&checks, "user namespaces");
        assert_eq!(userns.status, Status::Missing);
        assert!(
            userns
                .fix
                .as_deref()
                .unwrap()
                .contains("apparmor_restrict_unprivileged_userns=0")
        );
        assert!(!can_run(&checks));
        assert_eq!(find(&checks, "seccomp").status, Status::Ok);
    }

    #[test]
    fn a_root_host_without_loop_devices_keeps_tmp_in_memory_and_says_so() {
        let k = RecordingKernel::new();
        let host = tree(&[
            ("proc/sys/user/max_user_namespaces", "0\n"),
            (
                "proc/sys/kernel/seccomp/actions_avail",
                "kill_process errno allow\n",
            ),
            ("usr/sbin/mkfs.ext4", ""),
        ]);
        let checks = run(&k, host.path(), true);
        assert_eq!(find(&checks, "user namespaces").status, Status::Note);
        let tmp = find(&checks, "/tmp on disk");
        assert_eq!(tmp.status, Status::Missing);
        assert!(tmp.fix.as_deref().unwrap().contains("modprobe loop"));
        assert!(
            can_run(&checks),
            "root runs functions without user namespaces"
        );
    }

    #[test]
    fn tmp_on_disk_needs_both_of_e2fsprogs_tools() {
        let k = RecordingKernel::new();
        let mut files = vec![("dev/loop-control", ""), ("usr/sbin/mkfs.ext4", "")];
        let without = tree(&files);
        let tmp = find(&run(&k, without.path(), true), "/tmp on disk").clone();
        assert_eq!(tmp.status, Status::Missing, "{tmp:?}");
        assert!(tmp.fix.as_deref().unwrap().contains("e2fsprogs"), "{tmp:?}");
        files.push(("sbin/debugfs", ""));
        let with = tree(&files);
        let tmp = find(&run(&k, with.path(), true), "/tmp on disk").clone();
        assert_eq!(tmp.status, Status::Ok, "{tmp:?}");
    }

    #[test]
    fn a_data_directory_in_memory_is_reported_with_its_fix() {
        // /dev/shm is a tmpfs on every Linux host; the directory need not exist yet.
        let c = data_dir(Path::new("/dev/shm/lamina-preflight-test/data"));
        assert_eq!(c.status, Status::Missing, "{c:?}");
        assert!(
            c.detail.contains("tmpfs counted as the function's memory"),
            "{c:?}"
        );
        assert!(c.fix.as_deref().unwrap().contains("on a disk"));
        assert!(can_run(&[c]), "a /tmp in memory does not stop functions");
    }
}
