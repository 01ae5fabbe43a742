//! Layers through the official SDK: libraries and custom runtimes delivered as layers, layer
//! order at /opt, the size limit with layers, and deleted layer versions that keep serving.

use std::io::Write;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LayerVersionContentInput, Runtime};

use crate::helpers::*;

mod api;

async fn publish(c: &Client, name: &str, zip: Vec<u8>) -> String {
    let out = c
        .publish_layer_version()
        .layer_name(name)
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(zip))
                .build(),
        )
        .compatible_runtimes(Runtime::from(host_python().as_str()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {}", describe(&e)));
    out.layer_version_arn().unwrap().to_owned()
}

async fn deploy(
    c: &Client,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: Vec<u8>,
    layers: &[String],
) -> Result<(), String> {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(runtime))
        .handler(handler)
        .role(ROLE)
        .set_layers(Some(layers.to_vec()))
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| describe(&e))
}

async fn call(c: &Client, name: &str) -> String {
    let out = c
        .invoke()
        .function_name(name)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap();
    let raw = out.payload().unwrap().as_ref().to_vec();
    assert_eq!(
        out.function_error(),
        None,
        "{}",
        String::from_utf8_lossy(&raw)
    );
    serde_json::from_slice::<String>(&raw)
        .unwrap_or_else(|_| String::from_utf8_lossy(&raw).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_libraries_and_order() {
    let app = spawn_app().await;
    let c = &app.client;
    let lib = publish(
        c,
        "lib",
        zip_of(&[(
            "python/greeting.py",
            b"def greet():\n    return 'hi from a layer'\n",
        )]),
    )
    .await;
    assert!(lib.ends_with(":layer:lib:1"), "{lib}");
    let code = zip_of(&[(
        "app.py",
        b"import greeting\ndef handler(e, c):\n    return greeting.greet()\n",
    )]);
    deploy(
        c,
        "uses-lib",
        &host_python(),
        "app.handler",
        code,
        std::slice::from_ref(&lib),
    )
    .await
    .unwrap();
    assert_eq!(call(c, "uses-lib").await, "hi from a layer");
    let conf = c
        .get_function_configuration()
        .function_name("uses-lib")
        .send()
        .await
        .unwrap();
    assert_eq!(conf.layers()[0].arn(), Some(lib.as_str()));

    // The same file in two layers: the later layer wins.
    let a = publish(c, "a", zip_of(&[("python/which.py", b"NAME = 'A'\n")])).await;
    let b = publish(c, "b", zip_of(&[("python/which.py", b"NAME = 'B'\n")])).await;
    let code = zip_of(&[(
        "app.py",
        b"import which\ndef handler(e, c):\n    return which.NAME\n",
    )]);
    deploy(
        c,
        "ab",
        &host_python(),
        "app.handler",
        code.clone(),
        &[a.clone(), b.clone()],
    )
    .await
    .unwrap();
    deploy(
        c,
        "ba",
        &host_python(),
        "app.handler",
        code,
        &[b.clone(), a.clone()],
    )
    .await
    .unwrap();
    assert_eq!(call(c, "ab").await, "B");
    assert_eq!(call(c, "ba").await, "A");
    // New layers take effect at the next invocation of a function that has run with the old.
    c.update_function_configuration()
        .function_name("ab")
        .set_layers(Some(vec![b, a]))
        .send()
        .await
        .unwrap();
    assert_eq!(call(c, "ab").await, "A");

    // A deleted layer version keeps serving the functions that use it, and cannot be attached anew.
    c.delete_layer_version()
        .layer_name("lib")
        .version_number(1)
        .send()
        .await
        .unwrap();
    c.delete_layer_version()
        .layer_name("lib")
        .version_number(1)
        .send()
        .await
        .unwrap();
    assert_error(
        c.get_layer_version()
            .layer_name("lib")
            .version_number(1)
            .send()
            .await,
        "ResourceNotFoundException",
        "does not exist",
    );
    // The deletion's collection of unused code has run: the layer's code is still in use.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    c.update_function_configuration()
        .function_name("uses-lib")
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("FRESH", "1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(call(c, "uses-lib").await, "hi from a layer");
    let again = zip_of(&[("app.py", b"def handler(e, c):\n    return 1\n")]);
    let err = deploy(c, "late", &host_python(), "app.handler", again, &[lib])
        .await
        .unwrap_err();
    assert!(
        err.contains("ResourceNotFoundException") && err.contains("does not exist"),
        "{err}"
    );
    // Version numbers are never reused.
    let next = publish(
        c,
        "lib",
        zip_of(&[("python/greeting.py", b"def greet():\n    return 2\n")]),
    )
    .await;
    assert!(next.ends_with(":layer:lib:2"), "{next}");
    let listed = c.list_layers().send().await.unwrap();
    let names: Vec<&str> = listed
        .layers()
        .iter()
        .map(|l| l.layer_name().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "lib"]);
    let by_arn = c
        .get_layer_version_by_arn()
        .arn(&next)
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.version(), 2);
    let versions = c
        .list_layer_versions()
        .layer_name("lib")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.layer_versions().len(), 1);

    // Permissions are stored and returned.
    c.add_layer_version_permission()
        .layer_name("lib")
        .version_number(2)
        .statement_id("all")
        .action("lambda:GetLayerVersion")
        .principal("*")
        .send()
        .await
        .unwrap();
    let policy = || async {
        let got = c
            .get_layer_version_policy()
            .layer_name("lib")
            .version_number(2)
            .send()
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(got.policy().unwrap()).unwrap()
    };
    assert_eq!(policy().await["Statement"][0]["Sid"], "all");
    // Statements added at once are all kept.
    let mut adds = tokio::task::JoinSet::new();
    for i in 0..16 {
        let add = c
            .add_layer_version_permission()
            .layer_name("lib")
            .version_number(2)
            .statement_id(format!("s{i}"))
            .action("lambda:GetLayerVersion")
            .principal(format!("{:012}", 100 + i));
        adds.spawn(add.send());
    }
    while let Some(added) = adds.join_next().await {
        added.unwrap().unwrap();
    }
    let doc = policy().await;
    assert_eq!(doc["Statement"].as_array().unwrap().len(), 17, "{doc}");
    c.remove_layer_version_permission()
        .layer_name("lib")
        .version_number(2)
        .statement_id("all")
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custom_runtime_from_a_layer_and_size_limits() {
    let app = spawn_app().await;
    let c = &app.client;
    let bootstrap = b"#!/bin/sh\nwhile true; do\n  H=$(mktemp)\n  curl -sS -D $H -o /dev/null \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  OUT=$(sh /var/task/$_HANDLER)\n  curl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" -d \"\\\"$OUT\\\"\"\ndone\n";
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    w.write_all(bootstrap).unwrap();
    let runtime_layer = publish(c, "shell-runtime", w.finish().unwrap().into_inner()).await;
    deploy(
        c,
        "handler-only",
        "provided.al2023",
        "handler.sh",
        zip_of(&[("handler.sh", b"echo from-handler\n")]),
        &[runtime_layer],
    )
    .await
    .unwrap();
    assert_eq!(call(c, "handler-only").await, "from-handler");

    // Function plus layers over 250 MB is refused with the sizes.
    let zeros = |mb: usize| {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file(
            "python/zeros.bin",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..mb {
            w.write_all(&chunk).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let big = publish(c, "big", zeros(200)).await;
    let mut code = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    code.start_file("app.py", zip::write::SimpleFileOptions::default())
        .unwrap();
    code.write_all(b"def handler(e, c):\n    return 1\n")
        .unwrap();
    code.start_file(
        "data.bin",
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..60 {
        code.write_all(&chunk).unwrap();
    }
    let code = code.finish().unwrap().into_inner();
    let err = deploy(
        c,
        "too-big",
        &host_python(),
        "app.handler",
        code.clone(),
        std::slice::from_ref(&big),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("InvalidParameterValueException")
            && err.contains(
                "combined with layers exceeds the maximum allowed size of 262144000 bytes"
            ),
        "{err}"
    );
    assert!(err.contains("the layers take 209715200 bytes"), "{err}");
    assert_error(
        c.get_function().function_name("too-big").send().await,
        "ResourceNotFoundException",
        "too-big",
    );
    // The same code without the layer fits; attaching the layer later is refused with both sizes.
    deploy(c, "fits", &host_python(), "app.handler", code, &[])
        .await
        .unwrap();
    assert_error(
        c.update_function_configuration()
            .function_name("fits")
            .layers(big)
            .send()
            .await,
        "InvalidParameterValueException",
        "the function's code takes 62914592 bytes",
    );
}
