//! The registry with signature verification on: pushes need the `AWS` user and a password from
//! `aws ecr get-login-password`, and each account sees only its own repositories.

use std::process::Command;

use crate::helpers::*;
use crate::images::{Aws, busybox_image, login, skopeo};
use crate::sdk_auth::AUTH;

/// skopeo's push with `creds` (`None`: anonymous); its stderr when it fails.
fn push_as(layout: &std::path::Path, dest: &str, creds: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(skopeo());
    cmd.args(["copy", "--dest-tls-verify=false"]);
    match creds {
        Some(c) => cmd.args(["--dest-creds", c]),
        None => cmd.arg("--dest-no-creds"),
    };
    let out = cmd
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn pushes_need_an_ecr_password_and_accounts_see_only_their_repositories() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("lamina.toml");
    std::fs::write(&config, AUTH).unwrap();
    let server = ServerProcess::start(
        &work.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let host = server.addr.to_string();
    let mut alice = Aws::new(server.endpoint());
    alice.key = ("AKIDALICE", "alice-secret");
    let mut bob = Aws::new(server.endpoint());
    bob.key = ("AKIDBOB", "bob-secret");
    let mut stranger = Aws::new(server.endpoint());
    stranger.key = ("AKIDNOBODY", "nope");

    let e = stranger.run(&["ecr", "get-login-password"]).unwrap_err();
    assert!(e.contains("UnrecognizedClientException"), "{e}");
    alice.ok(&["ecr", "create-repository", "--repository-name", "secure"]);
    let layout = work.path().join("layout");
    busybox_image(&layout, "v1", "auth");
    let dest = format!("{host}/secure:v1");

    let e = push_as(&layout, &dest, None).unwrap_err();
    assert!(
        e.to_lowercase().contains("unauthorized") || e.contains("401"),
        "{e}"
    );
    let e = push_as(
        &layout,
        &dest,
        Some("AWS:111111111111.us-east-1.9999999999.00"),
    )
    .unwrap_err();
    assert!(
        e.to_lowercase().contains("unauthorized") || e.contains("401"),
        "{e}"
    );
    // Bob's valid password acts for Bob's account, which has no such repository.
    let e = push_as(&layout, &dest, Some(&format!("AWS:{}", login(&bob)))).unwrap_err();
    assert!(
        e.contains("NAME_UNKNOWN") || e.contains("does not exist") || e.contains("404"),
        "{e}"
    );
    push_as(&layout, &dest, Some(&format!("AWS:{}", login(&alice)))).unwrap();

    let uri = format!("ImageUri={dest}");
    let e = bob.create_image("theft", &uri, &[]).unwrap_err();
    assert!(
        e.contains("does not exist"),
        "Bob cannot use Alice's image: {e}"
    );
    alice
        .create_image("mine", &uri, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let out = alice.invoke("mine", work.path());
    assert_eq!(out["greeting"], "auth", "{out}");
    let listed = bob.ok(&["ecr", "describe-repositories"]);
    assert_eq!(
        listed["repositories"].as_array().unwrap().len(),
        0,
        "{listed}"
    );
}
