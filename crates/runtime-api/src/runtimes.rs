//! Which runtimes this host can serve, and how each one starts.
//!
//! `provided.*` runs the function's own `bootstrap`; `pythonX.Y` and `nodejsNN.x` run Lamina's
//! runtime clients (`bootstrap.py`, `index.cjs`, installed under `/var/runtime`) on the host's
//! interpreter of exactly that version.

use std::path::{Path, PathBuf};

pub const PYTHON_CLIENT: &str = include_str!("runtimes/bootstrap.py");
pub const NODE_CLIENT: &str = include_str!("runtimes/index.cjs");

/// A runtime this host serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// Lambda's identifier, e.g. `python3.11`.
    pub id: String,
    /// The interpreter, for managed runtimes.
    pub interpreter: Option<PathBuf>,
    /// Whether the system tree holds the runtime client compiled for this interpreter
    /// ([`compiled_client`]), which it then runs instead of the source.
    pub compiled: bool,
}

/// Where the Python client compiled for `id` lies in the system tree. A script run by path is
/// never cached as bytecode, and the root is read-only: compiling the client took 2 ms of
/// every interpreter's start.
pub fn compiled_client(id: &str) -> String {
    format!("/var/runtime/bootstrap.{id}.pyc")
}

/// Looks for interpreters in `/usr/bin` and `/usr/local/bin` (both visible inside sandboxes).
pub fn detect() -> Vec<Offered> {
    let mut out = vec![
        Offered {
            id: "provided.al2".into(),
            interpreter: None,
            compiled: false,
        },
        Offered {
            id: "provided.al2023".into(),
            interpreter: None,
            compiled: false,
        },
    ];
    for minor in 9..=14 {
        for dir in ["/usr/bin", "/usr/local/bin"] {
            let p = Path::new(dir).join(format!("python3.{minor}"));
            if p.exists() {
                out.push(Offered {
                    id: format!("python3.{minor}"),
                    interpreter: Some(p),
                    compiled: false,
                });
                break;
            }
        }
    }
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let node = Path::new(dir).join("node");
        if let Some(major) = node_major(&node) {
            out.push(Offered {
                id: format!("nodejs{major}.x"),
                interpreter: Some(node),
                compiled: false,
            });
            break;
        }
    }
    out
}

fn node_major(node: &Path) -> Option<u32> {
    let out = std::process::Command::new(node)
        .arg("--version")
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?;
    v.trim().strip_prefix('v')?.split('.').next()?.parse().ok()
}

/// The command line of a function's process for `runtime`.
pub fn argv(runtime: &Offered, bootstrap_in_task: bool) -> Vec<String> {
    if runtime.id.starts_with("provided") {
        let path = if bootstrap_in_task {
            "/var/task/bootstrap"
        } else {
            "/opt/bootstrap"
        };
        return vec![path.into()];
    }
    let interpreter = runtime
        .interpreter
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if runtime.id.starts_with("python") {
        let client = if runtime.compiled {
            compiled_client(&runtime.id)
        } else {
            "/var/runtime/bootstrap.py".into()
        };
        vec![interpreter, client]
    } else {
        vec![interpreter, "/var/runtime/index.cjs".into()]
    }
}

/// Whether a variable takes effect when a process starts rather than when it is read: the
/// dynamic loader's and the C library's (`LD_*`, `GLIBC_TUNABLES`, `MALLOC_*`), the locale's and
/// the time zone's, `HOME` (Python's user site, node's module paths), and the interpreters' own
/// (`PYTHON*`, `NODE_*`, `UV_*`, OpenSSL's). An interpreter started ahead has these from its
/// start, so a launch may use it only when it has the same.
pub fn startup_sensitive(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "LD_",
        "LC_",
        "PYTHON",
        "NODE_",
        "UV_",
        "OPENSSL_",
        "SSL_CERT_",
        "MALLOC_",
        "GLIBC_",
        "GCONV_",
        "NSS_",
    ];
    matches!(
        name,
        "LANG"
            | "LANGUAGE"
            | "LOCPATH"
            | "TZ"
            | "TZDIR"
            | "HOME"
            // Read by the Node.js client as it starts (whether `awslambda` is global).
            | "AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA"
    ) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The interpreter a managed runtime's launch could take started ahead: its command line and
