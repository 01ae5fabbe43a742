//! Versions and aliases through the official SDK: immutable snapshots, `$LATEST` semantics,
//! qualified invokes, and weighted aliases that split traffic as configured.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, FunctionCode, Runtime};

use crate::helpers::*;

fn code(tag: &str) -> Vec<u8> {
    zip_of(&[(
        "app.py",
        format!("def handler(event, context):\n    return {tag:?}\n").as_bytes(),
    )])
}

async fn invoke(c: &Client, name: &str, qualifier: Option<&str>) -> (String, String) {
    let out = c
        .invoke()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_owned))
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
    let raw = out.payload().unwrap().as_ref();
    let body: String = serde_json::from_slice(raw)
        .unwrap_or_else(|_| panic!("{name} returned {}", String::from_utf8_lossy(raw)));
    (body, out.executed_version().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_are_immutable_snapshots() {
    let app = spawn_app().await;
    let c = &app.client;
    let created = c
        .create_function()
        .function_name("ver")
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        .publish(true)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(code("v1")))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.version(),
        Some("1"),
        "Publish on create makes version 1"
    );
    assert_eq!(
        created.function_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:ver")
    );

    c.update_function_code()
        .function_name("ver")
        .zip_file(Blob::new(code("v2")))
        .send()
        .await
        .unwrap();
    c.update_function_configuration()
        .function_name("ver")
        .memory_size(512)
        .send()
        .await
        .unwrap();
    assert_eq!(
        invoke(c, "ver", Some("1")).await,
        ("v1".to_string(), "1".to_string())
    );
    assert_eq!(
        invoke(c, "ver", None).await,
        ("v2".to_string(), "$LATEST".to_string())
    );
    let v1 = c
        .get_function_configuration()
        .function_name("ver")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!((v1.memory_size(), v1.version()), (Some(128), Some("1")));
    assert_eq!(
        v1.function_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:ver:1")
    );

    let v2 = c
        .publish_version()
        .function_name("ver")
        .description("second")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version(), Some("2"));
    assert_eq!(v2.description(), Some("second"));
    // Nothing changed since: no new version.
    let again = c
        .publish_version()
        .function_name("ver")
        .send()
        .await
        .unwrap();
    assert_eq!(again.version(), Some("2"));
    assert_error(
        c.publish_version()
            .function_name("ver")
            .code_sha256(code_sha256(&code("other")))
            .send()
            .await,
        "InvalidParameterValueException",
        "is different from current CodeSHA256 in $LATEST",
    );
    assert_error(
        c.publish_version()
            .function_name("ver")
            .revision_id("stale")
            .send()
            .await,
        "PreconditionFailedException",
        "Revision Id",
    );
    let listed = c
        .list_versions_by_function()
        .function_name("ver")
        .send()
        .await
        .unwrap();
    let versions: Vec<&str> = listed
        .versions()
        .iter()
        .map(|v| v.version().unwrap())
        .collect();
    assert_eq!(versions, ["$LATEST", "1", "2"]);
    assert!(
        listed.versions()[0]
            .function_arn()
            .unwrap()
            .ends_with(":$LATEST")
    );

    // Paged, with a version deleted between pages: none is skipped.
    let first = c
        .list_versions_by_function()
        .function_name("ver")
        .max_items(2)
        .send()
        .await
        .unwrap();
    let names = |l: &[aws_sdk_lambda::types::FunctionConfiguration]| -> Vec<String> {
        l.iter().map(|v| v.version().unwrap().to_owned()).collect()
    };
    assert_eq!(names(first.versions()), ["$LATEST", "1"]);

    // Deleting a version; its number is never reused.
    c.delete_function()
        .function_name("ver")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    let second = c
        .list_versions_by_function()
        .function_name("ver")
        .marker(first.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(names(second.versions()), ["2"]);
    assert!(second.next_marker().is_none());
    assert_error(
        c.get_function()
            .function_name("ver")
            .qualifier("1")
            .send()
            .await,
        "ResourceNotFoundException",
        "function:ver:1",
    );
    c.update_function_code()
        .function_name("ver")
        .zip_file(Blob::new(code("v3")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.publish_version()
            .function_name("ver")
            .send()
            .await
            .unwrap()
            .version(),
        Some("3")
    );
    // ListFunctions with FunctionVersion=ALL: every version, with its qualified ARN, paged.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = c
            .list_functions()
            .function_version(aws_sdk_lambda::types::FunctionVersion::All)
            .max_items(2)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        for f in page.functions() {
            let (name, version) = (f.function_name().unwrap(), f.version().unwrap());
            assert!(f.function_arn().unwrap().ends_with(&format!(":{version}")));
            seen.push(format!("{name}:{version}"));
        }
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let ver: Vec<&str> = seen
        .iter()
        .filter(|s| s.starts_with("ver:"))
        .map(String::as_str)
        .collect();
    assert_eq!(ver, ["ver:$LATEST", "ver:2", "ver:3"], "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aliases_route_by_weight() {
    let app = spawn_app().await;
    let c = &app.client;
    c.create_function()
        .function_name("al")
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        .memory_size(1769)
        .timeout(30)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(code("one")))
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.publish_version()
        .function_name("al")
        .send()
        .await
        .unwrap();
    c.update_function_code()
        .function_name("al")
        .zip_file(Blob::new(code("two")))
        .send()
        .await
        .unwrap();
    c.publish_version()
        .function_name("al")
        .send()
        .await
        .unwrap();

    let alias = c
        .create_alias()
        .function_name("al")
        .name("live")
        .function_version("1")
        .description("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        alias.alias_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:al:live")
    );
    assert_error(
        c.create_alias()
            .function_name("al")
            .name("live")
            .function_version("1")
            .send()
            .await,
        "ResourceConflictException",
        "Alias already exists",
    );
    assert_error(
        c.create_alias()
            .function_name("al")
            .name("123")
            .function_version("1")
            .send()
            .await,
        "ValidationException",
        "at 'name'",
    );
    assert_error(
        c.create_alias()
            .function_name("al")
            .name("nine")
            .function_version("9")
            .send()
            .await,
        "ResourceNotFoundException",
        "function:al:9",
    );
    assert_eq!(
        invoke(c, "al", Some("live")).await,
        ("one".to_string(), "1".to_string())
    );
    let got = c
        .get_function()
        .function_name("al")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    let conf = got.configuration().unwrap();
    assert_eq!(
        (conf.function_arn(), conf.version()),
        (
            Some("arn:aws:lambda:us-east-1:000000000000:function:al:live"),
            Some("1")
        )
    );

    let weights = AliasRoutingConfiguration::builder()
        .additional_version_weights("2", 0.3)
        .build();
    let updated = c
        .update_alias()
        .function_name("al")
        .name("live")
        .routing_config(weights)
        .send()
        .await
        .unwrap();
    assert_ne!(updated.revision_id(), alias.revision_id());
    assert_error(
        c.update_alias()
            .function_name("al")
            .name("live")
            .function_version("$LATEST")
            .send()
            .await,
        "InvalidParameterValueException",
        "$LATEST is not supported for an alias pointing to more than 1 version",
    );
    assert_error(
        c.delete_function()
            .function_name("al")
            .qualifier("2")
            .send()
            .await,
        "ResourceConflictException",
        "aliases reference it: [live]",
    );

    // 10,000 invocations through the alias split 70/30 within ±3 %.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = c.clone();
        set.spawn(async move {
            let mut two = 0u32;
            for _ in 0..1250 {
                let (body, version) = invoke(&c, "al", Some("live")).await;
                assert_eq!(
                    body == "two",
                    version == "2",
                    "the executed version reports what ran"
                );
                two += u32::from(version == "2");
            }
            two
        });
    }
    let mut two = 0;
    while let Some(n) = set.join_next().await {
        two += n.unwrap();
    }
    let share = two as f64 / 10_000.0;
    assert!(
        (0.27..=0.33).contains(&share),
        "version 2 got {share:.3} of the traffic, expected 0.30 ± 0.03"
    );

    assert_eq!(
        c.list_aliases()
            .function_name("al")
            .send()
            .await
            .unwrap()
            .aliases()
            .len(),
        1
    );
    // Filtered by the version they point to, and paged by name.
    for (name, version) in [("beta", "2"), ("canary", "2")] {
        c.create_alias()
            .function_name("al")
            .name(name)
            .function_version(version)
            .send()
            .await
            .unwrap();
    }
    let names = |l: &aws_sdk_lambda::operation::list_aliases::ListAliasesOutput| {
        l.aliases()
            .iter()
            .map(|a| a.name().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let of_two = c
        .list_aliases()
        .function_name("al")
        .function_version("2")
        .send()
        .await
        .unwrap();
    assert_eq!(names(&of_two), ["beta", "canary"]);
    let first = c
        .list_aliases()
        .function_name("al")
        .max_items(2)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&first), ["beta", "canary"]);
    let rest = c
        .list_aliases()
        .function_name("al")
        .max_items(2)
        .marker(first.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(names(&rest), ["live"]);
    assert_eq!(rest.next_marker(), None);
    for name in ["beta", "canary"] {
        c.delete_alias()
            .function_name("al")
            .name(name)
            .send()
            .await
            .unwrap();
    }
    c.delete_alias()
        .function_name("al")
        .name("live")
        .send()
        .await
        .unwrap();
    c.delete_alias()
        .function_name("al")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_error(
        c.get_alias().function_name("al").name("live").send().await,
        "ResourceNotFoundException",
        "Cannot find alias arn",
    );
    assert_error(
        c.invoke()
            .function_name("al")
            .qualifier("live")
            .send()
            .await,
        "ResourceNotFoundException",
        "function:al:live",
    );
    // A deleted version is gone for a caller that has just run it.
    assert_eq!(
        invoke(c, "al", Some("2")).await,
        ("two".to_string(), "2".to_string())
    );
    c.delete_function()
        .function_name("al")
        .qualifier("2")
        .send()
        .await
        .unwrap();
    assert_error(
        c.invoke().function_name("al").qualifier("2").send().await,
        "ResourceNotFoundException",
        "function:al:2",
    );
}
