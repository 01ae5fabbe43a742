//! Every limit and error case, as the official Rust SDK sees it: error type and message.

use std::io::{Cursor, Write};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, EphemeralStorage, FunctionCode, Runtime};

use crate::helpers::*;

fn base(
    c: &Client,
    name: &str,
) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("app.handler")
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip(name)))
                .build(),
        )
}

#[tokio::test]
async fn configuration_limits() {
    let app = spawn_app().await;
    let c = &app.client;
    assert_error(
        base(c, "m1").memory_size(127).send().await,
        "ValidationException",
        "Value '127' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128",
    );
    assert_error(
        base(c, "m2").memory_size(10_241).send().await,
        "ValidationException",
        "Member must have value less than or equal to 10240",
    );
    base(c, "m3").memory_size(10_240).send().await.unwrap();
    assert_error(
        base(c, "t1").timeout(0).send().await,
        "ValidationException",
        "at 'timeout'",
    );
    assert_error(
        base(c, "t2").timeout(901).send().await,
        "ValidationException",
        "less than or equal to 900",
    );
    assert_error(
        base(c, "e1")
            .ephemeral_storage(EphemeralStorage::builder().size(511).build().unwrap())
            .send()
            .await,
        "ValidationException",
        "ephemeralStorage",
    );
    assert_error(
        base(c, "e2")
            .ephemeral_storage(EphemeralStorage::builder().size(10_241).build().unwrap())
            .send()
            .await,
        "ValidationException",
        "between 512 and 10240",
    );
    assert_error(
        base(c, "v1")
            .environment(Environment::builder().variables("AWS_REGION", "x").build())
            .send()
            .await,
        "InvalidParameterValueException",
        "Reserved keys used in this request: AWS_REGION",
    );
    assert_error(
        base(c, "v2")
            .environment(
                Environment::builder()
                    .variables("BIG", "x".repeat(4096))
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterValueException",
        "exceeded the 4KB limit. String measured: {\"BIG\":",
    );
    assert_error(
        base(c, "v3")
            .environment(Environment::builder().variables("9LIVES", "x").build())
            .send()
            .await,
        "ValidationException",
        "environment.variables",
    );
    assert_error(
        c.create_function()
            .function_name("nohandler")
            .runtime(Runtime::Providedal2023)
            .role(ROLE)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(python_zip("h")))
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterValueException",
        "Runtime and Handler are mandatory",
    );
    assert_error(
        base(c, "r1").runtime(Runtime::from("cobol85")).send().await,
        "InvalidParameterValueException",
        "at 'runtime' failed to satisfy constraint",
    );
    assert_error(
        base(c, "r2").runtime(Runtime::Python27).send().await,
        "InvalidParameterValueException",
        "no longer supported",
    );
    assert_error(
        base(c, "r3").runtime(Runtime::Java21).send().await,
        "InvalidParameterValueException",
        "The runtime parameter of java21 is not served by this server. It offers: provided.al2, provided.al2023",
    );
    assert_error(
        base(c, "bad name!").send().await,
        "ValidationException",
        "at 'functionName'",
    );
    assert_error(
        base(c, &"n".repeat(65)).send().await,
        "InvalidParameterValueException",
        "at most 64 characters",
    );
    base(c, &"n".repeat(64)).send().await.unwrap();
    assert_error(
        base(c, "role").role("not-a-role").send().await,
        "ValidationException",
        "at 'role'",
    );
    assert_error(
        base(c, "desc").description("d".repeat(257)).send().await,
        "ValidationException",
        "at 'description'",
    );
    let six: Vec<String> = (1..=6)
        .map(|i| format!("arn:aws:lambda:us-east-1:000000000000:layer:l{i}:1"))
        .collect();
    assert_error(
        base(c, "layers").set_layers(Some(six)).send().await,
        "InvalidParameterValueException",
        "Cannot reference more than 5 layers.",
    );
    assert_error(
        base(c, "layer1")
            .layers("arn:aws:lambda:us-east-1:000000000000:layer:nope:1")
            .send()
            .await,
        "ResourceNotFoundException",
        "Layer version arn:aws:lambda:us-east-1:000000000000:layer:nope:1 does not exist.",
    );
    let tags: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
    let mut b = base(c, "tags51");
    for (k, v) in tags {
        b = b.tags(k, v);
    }
    assert_error(
        b.send().await,
        "InvalidParameterValueException",
        "Number of tags exceeds resource tag limit.",
    );
    // Nothing rejected was created.
    let listed = c.list_functions().send().await.unwrap();
    let names: Vec<_> = listed
        .functions()
        .iter()
        .map(|f| f.function_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["m3".to_string(), "n".repeat(64)]);

    // The same limits hold on update.
    assert_error(
        c.update_function_configuration()
            .function_name("m3")
            .memory_size(64)
            .send()
            .await,
        "ValidationException",
        "memorySize",
    );
    assert_error(
        c.update_function_configuration()
            .function_name("m3")
            .timeout(1000)
            .send()
            .await,
        "ValidationException",
        "timeout",
    );
}