/// its start-time variables (`env`, the launch's, sorted). `None` for custom runtimes, which run
/// the function's own `bootstrap`, and for a function that sets any start-time variable of its
/// own (`own`): an interpreter started ahead holds nothing of a tenant, and such a variable may
/// name the function's files (`LD_PRELOAD`, `NODE_OPTIONS=--require …`), which a start in the
/// empty base would miss.
pub(crate) fn zygote_kind(
    runtime: &Offered,
    argv: &[String],
    env: &[(String, String)],
    own: &std::collections::BTreeMap<String, String>,
) -> Option<crate::premade::Kind> {
    runtime.interpreter.as_ref()?;
    if own.keys().any(|name| startup_sensitive(name)) {
        return None;
    }
    Some(crate::premade::Kind {
        argv: argv.to_vec(),
        env: env
            .iter()
            .filter(|(name, _)| startup_sensitive(name))
            .cloned()
            .collect(),
    })
}

/// Whether a custom runtime's `bootstrap` comes from the function's code (else from a layer's
/// `/opt`). Only the entry itself is looked at (a link is not followed: the sandbox resolves it
/// in its own root), so the server never follows a function's link onto the host.
pub fn bootstrap_in_task(code: &Path, opt: Option<&Path>) -> bool {
    has_entry(code, "bootstrap") || !opt.is_some_and(|o| has_entry(o, "bootstrap"))
}

fn has_entry(dir: &Path, name: &str) -> bool {
    open_beneath(dir, name, rustix::fs::OFlags::PATH).is_ok()
}

/// Opens `path` (with `flags`) beneath the directory `dir` of a function's tree, following no
/// link on the way, `dir` included: the server never follows a function's link onto the host.
pub(crate) fn open_beneath(
    dir: &Path,
    path: &str,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::openat2(
        &dir,
        path,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_variables_read_at_a_process_start_decide_the_interpreter() {
        for name in [
            "LD_LIBRARY_PATH",
            "PYTHONPATH",
            "NODE_OPTIONS",
            "LANG",
            "LC_ALL",
            "TZ",
            "HOME",
        ] {
            assert!(startup_sensitive(name), "{name}");
        }
        for name in ["PATH", "AWS_REGION", "_HANDLER", "MY_SETTING", "TMPDIR"] {
            assert!(!startup_sensitive(name), "{name}");
        }
        let python = Offered {
            id: "python3.11".into(),
            interpreter: Some("/usr/bin/python3.11".into()),
            compiled: false,
        };
        let env = |extra: &str| {
            vec![
                ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), extra.to_owned()),
                ("LANG".to_owned(), "en_US.UTF-8".to_owned()),
                ("PYTHONPATH".to_owned(), "/var/runtime".to_owned()),
            ]
        };
        let argv = argv(&python, false);
        let none = Default::default();
        // Two functions that differ only in what is read later share a kind.
        assert_eq!(
            zygote_kind(&python, &argv, &env("a"), &none),
            zygote_kind(&python, &argv, &env("b"), &none)
        );
        let kind = zygote_kind(&python, &argv, &env("a"), &none).unwrap();
        assert_eq!(kind.env.len(), 2);
        // A function that sets a start-time variable of its own gets none.
        let own = [("NODE_OPTIONS".to_owned(), "--require /opt/x.js".to_owned())].into();
        assert!(zygote_kind(&python, &argv, &env("a"), &own).is_none());
        let own = [("GREETING".to_owned(), "hi".to_owned())].into();
        assert!(zygote_kind(&python, &argv, &env("a"), &own).is_some());
        let custom = Offered {
            id: "provided.al2023".into(),
            interpreter: None,
            compiled: false,
        };
        let bootstrap = ["/var/task/bootstrap".to_owned()];
        assert!(zygote_kind(&custom, &bootstrap, &env("a"), &none).is_none());
    }

    #[test]
    fn a_bootstrap_entry_is_found_without_following_it() {
        let code = tempfile::tempdir().unwrap();
        let opt = tempfile::tempdir().unwrap();
        std::fs::write(opt.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        assert!(!bootstrap_in_task(code.path(), Some(opt.path())));
        // The function's own entry wins, whatever it links to (the sandbox resolves it).
        std::os::unix::fs::symlink("/var/task/bin/app", code.path().join("bootstrap")).unwrap();
        assert!(bootstrap_in_task(code.path(), Some(opt.path())));
        std::fs::remove_file(code.path().join("bootstrap")).unwrap();
        std::fs::write(code.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        assert!(bootstrap_in_task(code.path(), Some(opt.path())));
    }
}
