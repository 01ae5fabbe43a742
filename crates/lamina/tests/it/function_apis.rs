//! Functions calling Lamina's own APIs with an AWS SDK, as functions on Lambda call AWS with
//! their role's credentials: boto3 in a Python function finds its credentials and the services'
//! endpoints in its environment, and acts as its own account, with no configuration.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use serde_json::json;

use crate::helpers::*;

/// What the function does: calls Lambda and SNS through boto3 with what its environment gives
/// it, then tries what it must not be able to do.
const CALLER: &str = r#"
import json, os, urllib.error, urllib.request
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

def refused(**kw):
    try:
        boto3.client("lambda", **kw).list_functions()
        return "served"
    except ClientError as e:
        return e.response["Error"]["Code"]

def status(path, signed=False):
    url = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + path
    headers = {}
    if signed:
        creds = boto3.Session().get_credentials().get_frozen_credentials()
        req = AWSRequest(method="GET", url=url)
        SigV4Auth(creds, "lambda", os.environ["AWS_REGION"]).add_auth(req)
        headers = dict(req.headers.items())
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code

def too_big():
    try:
        code = {"ZipFile": b"x" * (7 << 20)}
        boto3.client("lambda").create_function(FunctionName="big", Runtime="provided.al2023", Role="arn:aws:iam::000000000000:role/r", Handler="x", Code=code)
        return "served"
    except ClientError as e:
        return e.response["Error"]["Code"] + ": " + e.response["Error"]["Message"]

def handler(event, context):
    env = os.environ
    lam, sns = boto3.client("lambda"), boto3.client("sns")
    topic = sns.create_topic(Name="made-inside")["TopicArn"]
    answer = lam.invoke(FunctionName="echo", Payload=json.dumps({"from": "inside"}))
    return {
        "key": env["AWS_ACCESS_KEY_ID"],
        "secret": env["AWS_SECRET_ACCESS_KEY"],
        "token": env["AWS_SESSION_TOKEN"],
        "topic": topic,
        "topics": sorted(t["TopicArn"] for t in sns.list_topics()["Topics"]),
        "echo": json.loads(answer["Payload"].read()),
        "functions": sorted(f["FunctionName"] for f in lam.list_functions()["Functions"]),
        "other_key": refused(aws_access_key_id=event["key"], aws_secret_access_key=event["secret"], aws_session_token=None),
        "no_token": refused(aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], aws_session_token=None),
        "unsigned": status("/2015-03-31/functions/"),
        "console": status("/console", signed=True),
        "code": status("/_lamina/code/x", signed=True),
        "big": too_big() if event.get("big") else None,
    }
"#;

/// botocore's models of the services the function calls; the rest are left out of the layer.
const MODELS: &[&str] = &["lambda", "sns"];

/// boto3 and its (pure Python) dependencies from PyPI as a layer (`python/`), installed once.
fn boto3_layer() -> Vec<u8> {
    // The tests' own virtualenv has pip (Debian's python3 may not).
    let pip = python_venv().join("bin/pip");
    let dir = installed_once("boto3-layer", |dir| {
        Command::new(&pip)
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(["--no-warn-conflicts", "--target"])
            .arg(dir)
            .arg("boto3")
            .status()
            .is_ok_and(|s| s.success())
    });
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add_tree(&mut w, &dir, "python");
    w.finish().unwrap().into_inner()
}

fn add_tree(w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, dir: &Path, prefix: &str) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let model = name
            .strip_prefix("python/botocore/data/")
            .is_some_and(|m| !m.contains('/'));
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            let skipped = name.ends_with("__pycache__")
                || name == "python/bin"
                || (model && !MODELS.iter().any(|m| name.ends_with(&format!("/{m}"))));
            if !skipped {
                add_tree(w, &e.path(), &name);
            }
        } else if kind.is_file() {
            w.start_file(&name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(&std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

async fn python(c: &Client, name: &str, code: &str, layers: &[String]) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        // boto3's import takes a third of a second of CPU: a whole vCPU for it.
        .memory_size(1769)
        .timeout(60)
        .set_layers(Some(layers.to_vec()))
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", code.as_bytes())])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// Creates `echo` and `caller` in `c`'s account and has `caller` call Lamina, passing it
/// another account's key to try (and a request too large for a function, if `big`); returns
/// what it saw.
async fn call_from_inside(c: &Client, other: (&str, &str), big: bool) -> serde_json::Value {
    let layer = publish_boto3(c).await;
    let echo = "def handler(event, context):\n    return event\n";
    python(c, "echo", echo, &[]).await;
    python(c, "caller", CALLER, &[layer]).await;
    let event = json!({ "key": other.0, "secret": other.1, "big": big });
    invoke_json(c, "caller", &event).await
}

/// [`boto3_layer`] published in `c`'s account; its version's ARN.
async fn publish_boto3(c: &Client) -> String {
    let zip = tokio::task::spawn_blocking(boto3_layer).await.unwrap();
    publish_layer(c, "boto3", zip).await
}

/// The official Rust SDK outside, with a session token.
fn client_with_token(endpoint: &str, key: &str, secret: &str, token: &str) -> Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            key,
            secret,
            Some(token.to_owned()),
            None,
            "function",
        ))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(conf)
}

