//! Builds `lamina-init` (crates/init), the sandboxes' first process, as a small static binary
//! with the workspace's `init` profile, for `src/init_exe.rs` to carry inside this crate.
//!
//! It is a nested `cargo build` with a target directory of its own (`lamina-init.build` beside the
//! outer build's `build` directory, shared by that profile's builds), and the
//! target named explicitly, so that `+crt-static` applies to the binary and not to the build
//! scripts and proc-macros it needs. The outer build's flags for the target come along (a
//! reproducible release remaps paths), and its job server is shared (`CARGO_MAKEFLAGS`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .parent()
        .and_then(Path::parent)
        .expect("crates/server sits two levels under the workspace");
    for watched in ["crates/init", "crates/sandbox", "Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let out = PathBuf::from(env("OUT_DIR"));
    let target = env("TARGET");
    // Shared by every build of this profile (`OUT_DIR` is `<profile>/build/<crate>-<hash>/out`):
    // clippy's and the tests' builds of the server then build `lamina-init` once between them.
    // Not named `lamina-init`: a `cargo build` of the whole workspace puts that binary there.
    let target_dir = match out.ancestors().nth(2) {
        Some(build) if build.file_name() == Some("build".as_ref()) => {
            build.with_file_name("lamina-init.build")
        }
        _ => out.join("init"),
    };
    let mut cargo = Command::new(env("CARGO"));
    cargo
        .current_dir(workspace)
        .args([
            "build",
            "--locked",
            "--quiet",
            "-p",
            "lamina-init",
            "--profile",
            "init",
        ])
        .arg("--target")
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags());
    // What the outer build sets for itself (clippy's wrapper, its directory).
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cargo.env_remove(var);
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build lamina-init: {e}"));
    assert!(status.success(), "building lamina-init failed ({status})");
    let built = target_dir.join(&target).join("init").join("lamina-init");
    std::fs::copy(&built, out.join("lamina-init"))
        .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
}

/// The outer build's flags for this target (a reproducible release's path remapping, say), and
/// static linking without position independence: a static PIE relocates itself at every start,
/// dirtying about 20 KiB of its data in each sandbox (see ARCHITECTURE.md).
fn rustflags() -> String {
    let mut flags: Vec<String> = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .unwrap_or_default()
        .split('\x1f')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    flags.push("-Ctarget-feature=+crt-static".into());
    flags.push("-Crelocation-model=static".into());
    flags.join("\x1f")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}
