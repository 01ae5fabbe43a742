//! The `lamina` CLI against a running server: deploy (create, then update), ls, show, rm.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::*;

fn lamina(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(args)
        .args(["--endpoint", endpoint])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .expect("the lamina binary runs")
}

fn ok_json(out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "lamina failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).unwrap();
}

#[test]
fn deploy_ls_show_rm() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "app.py", b"def handler(e, c):\n    return 1\n");

    let created = ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "cli-fn",
            "--runtime",
            "provided.al2023",
            "--handler",
            "app.handler",
            "--memory",
            "256",
            "--env",
            "AA=1",
            "--env",
            "BB=two",
            "--json",
        ],
    ));
    assert_eq!(created["FunctionName"], "cli-fn");
    assert_eq!(created["State"], "Pending");
    assert_eq!(created["MemorySize"], 256);
    assert_eq!(created["Environment"]["Variables"]["BB"], "two");
    let first_sha = created["CodeSha256"].as_str().unwrap().to_owned();

    // Deploying the same tree again changes nothing in the code; a new file changes the hash.
    let same = ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "cli-fn",
            "--timeout",
            "10",
            "--json",
        ],
    ));
    assert_eq!(same["CodeSha256"], first_sha.as_str());
    assert_eq!(same["Timeout"], 10);
    // A package big enough for a progress bar (not shown: stdout is not a terminal).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..6_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write(src.path(), "data.bin", &noise);
    let updated = ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "cli-fn",
            "--json",
        ],
    ));
    assert_ne!(updated["CodeSha256"], first_sha.as_str());
    assert!(updated["CodeSize"].as_u64().unwrap() > 5_000_000);

    let shown = ok_json(lamina(&ep, &["show", "cli-fn", "--json"]));
    assert_eq!(shown["Configuration"]["CodeSha256"], updated["CodeSha256"]);
    assert_eq!(shown["Configuration"]["Timeout"], 10);

    let listed = ok_json(lamina(&ep, &["ls", "--json"]));
    assert_eq!(listed["Functions"].as_array().unwrap().len(), 1);

    // The human forms print tables.
    let table = lamina(&ep, &["ls"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.starts_with("NAME") && text.contains("cli-fn") && text.contains("provided.al2023"),
        "{text}"
    );

    let rm = lamina(&ep, &["rm", "cli-fn"]);
    assert!(rm.status.success());
    let missing = lamina(&ep, &["show", "cli-fn"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("ResourceNotFoundException") && err.contains("cli-fn"),
        "{err}"
    );

    // Errors say what is wrong.
    let bad = lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "x",
            "--runtime",
            "provided.al2023",
            "--handler",
            "a.b",
            "--memory",
            "64",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("memorySize"));
    let down = Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(["ls", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach the server"));
}

#[test]
fn layers_versions_and_aliases_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let layer = tempfile::tempdir().unwrap();
    std::fs::create_dir(layer.path().join("python")).unwrap();
    write(&layer.path().join("python"), "shared.py", b"X = 1\n");
    let published = ok_json(lamina(
        &ep,
        &[
            "layer",
            "publish",
            "shared",
            layer.path().to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(
        published["LayerVersionArn"]
            .as_str()
            .unwrap()
            .ends_with(":layer:shared:1")
    );
    let layers = ok_json(lamina(&ep, &["layer", "ls", "--json"]));
    assert_eq!(layers["Layers"][0]["LayerName"], "shared");

    let src = tempfile::tempdir().unwrap();
    write(src.path(), "bootstrap", b"#!/bin/sh\nexit 0\n");
    ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "rel",
            "--runtime",
            "provided.al2023",
            "--handler",
            "x",
            "--json",
        ],
    ));
    let v1 = ok_json(lamina(&ep, &["publish", "rel", "--json"]));
    assert_eq!(v1["Version"], "1");
    let alias = ok_json(lamina(&ep, &["alias", "set", "rel", "live", "1", "--json"]));
    assert_eq!(alias["FunctionVersion"], "1");
    write(src.path(), "extra.txt", b"changed");
    ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "rel",
            "--json",
        ],
    ));
    ok_json(lamina(&ep, &["publish", "rel", "--json"]));
    let moved = ok_json(lamina(
        &ep,
        &[
            "alias", "set", "rel", "live", "1", "--weight", "2=0.25", "--json",
        ],
    ));
    assert_eq!(
        moved["RoutingConfig"]["AdditionalVersionWeights"]["2"],
        0.25
    );
}

#[test]
fn invoke_sync_and_async() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let src = tempfile::tempdir().unwrap();
    write(
        src.path(),
        "app.py",
        b"def handler(e, c):\n    print('got', e['n'])\n    return e['n'] * 2\n",
    );
    ok_json(lamina(
        &ep,
        &[
            "deploy",
            src.path().to_str().unwrap(),
            "--name",
            "twice",
            "--runtime",
            &host_python(),
            "--handler",
            "app.handler",
            "--json",
        ],
    ));
    let out = ok_json(lamina(
        &ep,
        &[
            "invoke",
            "twice",
            "--payload",
            r#"{"n": 21}"#,
            "--log",
            "--json",
        ],
    ));
    assert_eq!(out["Payload"], 42);
    assert!(out["LogResult"].as_str().unwrap().contains("got 21"));
    let queued = ok_json(lamina(
        &ep,
        &[
            "invoke",
            "twice",
            "--payload",
            r#"{"n": 5}"#,
            "--async",
            "--json",
        ],
    ));
    assert_eq!(queued["StatusCode"], 202);
    let id = queued["RequestId"].as_str().unwrap().to_owned();
    // It runs, under the request id the 202 carried.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let logs = lamina(&ep, &["logs", "twice"]);
        let text = String::from_utf8_lossy(&logs.stdout).into_owned();
        if text.contains(&format!("START RequestId: {id}")) && text.contains("got 5") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let both = lamina(&ep, &["invoke", "twice", "--async", "--log"]);
    assert!(!both.status.success(), "--log and --async conflict");
}