#[tokio::test]
async fn a_function_calls_lamina_as_its_own_account_with_the_credentials_it_is_given() {
    let app = spawn_app_with(crate::sdk_auth::AUTH).await;
    let alice = sdk_client(&app.endpoint(), "AKIDALICE", "alice-secret", "us-east-1");
    let bob = sdk_client(&app.endpoint(), "AKIDBOB", "bob-secret", "us-east-1");
    create(&bob, "bobs-own", python_zip("bob")).await;

    let seen = call_from_inside(&alice, ("AKIDBOB", "bob-secret"), false).await;
    // boto3, with nothing but its environment, reached Lamina's SNS and Lambda as Alice.
    assert_eq!(
        seen["topic"], "arn:aws:sns:us-east-1:111111111111:made-inside",
        "{seen}"
    );
    assert_eq!(seen["topics"], json!([seen["topic"]]));
    assert_eq!(seen["echo"], json!({ "from": "inside" }));
    assert_eq!(seen["functions"], json!(["caller", "echo"]));
    // Bob's key is refused inside, though it would be served outside, and so is the
    // environment's own key without its token. Unsigned requests are not the APIs' there, and
    // the console and code downloads are refused even signed.
    assert_eq!(seen["other_key"], "UnrecognizedClientException");
    assert_eq!(seen["no_token"], "UnrecognizedClientException");
    assert_eq!(seen["unsigned"], 404);
    assert_eq!(seen["console"], 403);
    assert_eq!(seen["code"], 403);
    let key = seen["key"].as_str().unwrap();
    assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");

    // The credentials are good inside their environment only.
    let outside = client_with_token(
        &app.endpoint(),
        key,
        seen["secret"].as_str().unwrap(),
        seen["token"].as_str().unwrap(),
    );
    assert_error(
        outside.list_functions().send().await,
        "UnrecognizedClientException",
        "security token",
    );
    // Each environment has credentials of its own.
    let again = invoke_json(
        &alice,
        "caller",
        &json!({ "key": "AKIDBOB", "secret": "bob-secret" }),
    )
    .await;
    assert_eq!(again["key"], seen["key"], "the same warm environment");
    alice
        .update_function_configuration()
        .function_name("caller")
        .description("a new environment")
        .send()
        .await
        .unwrap();
    wait_updated(&alice, "caller").await;
    let fresh = invoke_json(
        &alice,
        "caller",
        &json!({ "key": "AKIDBOB", "secret": "bob-secret" }),
    )
    .await;
    assert_ne!(fresh["key"], seen["key"]);
    assert_ne!(fresh["token"], seen["token"]);
}

#[tokio::test]
async fn without_signature_checks_a_function_still_acts_only_as_its_own_account() {
    // The server takes any key as given, and unsigned requests as the default account's.
    let app = spawn_app().await;
    let c = sdk_client(&app.endpoint(), "AKIDANY", "any", "us-east-1");
    let seen = call_from_inside(&c, ("AKIDOTHER", "other-secret"), true).await;
    assert_eq!(
        seen["topic"], "arn:aws:sns:us-east-1:000000000000:made-inside",
        "{seen}"
    );
    assert_eq!(seen["echo"], json!({ "from": "inside" }));
    // Outside, these would all be served as the default account.
    assert_eq!(seen["other_key"], "UnrecognizedClientException");
    assert_eq!(seen["no_token"], "UnrecognizedClientException");
    assert_eq!(seen["unsigned"], 404);
    // A function's request bodies are bounded below what the API takes from outside.
    assert_eq!(
        seen["big"],
        "RequestEntityTooLargeException: Request must be smaller than 8388608 bytes for the CreateFunction operation"
    );
}

