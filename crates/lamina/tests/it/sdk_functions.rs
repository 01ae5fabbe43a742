//! Every control-plane operation through the official Rust SDK, on the happy path.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, EphemeralStorage, LastUpdateStatus, State};

use crate::helpers::*;

#[tokio::test]
async fn create_wait_get_download() {
    let app = spawn_app().await;
    let c = &app.client;
    let zip = python_zip("one");
    let created = c
        .create_function()
        .function_name("hello")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("app.handler")
        .role(ROLE)
        .description("says hello")
        .memory_size(256)
        .timeout(30)
        .environment(Environment::builder().variables("GREETING", "hi").build())
        .ephemeral_storage(EphemeralStorage::builder().size(1024).build().unwrap())
        .tags("team", "core")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(zip.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    // As on AWS: the create response reports the function as being created.
    assert_eq!(created.state(), Some(&State::Pending));
    assert_eq!(
        created.state_reason_code().map(|c| c.as_str()),
        Some("Creating")
    );
    assert_eq!(
        created.function_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:hello")
    );
    assert_eq!(created.version(), Some("$LATEST"));
    assert_eq!(created.code_sha256(), Some(code_sha256(&zip).as_str()));
    assert_eq!(created.code_size(), zip.len() as i64);
    assert_eq!(created.memory_size(), Some(256));
    assert_eq!(created.timeout(), Some(30));
    assert_eq!(created.ephemeral_storage().map(|e| e.size()), Some(1024));
    assert_eq!(created.package_type().map(|p| p.as_str()), Some("Zip"));
    assert_eq!(
        created
            .architectures()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["x86_64"]
    );
    assert!(created.last_update_status().is_none());
    let last_modified = created.last_modified().unwrap();
    assert_eq!(
        last_modified.len(),
        "2020-04-10T19:06:32.563+0000".len(),
        "{last_modified}"
    );
    assert!(last_modified.ends_with("+0000"));

    c.wait_until_function_active_v2()
        .function_name("hello")
        .wait(Duration::from_secs(10))
        .await
        .expect("the function-active waiter succeeds");

    let got = c
        .get_function()
        .function_name("hello")
        .send()
        .await
        .unwrap();
    let conf = got.configuration().unwrap();
    assert_eq!(conf.state(), Some(&State::Active));
    assert_eq!(
        conf.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert_eq!(conf.revision_id(), created.revision_id());
    assert_eq!(
        conf.environment().unwrap().variables().unwrap()["GREETING"],
        "hi"
    );
    assert_eq!(got.tags().unwrap()["team"], "core");
    let code = got.code().unwrap();
    assert_eq!(code.repository_type(), Some("S3"));
    let downloaded = reqwest::get(code.location().unwrap()).await.unwrap();
    assert!(downloaded.status().is_success());
    assert_eq!(
        downloaded.bytes().await.unwrap().as_ref(),
        zip.as_slice(),
        "Code.Location serves the zip as uploaded"
    );

    // A tampered download URL is refused.
    let tampered = code
        .location()
        .unwrap()
        .replace("signature=", "signature=0");
    assert_eq!(reqwest::get(tampered).await.unwrap().status(), 403);
}

#[tokio::test]
async fn names_partial_arns_full_arns_and_qualifiers() {
    let app = spawn_app().await;
    let c = &app.client;
    create(c, "fn-1", python_zip("x")).await;
    for name in [
        "fn-1",
        "000000000000:function:fn-1",
        "arn:aws:lambda:us-east-1:000000000000:function:fn-1",
    ] {
        let conf = c
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(conf.function_name(), Some("fn-1"), "{name}");
        assert_eq!(
            conf.function_arn(),
            Some("arn:aws:lambda:us-east-1:000000000000:function:fn-1")
        );
    }
    let conf = c
        .get_function_configuration()
        .function_name("fn-1")
        .qualifier("$LATEST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        conf.function_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:fn-1:$LATEST")
    );
    let conf = c
        .get_function_configuration()
        .function_name("fn-1:$LATEST")
        .send()
        .await
        .unwrap();
    assert_eq!(conf.version(), Some("$LATEST"));
}

#[tokio::test]
async fn list_paginates_without_repeats() {
    let app = spawn_app().await;
    let c = &app.client;
    let mut names: Vec<String> = (0..7).map(|i| format!("f{i}")).collect();
    for n in &names {
        create(c, n, python_zip(n)).await;
    }
    names.sort();
    let mut seen = Vec::new();
    let mut markers = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = c
            .list_functions()
            .max_items(3)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.functions().len() <= 3);
        seen.extend(
            page.functions()
                .iter()
                .map(|f| f.function_name().unwrap().to_owned()),
        );
        match page.next_marker() {
            Some(m) => {
                assert!(!markers.contains(&m.to_owned()), "a marker came back twice");
                markers.push(m.to_owned());
                marker = Some(m.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen, names);
    // The SDK's own paginator agrees.
    let all: Vec<_> = c
        .list_functions()
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(all.len(), 7);
    // FunctionVersion=ALL qualifies the ARNs.
    let page = c
        .list_functions()
        .function_version(aws_sdk_lambda::types::FunctionVersion::All)
        .send()
        .await
        .unwrap();
    assert!(
        page.functions()[0]
            .function_arn()
            .unwrap()
            .ends_with(":$LATEST")
    );
}

#[tokio::test]
async fn updates_code_and_configuration() {
    let app = spawn_app().await;
    let c = &app.client;
    let first = create(c, "upd", python_zip("v1")).await;
    let v2 = python_zip("v2");
    let updated = c
        .update_function_code()
        .function_name("upd")
        .zip_file(Blob::new(v2.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.code_sha256(), Some(code_sha256(&v2).as_str()));
    assert_eq!(
        updated.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    assert_ne!(updated.revision_id(), first.revision_id());
    c.wait_until_function_updated_v2()
        .function_name("upd")
        .wait(Duration::from_secs(10))
        .await
        .unwrap();

    // DryRun validates without changing anything.
    let dry = c
        .update_function_code()
        .function_name("upd")
        .zip_file(Blob::new(python_zip("v3")))
        .dry_run(true)
        .send()
        .await
        .unwrap();
    assert_eq!(dry.code_sha256(), Some(code_sha256(&v2).as_str()));

    let conf = c
        .update_function_configuration()
        .function_name("upd")
        .memory_size(1769)
        .timeout(900)
        .description("second")
        .handler("app.other")
        .environment(
            Environment::builder()
                .variables("AA", "1")
                .variables("BB", "2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(conf.memory_size(), Some(1769));
    assert_eq!(
        conf.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    // Environment replaces the whole map.
    let conf = c
        .update_function_configuration()
        .function_name("upd")
        .revision_id(conf.revision_id().unwrap())
        .environment(Environment::builder().variables("CC", "3").build())
        .send()
        .await
        .unwrap();
    let vars: HashMap<String, String> = conf.environment().unwrap().variables().unwrap().clone();
    assert_eq!(vars, HashMap::from([("CC".to_string(), "3".to_string())]));
    let now = c
        .get_function_configuration()
        .function_name("upd")
        .send()
        .await
        .unwrap();
    assert_eq!(now.code_sha256(), Some(code_sha256(&v2).as_str()));
    assert_eq!(now.timeout(), Some(900));
    assert_eq!(now.handler(), Some("app.other"));
    assert_eq!(
        now.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
}

#[tokio::test]
async fn delete_removes_function_and_its_code() {
    let app = spawn_app().await;
    let c = &app.client;
    let kept = create(c, "kept", python_zip("k")).await;
    create(c, "gone", python_zip("g")).await;
    c.delete_function()
        .function_name("gone")
        .send()
        .await
        .unwrap();
    assert_error(
        c.get_function().function_name("gone").send().await,
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:gone",
    );
    assert_error(
        c.delete_function().function_name("gone").send().await,
        "ResourceNotFoundException",
        "Function not found",
    );
    // The deleted function's code is collected in the background.
    let kept_hex = sha_hex(kept.code_sha256().unwrap());
    let mut on_disk = code_on_disk(app.data_dir());
    // Generous: on a loaded 2-core machine the background task may wait a while for a thread.
    for _ in 0..1000 {
        // Zips go before trees: wait for both.
        if on_disk.0.len() == 1 && on_disk.1.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        on_disk = code_on_disk(app.data_dir());
    }
    assert_eq!(on_disk.0, vec![kept_hex.clone()]);
    assert_eq!(on_disk.1, vec![kept_hex]);
}

/// A deleted function's reserved concurrency goes with it, from the scheduler as from the store:
/// a function made again under its name runs, and the account's other functions get back the
/// concurrency it held.
#[tokio::test]
async fn a_deleted_functions_reservation_goes_with_it() {
    let app = spawn_app().await;
    let c = &app.client;
    for (name, reserved) in [("stopped", 0), ("large", 900)] {
        create(c, name, shell_runtime_zip()).await;
        c.put_function_concurrency()
            .function_name(name)
            .reserved_concurrent_executions(reserved)
            .send()
            .await
            .unwrap();
        c.delete_function()
            .function_name(name)
            .send()
            .await
            .unwrap();
        create(c, name, shell_runtime_zip()).await;
        let got = c.get_function_concurrency().function_name(name);
        assert_eq!(
            got.send().await.unwrap().reserved_concurrent_executions(),
            None
        );
    }
    // Had the scheduler kept them, `stopped` would be throttled (a reservation of 0), and with
    // 900 reserved again here (the store allows it) the unreserved pool would be 1000 − 1800.
    c.put_function_concurrency()
        .function_name("large")
        .reserved_concurrent_executions(900)
        .send()
        .await
        .unwrap();
    create(c, "other", shell_runtime_zip()).await;
    for name in ["stopped", "other"] {
        let out = c
            .invoke()
            .function_name(name)
            .payload(Blob::new(&b"{}"[..]));
        let out = out
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {}", describe(&e)));
        assert_eq!(out.status_code(), 200, "{name}");
    }
}

/// Waits until exactly the code of `hexes` is on disk, zips and trees; asserts it.
async fn code_left(app: &TestApp, hexes: &[String]) {
    let mut want = hexes.to_vec();
    want.sort();
    let mut on_disk = code_on_disk(app.data_dir());
    for _ in 0..1000 {
        if on_disk.0 == want && on_disk.1 == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        on_disk = code_on_disk(app.data_dir());
    }
    assert_eq!(on_disk.0, want);
    assert_eq!(on_disk.1, want);
}

#[tokio::test]
async fn code_replaced_or_deleted_with_its_version_is_collected() {
    let app = spawn_app().await;
    let c = &app.client;
    create(c, "f", python_zip("1")).await;
    let published = c
        .update_function_code()
        .function_name("f")
        .zip_file(Blob::new(python_zip("2")))
        .publish(true)
        .send()
        .await
        .unwrap();
    assert_eq!(published.version(), Some("1"));
    let v2 = sha_hex(published.code_sha256().unwrap());
    let now = c
        .update_function_code()
        .function_name("f")
        .zip_file(Blob::new(python_zip("3")))
        .send()
        .await
        .unwrap();
    let latest = sha_hex(now.code_sha256().unwrap());
    // The first code is nobody's now; the second is version 1's.
    code_left(&app, &[v2, latest.clone()]).await;
    c.delete_function()
        .function_name("f")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    code_left(&app, &[latest]).await;
}

#[tokio::test]
async fn tags_and_account_settings() {
    let app = spawn_app().await;
    let c = &app.client;
    let f = create(c, "tagged", python_zip("t")).await;
    let arn = f.function_arn().unwrap();
    c.tag_resource()
        .resource(arn)
        .tags("a", "1")
        .tags("b", "2")
        .send()
        .await
        .unwrap();
    c.tag_resource()
        .resource(arn)
        .tags("b", "3")
        .send()
        .await
        .unwrap();
    let tags = c.list_tags().resource(arn).send().await.unwrap();
    assert_eq!(tags.tags().unwrap().len(), 2);
    assert_eq!(tags.tags().unwrap()["b"], "3");
    c.untag_resource()
        .resource(arn)
        .tag_keys("a")
        .tag_keys("missing")
        .send()
        .await
        .unwrap();
    let tags = c.list_tags().resource(arn).send().await.unwrap();
    assert_eq!(tags.tags().unwrap().keys().collect::<Vec<_>>(), ["b"]);

    let s = c.get_account_settings().send().await.unwrap();
    let limit = s.account_limit().unwrap();
    assert_eq!(limit.code_size_zipped(), 52_428_800);
    assert_eq!(limit.code_size_unzipped(), 262_144_000);
    assert_eq!(limit.total_code_size(), 80_530_636_800);
    assert_eq!(limit.concurrent_executions(), 1000);
    let usage = s.account_usage().unwrap();
    assert_eq!(usage.function_count(), 1);
    assert_eq!(usage.total_code_size(), f.code_size());
}