#[tokio::test]
async fn conflicts_missing_and_preconditions() {
    let app = spawn_app().await;
    let c = &app.client;
    let f = create(c, "dup", python_zip("d")).await;
    assert_error(
        base(c, "dup").send().await,
        "ResourceConflictException",
        "Function already exist: dup",
    );
    assert_error(
        c.get_function().function_name("nope").send().await,
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
    );
    assert_error(
        c.get_function_configuration()
            .function_name("dup")
            .qualifier("7")
            .send()
            .await,
        "ResourceNotFoundException",
        "function:dup:7",
    );
    assert_error(
        c.get_function()
            .function_name("dup:1")
            .qualifier("2")
            .send()
            .await,
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
    );
    assert_error(
        c.delete_function()
            .function_name("dup")
            .qualifier("$LATEST")
            .send()
            .await,
        "InvalidParameterValueException",
        "$LATEST version cannot be deleted without deleting the function.",
    );
    assert_error(
        c.update_function_configuration()
            .function_name("dup")
            .revision_id("00000000-0000-0000-0000-000000000000")
            .memory_size(256)
            .send()
            .await,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id",
    );
    assert_error(
        c.update_function_code()
            .function_name("dup")
            .revision_id("stale")
            .zip_file(Blob::new(python_zip("z")))
            .send()
            .await,
        "PreconditionFailedException",
        "Revision Id",
    );
    c.update_function_configuration()
        .function_name("dup")
        .revision_id(f.revision_id().unwrap())
        .memory_size(256)
        .send()
        .await
        .unwrap();
    assert_error(
        c.update_function_code()
            .function_name("ghost")
            .zip_file(Blob::new(python_zip("z")))
            .send()
            .await,
        "ResourceNotFoundException",
        "function:ghost",
    );
    assert_error(
        c.update_function_configuration()
            .function_name("ghost")
            .timeout(5)
            .send()
            .await,
        "ResourceNotFoundException",
        "function:ghost",
    );
    // Another account's ARN is refused; another region's is unreachable.
    assert_error(
        c.get_function()
            .function_name("arn:aws:lambda:us-east-1:123456789012:function:dup")
            .send()
            .await,
        "AccessDeniedException",
        "not authorized to perform: lambda:GetFunction",
    );
    assert_error(
        c.get_function()
            .function_name("arn:aws:lambda:eu-west-1:000000000000:function:dup")
            .send()
            .await,
        "ResourceNotFoundException",
        "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')",
    );
    // Tags only on unqualified function ARNs.
    let arn = f.function_arn().unwrap();
    assert_error(
        c.tag_resource()
            .resource(format!("{arn}:$LATEST"))
            .tags("a", "b")
            .send()
            .await,
        "InvalidParameterValueException",
        "Tags on function aliases and versions are not supported",
    );
    assert_error(
        c.list_tags()
            .resource("arn:aws:lambda:us-east-1:000000000000:function:ghost")
            .send()
            .await,
        "ResourceNotFoundException",
        "function:ghost",
    );
    assert_error(
        c.list_tags().resource("dup").send().await,
        "ValidationException",
        "at 'resource'",
    );
}

/// Two entries with the same name (zip writers refuse to make one, so the second is renamed).
fn duplicate_entries() -> Vec<u8> {
    let mut zip = zip_of(&[("app.py", b"1"), ("app.pz", b"2")]);
    let (from, to) = (b"app.pz", b"app.py");
    for i in 0..zip.len() - from.len() {
        if &zip[i..i + from.len()] == from {
            zip[i..i + to.len()].copy_from_slice(to);
        }
    }
    zip
}

