//! Crash safety: kill -9 in the middle of uploads and after acknowledged writes, restart, and
//! check that exactly the acknowledged functions exist, with identical code, and no orphans.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use base64::Engine;

use crate::helpers::*;

/// A CreateFunction request body carrying a zip of `size` incompressible bytes.
fn create_body(name: &str, size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ name.len() as u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let zip = zip_of(&[
        ("app.py", b"def handler(e, c): return 1\n"),
        ("blob.bin", &data),
    ]);
    serde_json::to_vec(&serde_json::json!({
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Handler": "app.handler",
        "Role": ROLE,
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    }))
    .unwrap()
}

async fn functions(client: &aws_sdk_lambda::Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let pages: Vec<_> = client
        .list_functions()
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    for f in pages {
        let f = f.unwrap();
        out.insert(
            f.function_name().unwrap().to_owned(),
            f.code_sha256().unwrap().to_owned(),
        );
    }
    out
}

/// Every package on disk belongs to a function, and nothing is left in staging.
fn assert_no_orphans(data_dir: &std::path::Path, live: &BTreeMap<String, String>) {
    let mut expected: Vec<String> = live.values().map(|s| sha_hex(s)).collect();
    expected.sort();
    expected.dedup();
    let (zips, trees, staging) = code_on_disk(data_dir);
    assert_eq!(
        zips, expected,
        "zips on disk must be exactly the referenced ones"
    );
    assert_eq!(
        trees, expected,
        "extracted trees must be exactly the referenced ones"
    );
    assert_eq!(staging, 0, "staging must be empty after start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_exactly_the_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let client = sdk_client(&server.endpoint(), "test", "test", "us-east-1");

    // Acknowledged writes: creates, an update, a delete.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..5 {
        let zip = python_zip(&format!("acked-{i}"));
        let f = create(&client, &format!("acked-{i}"), zip).await;
        acked.insert(format!("acked-{i}"), f.code_sha256().unwrap().to_owned());
    }
    let new_zip = python_zip("acked-0-v2");
    let u = client
        .update_function_code()
        .function_name("acked-0")
        .zip_file(Blob::new(new_zip))
        .send()
        .await
        .unwrap();
    acked.insert("acked-0".into(), u.code_sha256().unwrap().to_owned());
    client
        .delete_function()
        .function_name("acked-4")
        .send()
        .await
        .unwrap();
    acked.remove("acked-4");

    // Kill in the middle of an upload: half of a 20 MB request body has been sent.
    let body = create_body("half-uploaded", 20 << 20);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /2015-03-31/functions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.kill9();
    drop(stream);

    let mut server = ServerProcess::start(dir.path(), &[]);
    let client = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    assert_eq!(functions(&client).await, acked, "after the first crash");
    assert_no_orphans(dir.path(), &acked);

    // Kill while a stream of creates is in flight: every acknowledged one must survive, the one
    // in flight may or may not exist, and if it does, it is whole.
    let ack_log: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let in_flight: Arc<Mutex<Option<String>>> = Arc::default();
    let writer = {
        let client = client.clone();
        let ack_log = ack_log.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let name = format!("burst-{i}");
                *in_flight.lock().unwrap() = Some(name.clone());
                let zip = zip_of(&[
                    ("app.py", format!("# {name}\n").as_bytes()),
                    ("pad.bin", &vec![i as u8; 2 << 20]),
                ]);
                let r = client
                    .create_function()
                    .function_name(&name)
                    .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
                    .handler("app.handler")
                    .role(ROLE)
                    .code(
                        aws_sdk_lambda::types::FunctionCode::builder()
                            .zip_file(Blob::new(zip))
                            .build(),
                    )
                    .send()
                    .await;
                match r {
                    Ok(f) => ack_log
                        .lock()
                        .unwrap()
                        .push((name, f.code_sha256().unwrap().to_owned())),
                    Err(_) => break,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill9();
    let _ = writer.await;
    let acked_burst = ack_log.lock().unwrap().clone();
    assert!(
        !acked_burst.is_empty(),
        "some creates should have been acknowledged before the kill"
    );

    let server = ServerProcess::start(dir.path(), &[]);
    let client = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    let live = functions(&client).await;
    let mut expected = acked.clone();
    expected.extend(acked_burst.iter().cloned());
    let in_flight = in_flight.lock().unwrap().clone().unwrap();
    let mut extra: Vec<&String> = live.keys().filter(|k| !expected.contains_key(*k)).collect();
    extra.retain(|k| **k != in_flight);
    assert!(extra.is_empty(), "functions nobody created: {extra:?}");
    for (name, sha) in &expected {
        assert_eq!(
            live.get(name),
            Some(sha),
            "acknowledged function {name} must survive with its code"
        );
    }
    if let Some(sha) = live.get(&in_flight) {
        // The unacknowledged create landed whole: its code downloads and matches its hash.
        let got = client
            .get_function()
            .function_name(&in_flight)
            .send()
            .await
            .unwrap();
        let bytes = reqwest::get(got.code().unwrap().location().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&code_sha256(&bytes), sha);
    }
    assert_no_orphans(dir.path(), &live);
    assert!(!live.contains_key("half-uploaded"));
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_and_the_first_keeps_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Made by the operator with the usual 0755: the server makes it private.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut first = ServerProcess::start(dir.path(), &[]);
    // The server prints its address before it opens the data directory.
    let mode = || std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
    let asked = std::time::Instant::now();
    while mode() != 0o700 && asked.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mode(), 0o700);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args([
            "server",
            "--no-egress",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("another Lamina server uses"),
        "{err}"
    );
    // The first still serves; once it is gone (even killed), the directory may be used again.
    assert!(TcpStream::connect(first.addr).is_ok());
    assert!(first.child.try_wait().unwrap().is_none());
    first.kill9();
    let mut again = ServerProcess::start(dir.path(), &[]);
    again.stop();
}
