//! Freezing and thawing one sandbox, through its group's freezer files opened once.
//!
//! An idle environment is frozen and thawed by the next invocation, so the thaw is on that
//! invocation's path: one write through a descriptor, with no path lookup and no read-back. The
//! kernel thaws synchronously on both hierarchies (v1's `freezer.state` is `THAWED`, and v2's
//! `cgroup.events` says `frozen 0`, by the time the write returns). Freezing is asynchronous:
//! the tasks stop as they next leave the kernel, so a freeze waits until the kernel reports the
//! whole group frozen.

use std::io;
use std::time::{Duration, Instant};

use super::file::CgroupFile;
use super::{Cgroup, Layout};
use crate::kernel::Kernel;

/// The freezer of one sandbox's group.
#[derive(Debug)]
pub struct Freezer {
    /// v1's `freezer.state`, v2's `cgroup.freeze`.
    control: CgroupFile,
    /// Where the state is confirmed: v1's `freezer.state` again, v2's `cgroup.events`.
    status: Option<CgroupFile>,
    values: &'static Values,
}

/// What to write, and the line that confirms a group frozen.
#[derive(Debug)]
struct Values {
    frozen: &'static str,
    thawed: &'static str,
    confirmed: &'static str,
}

const V1: Values = Values {
    frozen: "FROZEN",
    thawed: "THAWED",
    confirmed: "FROZEN",
};
const V2: Values = Values {
    frozen: "1",
    thawed: "0",
    confirmed: "frozen 1",
};

impl Freezer {
    /// Opens `cg`'s freezer files.
    pub fn new(cg: &Cgroup, k: &dyn Kernel) -> Self {
        match &cg.layout {
            Layout::V1 { .. } => Self {
                control: CgroupFile::new(cg.v1("freezer").join("freezer.state"), k, true),
                // The same file: read through the same descriptor.
                status: None,
                values: &V1,
            },
            Layout::V2 { .. } => Self {
                control: CgroupFile::new(cg.v2().join("cgroup.freeze"), k, true),
                status: Some(CgroupFile::new(cg.v2().join("cgroup.events"), k, false)),
                values: &V2,
            },
        }
    }

    /// Stops every process of the sandbox; returns once the kernel reports it frozen. A removed
    /// group is `NotFound`.
    pub fn freeze(&self, k: &dyn Kernel) -> io::Result<()> {
        self.control.write(k, self.values.frozen)?;
        let status = self.status.as_ref().unwrap_or(&self.control);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match status.has_line(k, self.values.confirmed) {
                Ok(true) => return Ok(()),
                // The fake kernel keeps only what was written.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the freezer did not settle within 2 s",
                    ));
                }
                _ => std::thread::sleep(Duration::from_micros(100)),
            }
        }
    }

    /// Lets the sandbox run again: the write returns with every task thawed.
    pub fn thaw(&self, k: &dyn Kernel) -> io::Result<()> {
        self.control.write(k, self.values.thawed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::LinuxKernel;

    /// A v2 group's freezer files as plain files, whose directory is then moved away: the
    /// freezer still reaches them, so it works through descriptors opened once, not by path.
    #[test]
    fn freezing_and_thawing_use_descriptors_opened_once() {
        let k = LinuxKernel;
        let dir = tempfile::tempdir().unwrap();
        let group = dir.path().join("lamina/env-1");
        std::fs::create_dir_all(&group).unwrap();
        std::fs::write(group.join("cgroup.freeze"), "0").unwrap();
        std::fs::write(group.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        let layout = Layout::V2 {
            root: dir.path().into(),
            subtree: false,
        };
        let cg = Cgroup {
            layout,
            rel: "lamina/env-1".into(),
        };
        let freezer = Freezer::new(&cg, &k);
        let moved = dir.path().join("elsewhere");
        std::fs::rename(&group, &moved).unwrap();

        freezer.freeze(&k).unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("cgroup.freeze")).unwrap(),
            "1"
        );
        freezer.thaw(&k).unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("cgroup.freeze")).unwrap(),
            "0"
        );

        // A freeze the kernel does not confirm is an error after 2 s.
        std::fs::write(moved.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let e = freezer.freeze(&k).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