/// Waits until a configuration update has been applied.
async fn wait_updated(c: &Client, name: &str) {
    for _ in 0..100 {
        let f = c
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        if f.last_update_status() != Some(&aws_sdk_lambda::types::LastUpdateStatus::InProgress) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{name}'s update did not finish");
}

/// A function that subscribes itself to a topic, then publishes to it at every invocation.
const LOOPER: &str = r#"
import boto3

def handler(event, context):
    sns = boto3.client("sns")
    if "Records" in event:
        topic = event["Records"][0]["Sns"]["TopicArn"]
    else:
        topic = sns.create_topic(Name="loop")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=context.invoked_function_arn)
    sns.publish(TopicArn=topic, Message="again")
    return "published"
"#;

/// The function's invocations (its START lines) once three seconds pass without a new one
/// (`Ok`), or once more than `beyond` or after a minute or two (`Err`).
async fn invocations_when_still(
    endpoint: &str,
    function: &str,
    beyond: usize,
) -> Result<usize, usize> {
    let (mut seen, mut still) = (0, 0);
    for _ in 0..240 {
        let starts = log_lines(endpoint, function)
            .await
            .iter()
            .filter(|l| l.starts_with("START "))
            .count();
        if starts == seen {
            still += 1;
            if still == 12 {
                return Ok(seen);
            }
        } else {
            (seen, still) = (starts, 0);
        }
        if seen > beyond {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Err(seen)
}

#[tokio::test]
async fn a_function_feeding_its_own_topic_is_stopped_after_sixteen_invocations() {
    use aws_sdk_lambda::types::RecursiveLoop;
    let app = spawn_app().await;
    let c = sdk_client(&app.endpoint(), "AKIDANY", "any", "us-east-1");
    let layer = publish_boto3(&c).await;
    python(&c, "looper", LOOPER, &[layer]).await;
    let config = |c: &Client| {
        c.get_function_recursion_config()
            .function_name("looper")
            .send()
    };
    assert_eq!(
        config(&c).await.unwrap().recursive_loop(),
        Some(&RecursiveLoop::Terminate)
    );
    assert_eq!(invoke_json(&c, "looper", &json!({})).await, "published");
    // The one invoked from outside, then fifteen by the topic: the sixteenth message's event
    // is dropped, as Lambda stops a loop.
    let seen = invocations_when_still(&app.endpoint(), "looper", 40).await;
    assert_eq!(
        seen,
        Ok(16),
        "invocations of a function feeding its own topic"
    );
    let dropped = metrics(&app.endpoint()).await;
    let line = dropped
        .lines()
        .find(|l| {
            l.starts_with("lamina_async_events_dropped_total{")
                && l.contains("looper")
                && l.contains(r#"reason="RecursiveInvocationException""#)
        })
        .unwrap_or_else(|| panic!("no count of dropped invocations:\n{dropped}"));
    assert!(line.ends_with(" 1"), "{line}");

    // Allowed, the loop runs on until it is stopped again.
    let put = |value: RecursiveLoop| {
        c.put_function_recursion_config()
            .function_name("looper")
            .recursive_loop(value)
            .send()
    };
    assert_eq!(
        put(RecursiveLoop::Allow).await.unwrap().recursive_loop(),
        Some(&RecursiveLoop::Allow)
    );
    assert_eq!(invoke_json(&c, "looper", &json!({})).await, "published");
    let running = invocations_when_still(&app.endpoint(), "looper", 16 + 40).await;
    assert!(
        running.is_err_and(|n| n > 16 + 40),
        "an allowed loop stopped: {running:?}"
    );
    put(RecursiveLoop::Terminate).await.unwrap();
    let stopped = invocations_when_still(&app.endpoint(), "looper", 2000).await;
    assert!(
        stopped.is_ok(),
        "the loop ran on after Terminate: {stopped:?}"
    );
    assert_error(
        c.put_function_recursion_config()
            .function_name("looper")
            .recursive_loop(RecursiveLoop::from("Sometimes"))
            .send()
            .await,
        "ValidationException",
        "[Allow, Terminate]",
    );
    assert_error(
        c.get_function_recursion_config()
            .function_name("looper:1")
            .send()
            .await,
        "InvalidParameterValueException",
        "Aliases and versions",
    );
}
