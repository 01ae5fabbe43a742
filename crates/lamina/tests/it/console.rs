//! The web console in a real browser: Debian's Chromium, driven by Playwright for Python
//! (`console.py`), against a server that verifies signatures. It signs in, lists the function
//! with its numbers, runs test invokes, reads charts drawn from the history of real
//! invocations, versions, triggers and logs, and checks that another account sees nothing and
//! that the session does not act for a request without the console's header. Any JavaScript
//! or console error fails it. Screenshots are kept under the target's tmp directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, FunctionUrlAuthType, Runtime};

use crate::helpers::*;
use crate::sdk_auth::AUTH;

const CHROMIUM: &str = "/usr/bin/chromium";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/console.py");
const HANDLER: &[u8] = b"def handler(event, context):\n    print('hello', event.get('name'))\n    if event.get('fail'):\n        raise ValueError('boom')\n    return {'greeting': 'hi ' + str(event.get('name')), 'cookies': event.get('cookies')}\n";

#[tokio::test]
async fn console_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "this test needs Debian's Chromium at {CHROMIUM}: apt-get install chromium"
    );
    // Playwright for Python, which drives the system's Chromium.
    let venv = tokio::task::spawn_blocking(|| venv_with("playwright-venv", &["playwright"]))
        .await
        .unwrap();
    let app = spawn_app_with(&format!("metrics_flush_s = 0.2\n{AUTH}")).await;
    let alice = sdk_client(&app.endpoint(), "AKIDALICE", "alice-secret", "us-east-1");
    let name = "console-demo";
    for function in [name.to_owned(), format!("{name}-bare")] {
        alice
            .create_function()
            .function_name(function)
            .runtime(Runtime::from(host_python().as_str()))
            .handler("app.handler")
            .role(ROLE)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip_of(&[("app.py", HANDLER)])))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create: {}", describe(&e)));
    }
    // Three successes and an error, which the list and the charts must show.
    for event in [
        r#"{"name":"a"}"#,
        r#"{"name":"b"}"#,
        r#"{"fail":true}"#,
        r#"{"name":"c"}"#,
    ] {
        alice
            .invoke()
            .function_name(name)
            .payload(Blob::new(event.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    // Triggers: a URL and a topic's permission; a version and an alias.
    let url = alice
        .create_function_url_config()
        .function_name(name)
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap()
        .function_url;
    alice
        .add_permission()
        .function_name(name)
        .statement_id("url")
        .action("lambda:InvokeFunctionUrl")
        .principal("*")
        .function_url_auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap();
    alice
        .add_permission()
        .function_name(name)
        .statement_id("url-invoke")
        .action("lambda:InvokeFunction")
        .principal("*")
        .invoked_via_function_url(true)
        .send()
        .await
        .unwrap();
    alice
        .add_permission()
        .function_name(name)
        .statement_id("orders")
        .action("lambda:InvokeFunction")
        .principal("sns.amazonaws.com")
        .source_arn("arn:aws:sns:us-east-1:111111111111:orders")
        .send()
        .await
        .unwrap();
    alice
        .publish_version()
        .function_name(name)
        .send()
        .await
        .unwrap();
    alice
        .create_alias()
        .function_name(name)
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    // Each step waits at most 20 s; the whole session, at most 5 minutes.
    let script = Command::new("timeout")
        .arg("300")
        .arg(venv.join("bin/python"))
        .arg(SCRIPT)
        .arg(app.endpoint())
        .arg(name)
        .arg(&artifacts)
        .output();
    let out = tokio::task::spawn_blocking(move || script)
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the console failed in the browser (screenshots in {}):\n{stdout}\n{stderr}",
        artifacts.display()
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    for shot in ["02-functions", "04-test", "05-monitor", "08-other-account"] {
        let png = std::fs::read(artifacts.join(format!("{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
    // A function's page at a path-style address shares the console's origin: it is sandboxed
    // into an origin of its own. At its own host it is not.
    let id = url.split("//").nth(1).unwrap().split('.').next().unwrap();
    let path_style = reqwest::Client::new()
        .get(format!("{}/_aws/lambda-url/{id}/", app.endpoint()))
        .header("cookie", "lamina_console=a-session; theirs=1")
        .send()
        .await
        .unwrap();
    assert_eq!(path_style.status(), 200);
    let csp = path_style.headers().get("content-security-policy");
    assert!(
        csp.is_some_and(|v| v.to_str().unwrap().starts_with("sandbox allow-scripts")),
        "{csp:?}"
    );
    // The function never sees the console's cookie, only its own.
    let event: serde_json::Value = path_style.json().await.unwrap();
    assert_eq!(event["cookies"], serde_json::json!(["theirs=1"]), "{event}");
    // A page of another site cannot call the API, even unsigned as the default account would.
    let cross = reqwest::Client::new()
        .post(format!(
            "{}/2015-03-31/functions/{name}/invocations",
            app.endpoint()
        ))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "no-cors")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(cross.headers()["x-amzn-errortype"], "AccessDeniedException");
    let host_style = reqwest::Client::new()
        .get(format!("{}/", app.endpoint()))
        .header(
            "host",
            url.trim_start_matches("http://").trim_end_matches('/'),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(host_style.status(), 200, "{:?}", host_style.headers());
    assert!(
        host_style
            .headers()
            .get("content-security-policy")
            .is_none()
    );
    eprintln!("console screenshots: {}", artifacts.display());
}