fn zip_with(build: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    build(&mut w);
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn hostile_archives_leave_nothing_behind() {
    let app = spawn_app().await;
    let c = &app.client;
    let opts = zip::write::SimpleFileOptions::default;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "corrupt",
            b"PK\x03\x04 definitely not a zip".to_vec(),
            "Could not unzip uploaded file",
        ),
        (
            "traversal",
            zip_of(&[("../../etc/cron.d/evil", b"x")]),
            "unsafe path",
        ),
        ("absolute", zip_of(&[("/etc/passwd", b"x")]), "unsafe path"),
        (
            "symlink",
            zip_with(|w| {
                w.add_symlink("escape", "../../../etc/shadow", opts())
                    .unwrap()
            }),
            "points outside",
        ),
        (
            "duplicate",
            duplicate_entries(),
            "same entry name more than once",
        ),
        (
            "bomb",
            zip_with(|w| {
                // 260 MB of zeros compresses to a few hundred KB.
                w.start_file(
                    "zeros",
                    opts().compression_method(zip::CompressionMethod::Deflated),
                )
                .unwrap();
                let chunk = vec![0u8; 1 << 20];
                for _ in 0..260 {
                    w.write_all(&chunk).unwrap();
                }
            }),
            "Unzipped size must be smaller than 262144000 bytes",
        ),
    ];
    for (name, zip, needle) in cases {
        let r = c
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("app.handler")
            .role(ROLE)
            .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
            .send()
            .await;
        assert_error(r, "InvalidParameterValueException", needle);
        assert_error(
            c.get_function().function_name(name).send().await,
            "ResourceNotFoundException",
            name,
        );
    }
    // And on update: the function keeps its old code.
    let f = create(c, "victim", python_zip("safe")).await;
    assert_error(
        c.update_function_code()
            .function_name("victim")
            .zip_file(Blob::new(zip_of(&[("../x", b"1")])))
            .send()
            .await,
        "InvalidParameterValueException",
        "Could not unzip uploaded file",
    );
    let now = c
        .get_function_configuration()
        .function_name("victim")
        .send()
        .await
        .unwrap();
    assert_eq!(now.code_sha256(), f.code_sha256());
    let (zips, trees, staging) = code_on_disk(app.data_dir());
    let hex = sha_hex(f.code_sha256().unwrap());
    assert_eq!(
        (zips, trees, staging),
        (vec![hex.clone()], vec![hex], 0),
        "only the valid package may remain on disk"
    );
}

#[tokio::test]
async fn oversize_uploads() {
    let app = spawn_app().await;
    let c = &app.client;
    // Incompressible bytes: a zip just over 50 MB.
    let mut noise = vec![0u8; 52_428_800 + 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let zip = zip_with(|w| {
        w.start_file(
            "noise.bin",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        w.write_all(&noise).unwrap();
    });
    assert!(zip.len() > 52_428_800);
    let r = c
        .create_function()
        .function_name("big")
        .runtime(Runtime::Providedal2023)
        .handler("app.handler")
        .role(ROLE)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await;
    assert_error(
        r,
        "RequestEntityTooLargeException",
        "Zipped size must be smaller than 52428800 bytes",
    );

    // A request body over the CreateFunction request limit is refused before it is parsed.
    let body = vec![b' '; 70_167_212];
    let resp = reqwest::Client::new()
        .post(format!("{}/2015-03-31/functions", app.endpoint()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "RequestEntityTooLargeException"
    );
    let (zips, _, staging) = code_on_disk(app.data_dir());
    assert!(zips.is_empty() && staging == 0);
}

#[tokio::test]
async fn malformed_requests_get_typed_errors() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/2015-03-31/functions", app.endpoint()))
        .header("content-type", "application/json")
        .body("{\"FunctionName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-amzn-errortype"], "SerializationException");
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["Type"], "User");

    let resp = http
        .post(format!("{}/2015-03-31/functions", app.endpoint()))
        .body(r#"{"FunctionName":"x","Role":"arn:aws:iam::000000000000:role/r","Runtime":"provided.al2023","Handler":"a.b","Code":{"ZipFile":"***"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "InvalidParameterValueException"
    );

    let resp = http
        .post(format!("{}/2015-03-31/functions", app.endpoint()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-amzn-errortype"], "ValidationException");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Value null at 'functionName'"),
        "{body}"
    );

    let resp = http
        .get(format!("{}/2099-01-01/nothing", app.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "UnknownOperationException"
    );
}
