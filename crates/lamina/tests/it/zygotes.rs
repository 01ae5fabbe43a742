//! Interpreters started ahead: once a managed runtime has been asked for, cold starts take a
//! sandbox whose Python or node is already running its runtime client, and the function sees
//! exactly what a plain start would have given it: its variables (in the C library's
//! environment too), its working directory, its layers, its native libraries along
//! `LD_LIBRARY_PATH`, its own uid, the filters and no capabilities.

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, LayerVersionContentInput, Runtime};
use serde_json::Value;

use crate::helpers::*;
use crate::json_logs::node_runtime;

const PYTHON_APP: &[u8] = br#"import ctypes, os, sys

def handler(event, context):
    import greeting
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    ctypes.CDLL("libzz.so")
    return {
        "ahead": b"_LAMINA_LAUNCH_FD=" in open("/proc/self/environ", "rb").read(),
        "greeting": os.environ.get("GREETING"),
        "c_greeting": (libc.getenv(b"GREETING") or b"").decode(),
        "marker": "_LAMINA_LAUNCH_FD" in os.environ,
        "cwd": os.getcwd(),
        "layer": greeting.greet(),
        "uid": os.getuid(),
        "seccomp": status["Seccomp"].strip(),
        "capeff": status["CapEff"].strip(),
        "lang": os.environ.get("LANG"),
        "name": context.function_name,
        "customized": getattr(sys, "customized_by_layer", False),
    }
"#;

const NODE_APP: &[u8] = br#"const fs = require("node:fs");
exports.handler = async (event, context) => ({
  ahead: fs.readFileSync("/proc/self/environ", "latin1").includes("_LAMINA_LAUNCH_FD="),
  greeting: process.env.GREETING,
  marker: "_LAMINA_LAUNCH_FD" in process.env,
  cwd: process.cwd(),
  layer: require("greet").greet(),
  uid: process.getuid(),
  name: context.functionName,
});
"#;

async fn publish(c: &Client, name: &str, runtime: &str, zip: Vec<u8>) -> String {
    c.publish_layer_version()
        .layer_name(name)
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(zip))
                .build(),
        )
        .compatible_runtimes(Runtime::from(runtime))
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {}", describe(&e)))
        .layer_version_arn()
        .unwrap()
        .to_owned()
}

