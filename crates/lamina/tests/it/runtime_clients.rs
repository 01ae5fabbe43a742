//! Functions written with runtime clients we did not write run unchanged: a Rust function built
//! with the `lambda_runtime` crate, and a Python function run by `awslambdaric` (PyPI) as a custom
//! runtime's bootstrap. Also Node.js handlers (CommonJS, ES module, callback) on our client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};

use crate::helpers::*;

/// A zip of `files`; names ending in `bootstrap` (or listed in `exec`) are executable.
pub(crate) fn package(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        let mode = if name.ends_with("bootstrap") {
            0o755
        } else {
            0o644
        };
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(mode),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

pub(crate) async fn deploy(c: &Client, name: &str, runtime: &str, handler: &str, zip: Vec<u8>) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(runtime))
        .handler(handler)
        .role(ROLE)
        .memory_size(512)
        .timeout(10)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

async fn invoke(
    c: &Client,
    name: &str,
    event: serde_json::Value,
) -> (serde_json::Value, Option<String>) {
    let out = c
        .invoke()
        .function_name(name)
        .payload(Blob::new(serde_json::to_vec(&event).unwrap()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
    let body =
        serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap_or(serde_json::Value::Null);
    (body, out.function_error().map(str::to_owned))
}

/// `target/<profile>/examples/<name>`, built by `cargo test` with the test binary.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let p = profile_dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: `cargo test` builds it (run the whole suite, not a filtered build)",
        p.display()
    );
    p
}

#[tokio::test]
async fn rust_function_built_with_lambda_runtime() {
    let app = spawn_app().await;
    let c = &app.client;
    let bootstrap = std::fs::read(example("rust_echo")).unwrap();
    deploy(
        c,
        "rusty",
        "provided.al2023",
        "bootstrap",
        package(&[("bootstrap", bootstrap)]),
    )
    .await;
    let (body, err) = invoke(c, "rusty", serde_json::json!({"hello": "world"})).await;
    assert_eq!(err, None, "{body}");
    assert_eq!(body["echo"]["hello"], "world");
    assert_eq!(body["function"], "rusty");
    assert_eq!(body["memory"], 512);
    assert_eq!(body["deadline_in_future"], true);
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36);
    let (body, err) = invoke(c, "rusty", serde_json::json!({"fail": true})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorMessage"], "asked to fail", "{body}");
    // Warm again after a handled error.
    let (body, err) = invoke(c, "rusty", serde_json::json!({"n": 2})).await;
    assert_eq!((err, &body["echo"]["n"]), (None, &serde_json::json!(2)));
}

#[tokio::test]
async fn python_function_on_awslambdaric() {
    let python = host_python();
    let app = spawn_app().await;
    let c = &app.client;
    let mut files = Vec::new();
    tree(&awslambdaric(&python), "", &mut files);
    files.push(("app.py".into(), b"def handler(event, context):\n    return {'ric': True, 'event': event, 'id': context.aws_request_id}\n".to_vec()));
    files.push(("bootstrap".into(), format!("#!/bin/sh\nexport PYTHONPATH=/var/task\nexec /usr/bin/{python} -m awslambdaric \"$_HANDLER\"\n").into_bytes()));
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    deploy(c, "ric", "provided.al2023", "app.handler", package(&refs)).await;
    let (body, err) = invoke(c, "ric", serde_json::json!({"k": 1})).await;
    assert_eq!(err, None, "{body}");
    assert_eq!(body["ric"], true);
    assert_eq!(body["event"]["k"], 1);
    assert_eq!(body["id"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn node_handlers_commonjs_esm_and_callback() {
    let node = ["/usr/bin/node", "/usr/local/bin/node"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs node in /usr/bin or /usr/local/bin");
    let out = Command::new(node).arg("--version").output().unwrap();
    let major = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let runtime = format!("nodejs{major}.x");
    let app = spawn_app().await;
    let c = &app.client;
    let cjs = b"let n = 0;\nexports.handler = async (event, context) => ({ n: ++n, event, fn: context.functionName });\n".to_vec();
    deploy(
        c,
        "cjs",
        &runtime,
        "index.handler",
        package(&[("index.js", cjs)]),
    )
    .await;
    let (b, e) = invoke(c, "cjs", serde_json::json!({"a": 1})).await;
    assert_eq!(
        (
            e,
            b["n"].as_i64(),
            b["event"]["a"].as_i64(),
            b["fn"].as_str()
        ),
        (None, Some(1), Some(1), Some("cjs"))
    );
    let (b, _) = invoke(c, "cjs", serde_json::json!({})).await;
    assert_eq!(b["n"], 2, "warm reuse keeps module state");
    // An event of many reads each way through the client's own HTTP over `net`.
    let big = "x".repeat(3 << 20);
    let (b, e) = invoke(c, "cjs", serde_json::json!({ "big": big })).await;
    assert_eq!((e, b["n"].as_i64()), (None, Some(3)));
    assert!(
        b["event"]["big"] == big.as_str(),
        "the 3 MiB event came back whole"
    );

    let esm = b"export const handler = async (event) => ({ esm: true, event });\n".to_vec();
    deploy(
        c,
        "esm",
        &runtime,
        "app.handler",
        package(&[("app.mjs", esm)]),
    )
    .await;
    let (b, e) = invoke(c, "esm", serde_json::json!({"b": 2})).await;
    assert_eq!(
        (e, b["esm"].as_bool(), b["event"]["b"].as_i64()),
        (None, Some(true), Some(2))
    );

    // A `.js` file is an ES module under a package.json that says so, as in node and on Lambda.
    let esm_js =
        b"export const handler = async (event) => ({ module: typeof require, event });\n".to_vec();
    deploy(
        c,
        "esm-js",
        &runtime,
        "lib/app.handler",
        package(&[
            ("lib/app.js", esm_js),
            ("package.json", br#"{"type": "module"}"#.to_vec()),
        ]),
    )
    .await;
    let (b, e) = invoke(c, "esm-js", serde_json::json!({"c": 3})).await;
    assert_eq!(
        (e, b["module"].as_str(), b["event"]["c"].as_i64()),
        (None, Some("undefined"), Some(3))
    );

    // A CommonJS handler whose dependency is missing fails INIT as Lambda says.
    let missing =
        b"const x = require('no-such-package');\nexports.handler = async () => x;\n".to_vec();
    deploy(
        c,
        "missing-dep",
        &runtime,
        "index.handler",
        package(&[("index.js", missing)]),
    )
    .await;
    let (b, e) = invoke(c, "missing-dep", serde_json::json!({})).await;
    assert_eq!(e.as_deref(), Some("Unhandled"));
    assert_eq!(b["errorType"], "Runtime.ImportModuleError");
    assert!(
        b["errorMessage"]
            .as_str()
            .unwrap()
            .contains("no-such-package"),
        "{b}"
    );

    let cb = b"exports.handler = (event, context, callback) => { if (event.fail) callback(new TypeError('nope')); else callback(null, { cb: true }); };\n".to_vec();
    deploy(
        c,
        "cb",
        &runtime,
        "index.handler",
        package(&[("index.js", cb)]),
    )
    .await;
    let (b, e) = invoke(c, "cb", serde_json::json!({})).await;
    assert_eq!((e, b["cb"].as_bool()), (None, Some(true)));
    let (b, e) = invoke(c, "cb", serde_json::json!({"fail": true})).await;
    assert_eq!(e.as_deref(), Some("Unhandled"));
    assert_eq!(
        (b["errorType"].as_str(), b["errorMessage"].as_str()),
        (Some("TypeError"), Some("nope"))
    );
}
