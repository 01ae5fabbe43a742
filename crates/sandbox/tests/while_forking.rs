//! What the server makes on its own threads while others of its threads fork children: every
//! `/tmp` starts empty and open to all, and the root's template is made. A test binary of its
//! own: its children hold copies of every descriptor of the process (a lock file's `flock`, a
//! mount's directory, a file open for writing) for a while, which would disturb any other test
//! running beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use lamina_sandbox::rootfs::{Base, Bind, make_template};
use lamina_sandbox::scratch::ScratchPool;

/// Forks a child every `every` that holds copies of all the process's descriptors for `hold`,
/// as a child the server starts (mkfs, nft, any `Command`) holds them until it execs; stops, and
/// reaps the last ones, when dropped (a failed assertion included).
struct Forker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Forker {
    fn start(every: Duration, hold: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            let hold_us = u32::try_from(hold.as_micros()).expect("a hold under an hour");
            move || {
                let mut forked = 0;
                let mut children: Vec<libc::pid_t> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: the child calls only async-signal-safe functions, then exits.
                    let pid = unsafe { libc::fork() };
                    if pid == 0 {
                        // SAFETY: in the forked child, async-signal-safe calls only.
                        unsafe {
                            libc::usleep(hold_us);
                            libc::_exit(0);
                        }
                    }
                    if pid > 0 {
                        forked += 1;
                        children.push(pid);
                    }
                    // SAFETY: polls children of this thread's own, by pid.
                    children.retain(|&c| unsafe {
                        libc::waitpid(c, std::ptr::null_mut(), libc::WNOHANG) == 0
                    });
                    std::thread::sleep(every);
                }
                for c in children {
                    // SAFETY: waits for a child of this thread's own.
                    unsafe { libc::waitpid(c, std::ptr::null_mut(), 0) };
                }
                forked
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops forking; how many children were forked.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

impl Drop for Forker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn every_tmp_starts_empty_and_open_to_all_while_children_are_forked() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test makes loop-backed filesystems: run it as root"
    );
    let forker = Forker::start(Duration::from_millis(2), Duration::from_millis(300));
    let mut wrong = Vec::new();
    // Each pool makes its own template image: ten chances for a child to hold its mount.
    for round in 0..10 {
        let dir = tempfile::tempdir_in("/var/tmp").expect("a directory in /var/tmp");
        let pool = ScratchPool::start(&dir.path().join("scratch"), 0, 16).expect("a pool");
        let tmp = pool.take(16).expect("a /tmp");
        let root = rustix::fs::openat(
            &tmp,
            c".",
            rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("the root");
        let mode = rustix::fs::fstat(&root).expect("fstat").st_mode & 0o7777;
        let names: Vec<String> = rustix::fs::Dir::read_from(&root)
            .expect("readdir")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n != "." && n != "..")
            .collect();
        // Sticky and world-writable, and no lost+found.
        if mode != 0o1777 || !names.is_empty() {
            wrong.push(format!("round {round}: mode {mode:o}, entries {names:?}"));
        }
    }
    let forked = forker.finish();
    assert!(forked > 10, "the children were forked ({forked})");
    assert_eq!(wrong, Vec::<String>::new());
}

#[test]
fn the_roots_template_is_made_while_children_are_forked() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test makes mount namespaces: run it as root"
    );
    let dir = tempfile::tempdir().expect("a directory");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).expect("a tree to bind");
    let file = dir.path().join("hosts");
    std::fs::write(&file, "127.0.0.1 localhost\n").expect("a file to bind");
    let forker = Forker::start(Duration::ZERO, Duration::from_millis(10));
    let mut failed = Vec::new();
    // Files are made for mountpoints (the devices, file binds) on mounts made read-only at the
    // end: a child forked while one is open for writing would keep that mount writable.
    for round in 0..500 {
        let mountpoint = dir.path().join(format!("root{round}"));
        std::fs::create_dir(&mountpoint).expect("a mountpoint");
        let base = Base {
            mountpoint,
            binds: vec![
                Bind {
                    source: tree.clone(),
                    target: "/var/runtime".into(),
                    file: false,
                },
                Bind {
                    source: file.clone(),
                    target: "/etc/hosts".into(),
                    file: true,
                },
                Bind {
                    source: file.clone(),
                    target: "/etc/resolv.conf".into(),
                    file: true,
                },
            ],
            symlinks: vec![("bin".into(), "var/runtime/bin".into())],
            dirs: vec!["/var/task/lib".into()],
        };
        if let Err(e) = make_template(&base) {
            failed.push(format!("round {round}: {e}"));
        }
    }
    let forked = forker.finish();
    assert!(forked > 10, "the children were forked ({forked})");
    assert_eq!(failed, Vec::<String>::new());
}