async fn deploy(
    c: &Client,
    name: &str,
    runtime: &str,
    code: Vec<u8>,
    layer: &str,
    env: &[(&str, &str)],
) {
    let mut vars = Environment::builder();
    for (k, v) in env {
        vars = vars.variables(*k, *v);
    }
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(runtime))
        .handler("app.handler")
        .role(ROLE)
        .layers(layer)
        .environment(vars.build())
        .code(FunctionCode::builder().zip_file(Blob::new(code)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// Deploys functions named `prefix-N` until one starts from a sandbox made ahead with its
/// interpreter running (the pool makes one after the first cold start asked for it), within a
/// bound. Returns what that one answered.
async fn first_started_ahead(
    c: &Client,
    prefix: &str,
    runtime: &str,
    code: &[u8],
    layer: &str,
    first_is_plain: bool,
) -> Value {
    for i in 0..40 {
        let name = format!("{prefix}-{i}");
        deploy(
            c,
            &name,
            runtime,
            code.to_vec(),
            layer,
            &[("GREETING", "hello")],
        )
        .await;
        let out = invoke_json(c, &name, &serde_json::json!({})).await;
        if i == 0 && first_is_plain {
            assert_eq!(
                out["ahead"], false,
                "the first start of a runtime is a plain one: {out}"
            );
        }
        if out["ahead"] == true {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no cold start of {runtime} took an interpreter started ahead within 40 tries");
}

/// Kills every process of this server's uid range (the one `uid` is in) that started with the
/// runtime clients' launch variable: interpreters waiting in the pool, and environments that
/// were started from one. Returns how many.
fn kill_interpreters_of(uid: u64) -> usize {
    let base = uid / 100_000 * 100_000;
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next()?.parse::<u64>().ok());
        let marked = environ.windows(18).any(|w| w == b"_LAMINA_LAUNCH_FD=");
        if marked && owner.is_some_and(|o| (base..base + 100_000).contains(&o)) {
            // SAFETY: kill takes integers only.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        }
    }
    killed
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_started_ahead_sees_only_its_own_function() {
    let app = spawn_app().await;
    let c = &app.client;
    let python = host_python();
    let layer = publish(
        c,
        "greeting",
        &python,
        zip_of(&[
            (
                "python/greeting.py",
                b"def greet():\n    return 'from a layer'\n",
            ),
            // Run by `site` at a plain start, since the layer comes first on the path.
            (
                "python/sitecustomize.py",
                b"import sys\nsys.customized_by_layer = True\n",
            ),
        ]),
    )
    .await;
    // A native library the function ships in /var/task/lib, found through LD_LIBRARY_PATH.
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib64/libz.so.1",
        "/usr/lib64/libz.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("this test needs the host's libz.so.1");
    let libz = std::fs::read(libz).unwrap();
    let code = zip_of(&[("app.py", PYTHON_APP), ("lib/libzz.so", &libz)]);

    let out = first_started_ahead(c, "py", &python, &code, &layer, true).await;
    assert_eq!(out["greeting"], "hello", "{out}");
    assert_eq!(
        out["c_greeting"], "hello",
        "the C library's environment: {out}"
    );
    assert_eq!(out["marker"], false, "{out}");
    assert_eq!(out["cwd"], "/var/task", "{out}");
    assert_eq!(out["layer"], "from a layer", "{out}");
    assert_eq!(out["customized"], true, "the layer's sitecustomize: {out}");
    assert_eq!(out["seccomp"], "2", "{out}");
    assert_eq!(out["capeff"], "0000000000000000", "{out}");
    assert_eq!(out["lang"], "en_US.UTF-8", "{out}");
    assert!(out["name"].as_str().unwrap().starts_with("py-"), "{out}");
    if root() {
        assert!(
            out["uid"].as_u64().unwrap() >= 1_000_000_000,
            "its own uid: {out}"
        );
    }

    if root() {
        // Interpreters killed while they wait take their sandboxes with them, which no function
        // is then given; cold starts go on, and are started ahead again.
        let killed = kill_interpreters_of(out["uid"].as_u64().unwrap());
        assert!(killed > 0, "no interpreter was waiting");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = first_started_ahead(c, "py-again", &python, &code, &layer, false).await;
        assert_eq!(again["greeting"], "hello", "{again}");
    }

    // A function that sets a variable read at a process's start gets a plain start, which sees
    // it.
    let vars = [("LANG", "C.UTF-8"), ("GREETING", "hello")];
    deploy(c, "py-c-locale", &python, code.clone(), &layer, &vars).await;
    let out = invoke_json(c, "py-c-locale", &serde_json::json!({})).await;
    assert_eq!(out["ahead"], false, "{out}");
    assert_eq!(out["lang"], "C.UTF-8", "{out}");
    assert_eq!(out["layer"], "from a layer", "{out}");
    assert_eq!(out["customized"], true, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_started_ahead_sees_only_its_own_function() {
    let app = spawn_app().await;
    let c = &app.client;
    let runtime = node_runtime();
    let layer = publish(
        c,
        "greet",
        &runtime,
        zip_of(&[(
            "nodejs/node_modules/greet/index.js",
            b"exports.greet = () => 'from a layer';\n",
        )]),
    )
    .await;
    let code = zip_of(&[("app.js", NODE_APP)]);
    let out = first_started_ahead(c, "js", &runtime, &code, &layer, true).await;
    assert_eq!(out["greeting"], "hello", "{out}");
    assert_eq!(out["marker"], false, "{out}");
    assert_eq!(out["cwd"], "/var/task", "{out}");
    assert_eq!(out["layer"], "from a layer", "{out}");
    assert!(out["name"].as_str().unwrap().starts_with("js-"), "{out}");
    if root() {
        assert!(
            out["uid"].as_u64().unwrap() >= 1_000_000_000,
            "its own uid: {out}"
        );
    }
}
