//! A server started in a `chroot` (a container's entrypoint, an initramfs, a supervisor that
//! chroots) runs its functions on their own roots: a sandbox that enters the root's template
//! with `setns` lands at the mount namespace's own root, below the server's, and must be taken
//! to the template's.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_in_a_chroot_runs_functions_on_their_own_roots() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let data = dir.path().join("data");
    // A sandbox left at the namespace's root would make its mountpoints in the host's tree.
    let host_task = std::path::Path::new("/var/task");
    let had_task = host_task.exists();
    // The host's tree bound at `root`, in a mount namespace that dies with the server: the
    // same paths, one directory down from the namespace's root.
    let script = r#"mount --rbind / "$0" && exec chroot "$0" "$@""#;
    let root_arg = root.to_str().unwrap();
    let mut server = ServerProcess::start_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_lamina")),
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            root_arg,
        ],
        &data,
        &[],
    );
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    // The first start builds the function's root; a later one takes an interpreter started
    // ahead on the template: both on the template's root, not the namespace's.
    probe_until_ahead(&c, "chrooted", server.addr.port(), |b| {
        assert_eq!(b["task_files"], serde_json::json!(["probe.py"]), "{b}");
        let task_mounts = b["task_mount"].as_array().unwrap();
        assert_eq!(task_mounts.len(), 1, "/var/task mounted once: {b}");
        assert_no_host_dirs(b);
        assert_ne!(b["uid"], 0, "{b}");
        assert_eq!(b["mount"], "EPERM", "{b}");
        assert_eq!(b["write_task"], "EROFS", "{b}");
    })
    .await;
    server.stop();
    assert!(
        had_task || !host_task.exists(),
        "a sandbox made /var/task in the host's root"
    );
}
