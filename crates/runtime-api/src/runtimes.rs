//! Which runtimes this host can serve, and how each one starts.
//!
//! `provided.*` runs the function's own `bootstrap`; `pythonX.Y` and `nodejsNN.x` run Lamina's
//! runtime clients (`bootstrap.py`, `index.mjs`, installed under `/var/runtime`) on the host's
//! interpreter of exactly that version.

use std::path::{Path, PathBuf};

pub const PYTHON_CLIENT: &str = include_str!("runtimes/bootstrap.py");
pub const NODE_CLIENT: &str = include_str!("runtimes/index.mjs");

/// A runtime this host serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// Lambda's identifier, e.g. `python3.11`.
    pub id: String,
    /// The interpreter, for managed runtimes.
    pub interpreter: Option<PathBuf>,
}

/// Looks for interpreters in `/usr/bin` and `/usr/local/bin` (both visible inside sandboxes).
pub fn detect() -> Vec<Offered> {
    let mut out = vec![
        Offered {
            id: "provided.al2".into(),
            interpreter: None,
        },
        Offered {
            id: "provided.al2023".into(),
            interpreter: None,
        },
    ];
    for minor in 9..=14 {
        for dir in ["/usr/bin", "/usr/local/bin"] {
            let p = Path::new(dir).join(format!("python3.{minor}"));
            if p.exists() {
                out.push(Offered {
                    id: format!("python3.{minor}"),
                    interpreter: Some(p),
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
        vec![interpreter, "/var/runtime/bootstrap.py".into()]
    } else {
        vec![interpreter, "/var/runtime/index.mjs".into()]
    }
}
