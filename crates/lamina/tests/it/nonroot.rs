//! A server that is not root still isolates functions: each runs in a user namespace of its own
//! (uid 0 inside, the server's uid outside) with no capabilities, a read-only root, no network
//! and seccomp. Cgroup limits need root and are reported as missing at start.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_functions_run_in_a_user_namespace() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let data = dir.path().join("data");
    // The checkout may sit below a directory only root can enter: run a copy of the binary
    // from a directory the unprivileged user can reach.
    let binary = dir.path().join("lamina");
    std::fs::copy(env!("CARGO_BIN_EXE_lamina"), &binary).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = ServerProcess::start_binary(
        &binary,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &data,
        &[],
    );
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    // The first start of the runtime is a plain one; later ones take its interpreter started
    // ahead (in the user namespace too): both are held to the same.
    probe_until_ahead(&c, "unprivileged", server.addr.port(), |b| {
        assert_eq!(
            b["cap_eff"], "0000000000000000",
            "uid 0 inside, but no capabilities: {b}"
        );
        assert_eq!(b["uid"], 0, "{b}");
        assert_eq!(b["mount"], "EPERM");
        assert_eq!(b["ptrace"], "EPERM");
        assert_eq!(b["write_task"], "EROFS");
        assert_eq!(b["shadow"], false);
        assert_eq!(b["host_port"], "ECONNREFUSED");
        let pids = b["pids"].as_array().unwrap();
        assert!(pids.len() <= 3, "{pids:?}");
    })
    .await;
    // Records cannot be sent into a sandbox's network without root: a subscription is answered
    // `202 Telemetry.NotSupported`, as a local Lambda answers, and the extension (whose client
    // takes that) and its function run on without them.
    crate::telemetry::function(&c, "subscribed", "telemetry").await;
    for _ in 0..2 {
        let out = invoke_json(&c, "subscribed", &serde_json::json!({})).await;
        assert_eq!(out["records"], serde_json::json!([]), "{out}");
    }
}

/// `lamina server --check` as root and as nobody: each says what works and what to change.
#[test]
fn server_check_reports_the_host_for_root_and_for_nobody() {
    let exe = env!("CARGO_BIN_EXE_lamina");
    let out = std::process::Command::new(exe)
        .args(["server", "--check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for line in [
        "ok       privileges",
        "ok       seccomp",
        "ok       cgroups",
        "functions can run on this host",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            exe,
            "server",
            "--check",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("note     privileges"), "{text}");
    assert!(text.contains("MISSING  cgroups"), "{text}");
    assert!(text.contains("-> run the server as root"), "{text}");
}
