//! Function URLs through clients we did not write: configured with the AWS CLI, called with
//! curl (host-style `*.localhost` names) and reqwest (path-style), signed with botocore for
//! `AWS_IAM`, answered by plain Python handlers and a `lambda_http` function.

use std::process::Command;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sns::{aws, cli};

/// Handlers for HTTP tests: each shows its event in the log and answers something to map.
pub(crate) const HTTP_HANDLERS: &[u8] = br#"import base64, json, time
def echo(event, context):
    print('EVENT ' + json.dumps(event))
    return {"statusCode": 200,
            "headers": {"content-type": "application/json", "access-control-allow-origin": "https://evil.example", "x-n": 7},
            "cookies": ["s=1; Path=/", "t=2"],
            "body": json.dumps(event)}
def bare(event, context):
    return {"hello": "world"}
def text(event, context):
    return "hello"
def binary(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
def fail(event, context):
    raise RuntimeError("boom")
def slow(event, context):
    time.sleep(3)
    return "late"
def v1echo(event, context):
    print('EVENT ' + json.dumps(event))
    return {"statusCode": 202, "headers": {"x-a": "1"}, "multiValueHeaders": {"x-m": ["a", "b"]}, "body": json.dumps(event)}
def auth_simple(event, context):
    print('AUTH ' + json.dumps(event))
    token = event["identitySource"][0]
    return {"isAuthorized": token == "allow", "context": {"user": "u1", "n": 1, "roles": ["a"]}}
def auth_policy(event, context):
    print('AUTH ' + json.dumps(event))
    source = event["identitySource"]
    token = source[0] if isinstance(source, list) else source.split(",")[0]
    arn = event.get("routeArn") or event["methodArn"]
    base = arn.split("/")[0]
    statements = [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": base + "/*"}]
    if token == "no-pets":
        statements.append({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": base + "/*/GET/pets/*"})
    return {"principalId": "user-" + token, "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": {"tier": "gold"}}
"#;

pub(crate) async fn deploy_http(c: &Client, name: &str, handler: &str) -> String {
    let f = c
        .create_function()
        .function_name(name)
        .runtime(Runtime::from(host_python().as_str()))
        .handler(format!("h.{handler}"))
        .role(ROLE)
        .timeout(10)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("h.py", HTTP_HANDLERS)])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
    f.function_arn().unwrap().to_owned()
}

/// Deploys the `lambda_http` example (`examples/http_echo.rs`) as `name`; returns its ARN.
pub(crate) async fn deploy_rust_http(c: &Client, name: &str) -> String {
    let bootstrap = std::fs::read(crate::runtime_clients::example("http_echo")).unwrap();
    let zip = crate::runtime_clients::package(&[("bootstrap", bootstrap)]);
    let f = c
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role(ROLE)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
    f.function_arn().unwrap().to_owned()
}

/// The events a function logged with `prefix`, oldest first.
pub(crate) async fn logged(endpoint: &str, function: &str, prefix: &str) -> Vec<Value> {
    log_lines(endpoint, function)
        .await
        .iter()
        .filter_map(|l| l.split_once(prefix).map(|(_, e)| e.trim()))
        .map(|e| serde_json::from_str(e).expect("the logged event is JSON"))
        .collect()
}

/// curl's answer: status, headers (lower-cased names), body.
pub(crate) fn curl(args: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D"])
        .arg(&head)
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&head).unwrap();
    // The final response's head (after any `100 Continue`).
    let last = head.rfind("HTTP/").unwrap_or(0);
    let mut lines = head[last..].lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, out.stdout)
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_configs_with_the_aws_cli() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let c = &app.client;
    let arn = deploy_http(c, "site", "echo").await;
    let created = cli(
        &ep,
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "site",
            "--auth-type",
            "NONE",
            "--cors",
            r#"{"AllowOrigins":["https://app.example"],"AllowMethods":["GET","POST"],"MaxAge":300}"#,
        ],
    );
    let url = created["FunctionUrl"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("http://") && url.contains(".lambda-url.us-east-1.localhost:"),
        "{url}"
    );
    assert_eq!(created["FunctionArn"], arn.as_str());
    assert_eq!(created["AuthType"], "NONE");
    assert_eq!(created["Cors"]["MaxAge"], 300);
    assert!(created.get("InvokeMode").is_none(), "{created}");
    let got = cli(
        &ep,
        &[
            "lambda",
            "get-function-url-config",
            "--function-name",
            "site",
        ],
    );
    assert_eq!(got["FunctionUrl"], url.as_str());
    assert_eq!(got["InvokeMode"], "BUFFERED");
    assert!(got["LastModifiedTime"].is_string());
    // A second one for the function conflicts; versions and $LATEST are not qualifiers here.
    let dup = aws(
        &ep,
        ("test", "test"),
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "site",
            "--auth-type",
            "NONE",
        ],
    )
    .unwrap_err();
    assert!(
        dup.contains("ResourceConflictException") && dup.contains("FunctionUrlConfig exists"),
        "{dup}"
    );
    let bad = aws(
        &ep,
        ("test", "test"),
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "site",
            "--qualifier",
            "1",
            "--auth-type",
            "NONE",
        ],
    )
    .unwrap_err();
    assert!(bad.contains("ValidationException"), "{bad}");
    let missing = aws(
        &ep,
        ("test", "test"),
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "nope",
            "--auth-type",
            "NONE",
        ],
    )
    .unwrap_err();
    assert!(missing.contains("ResourceNotFoundException"), "{missing}");
    // An alias gets its own URL.
    cli(
        &ep,
        &["lambda", "publish-version", "--function-name", "site"],
    );
    cli(
        &ep,
        &[
            "lambda",
            "create-alias",
            "--function-name",
            "site",
            "--name",
            "live",
            "--function-version",
            "1",
        ],
    );
    let live = cli(
        &ep,
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "site",
            "--qualifier",
            "live",
            "--auth-type",
            "AWS_IAM",
        ],
    );
    assert_eq!(live["FunctionArn"], format!("{arn}:live").as_str());
    assert_ne!(live["FunctionUrl"], url.as_str());
    let updated = cli(
        &ep,
        &[
            "lambda",
            "update-function-url-config",
            "--function-name",
            "site",
            "--auth-type",
            "AWS_IAM",
        ],
    );
    assert_eq!(updated["AuthType"], "AWS_IAM");
    assert_eq!(updated["Cors"]["MaxAge"], 300);
    let listed = cli(
        &ep,
        &[
            "lambda",
            "list-function-url-configs",
            "--function-name",
            "site",
        ],
    );
    assert_eq!(listed["FunctionUrlConfigs"].as_array().unwrap().len(), 2);
    // Deleting the function's URL leaves the alias's.
    cli(
        &ep,
        &[
            "lambda",
            "delete-function-url-config",
            "--function-name",
            "site",
        ],
    );
    let gone = aws(
        &ep,
        ("test", "test"),
        &[
            "lambda",
            "get-function-url-config",
            "--function-name",
            "site",
        ],
    )
    .unwrap_err();
    assert!(gone.contains("ResourceNotFoundException"), "{gone}");
    let listed = cli(
        &ep,
        &[
            "lambda",
            "list-function-url-configs",
            "--function-name",
            "site",
        ],
    );
    assert_eq!(
        listed["FunctionUrlConfigs"][0]["FunctionUrl"],
        live["FunctionUrl"]
    );
    // RESPONSE_STREAM is taken, shown, and an unknown mode refused.
    let stream = cli(
        &ep,
        &[
            "lambda",
            "update-function-url-config",
            "--function-name",
            "site",
            "--qualifier",
            "live",
            "--invoke-mode",
            "RESPONSE_STREAM",
        ],
    );
    assert_eq!(stream["InvokeMode"], "RESPONSE_STREAM", "{stream}");
    let unknown = aws(
        &ep,
        ("test", "test"),
        &[
            "lambda",
            "update-function-url-config",
            "--function-name",
            "site",
            "--qualifier",
            "live",
            "--invoke-mode",
            "CHUNKED",
        ],
    )
    .unwrap_err();
    assert!(unknown.contains("ValidationException"), "{unknown}");
    // The alias's URL answers until its function is deleted, then goes with it.
    let live_url = live["FunctionUrl"].as_str().unwrap();
    assert_eq!(
        curl(&[live_url]).0,
        403,
        "AWS_IAM: unsigned requests are refused"
    );
    cli(
        &ep,
        &["lambda", "delete-function", "--function-name", "site"],
    );
    let id = live_url
        .trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap();
    let resp = reqwest::get(format!("{ep}/_aws/lambda-url/{id}/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A function made again under the name starts without URLs.
    deploy_http(c, "site", "echo").await;
    let listed = cli(
        &ep,
        &[
            "lambda",
            "list-function-url-configs",
            "--function-name",
            "site",
        ],
    );
    assert_eq!(listed["FunctionUrlConfigs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_url_answers_curl_with_the_exact_event_and_mapped_response() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy_http(&app.client, "site", "echo").await;
    let created = cli(
        &ep,
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "site",
            "--auth-type",
            "NONE",
        ],
    );
    let url = created["FunctionUrl"].as_str().unwrap();
    let url_id = url.trim_start_matches("http://").split('.').next().unwrap();
    let (status, headers, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: text/plain",
        "-H",
        "x-dup: a",
        "-H",
        "x-dup: b",
        "-b",
        "c1=v1; c2=v2",
        "--data-binary",
        "hello body",
        &format!("{url}some/path?a=1&a=2&b=x%20y"),
    ]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The function's headers, its cookies as set-cookie, its body as sent.
    assert_eq!(header(&headers, "content-type"), ["application/json"]);
    assert_eq!(header(&headers, "x-n"), ["7"]);
    assert_eq!(header(&headers, "set-cookie"), ["s=1; Path=/", "t=2"]);
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/some/path");
    assert_eq!(event["rawQueryString"], "a=1&a=2&b=x%20y");
    assert_eq!(
        event["queryStringParameters"],
        json!({"a": "1,2", "b": "x y"})
    );
    assert_eq!(event["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(event["headers"]["x-dup"], "a,b");
    assert_eq!(event["headers"]["content-type"], "text/plain");
    assert_eq!(event["headers"]["x-forwarded-proto"], "http");
    assert_eq!(event["headers"]["x-forwarded-for"], "127.0.0.1");
    assert!(
        event["headers"]["host"]
            .as_str()
            .unwrap()
            .starts_with(url_id)
    );
    assert_eq!(event["body"], "hello body");
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["pathParameters"], Value::Null);
    assert_eq!(event["stageVariables"], Value::Null);
    let rc = &event["requestContext"];
    assert_eq!(rc["accountId"], "anonymous");
    assert_eq!(rc["apiId"], url_id);
    assert_eq!(rc["domainPrefix"], url_id);
    assert_eq!(
        rc["domainName"],
        format!("{url_id}.lambda-url.us-east-1.localhost").as_str()
    );
    assert_eq!(rc["http"]["method"], "POST");
    assert_eq!(rc["http"]["path"], "/some/path");
    assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
    assert!(
        rc["http"]["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("curl/")
    );
    assert_eq!(rc["stage"], "$default");
    assert_eq!(rc["routeKey"], "$default");
    assert_eq!(rc["authorizer"], Value::Null);
    assert!(rc["timeEpoch"].is_i64());
    assert_eq!(rc["time"].as_str().unwrap().len(), 26);
    // The same URL, path-style, without DNS; a binary body arrives as base64.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{ep}/_aws/lambda-url/{url_id}/bin"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let event: Value = resp.json().await.unwrap();
    assert_eq!(event["rawPath"], "/bin");
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "AJ+Slg==");
    // Unknown URLs are refused as Lambda refuses them.
    let resp = http
        .get(format!("{ep}/_aws/lambda-url/{}/", "z".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["x-amzn-errortype"], "AccessDeniedException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_results_binary_bodies_errors_and_cors() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let mut urls = std::collections::HashMap::new();
    for h in ["bare", "text", "binary", "fail", "echo"] {
        deploy_http(&app.client, h, h).await;
        let mut args = vec![
            "lambda",
            "create-function-url-config",
            "--function-name",
            h,
            "--auth-type",
            "NONE",
        ];
        let cors = r#"{"AllowOrigins":["https://app.example"],"AllowMethods":["GET","POST"],"AllowHeaders":["x-token"],"ExposeHeaders":["x-n"],"MaxAge":300}"#;
        if h == "echo" {
            args.extend(["--cors", cors]);
        }
        let u = cli(&ep, &args);
        urls.insert(h, u["FunctionUrl"].as_str().unwrap().to_owned());
    }
    let (s, h, b) = curl(&[&urls["bare"]]);
    assert_eq!((s, b.as_slice()), (200, &br#"{"hello":"world"}"#[..]));
    assert_eq!(header(&h, "content-type"), ["application/json"]);
    let (s, _, b) = curl(&[&urls["text"]]);
    assert_eq!((s, b.as_slice()), (200, &b"hello"[..]));
    let (s, h, b) = curl(&[&urls["binary"]]);
    assert_eq!(s, 200);
    assert_eq!(b, (0..=255u8).collect::<Vec<_>>());
    assert_eq!(header(&h, "content-type"), ["application/octet-stream"]);
    let (s, _, _) = curl(&[&urls["fail"]]);
    assert_eq!(s, 502);
    // Bodies beyond a synchronous invoke's 6 MB are refused at the gateway.
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big.path(), vec![b'x'; 7 << 20]).unwrap();
    let (s, _, _) = curl(&[
        "--data-binary",
        &format!("@{}", big.path().display()),
        &urls["text"],
    ]);
    assert_eq!(s, 413);
    // Preflight is answered by Lamina without running the function.
    let (s, h, _) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "origin: https://app.example",
        "-H",
        "access-control-request-method: POST",
        &urls["echo"],
    ]);
    assert_eq!(s, 200);
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        ["https://app.example"]
    );
    assert_eq!(header(&h, "access-control-allow-methods"), ["GET,POST"]);
    assert_eq!(header(&h, "access-control-allow-headers"), ["x-token"]);
    assert_eq!(header(&h, "access-control-max-age"), ["300"]);
    assert!(logged(&ep, "echo", "EVENT ").await.is_empty());
    // On a real request the configured headers win over the function's.
    let (s, h, _) = curl(&["-H", "origin: https://app.example", &urls["echo"]]);
    assert_eq!(s, 200);
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        ["https://app.example"]
    );
    assert_eq!(header(&h, "access-control-expose-headers"), ["x-n"]);
    let (_, h, _) = curl(&["-H", "origin: https://evil.example", &urls["echo"]]);
    assert!(
        header(&h, "access-control-allow-origin").is_empty(),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_http_reads_the_function_url_event() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy_rust_http(&app.client, "rusty-http").await;
    let u = cli(
        &ep,
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "rusty-http",
            "--auth-type",
            "NONE",
        ],
    );
    let url = u["FunctionUrl"].as_str().unwrap();
    let (s, h, b) = curl(&[
        "-X",
        "PUT",
        "-b",
        "k=v",
        "-H",
        "content-type: application/json",
        "--data-binary",
        r#"{"x":1}"#,
        &format!("{url}items/9?q=1&q=2"),
    ]);
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    assert_eq!(header(&h, "set-cookie"), ["flavour=oat"]);
    let seen: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/items/9");
    assert_eq!(seen["q"], json!(["1", "2"]));
    assert_eq!(seen["cookie"], "k=v");
    assert_eq!(seen["body"], r#"{"x":1}"#);
}

const AUTH: &str = r#"
[auth]
verify = true
[[auth.keys]]
access_key_id = "AKIDALICE"
secret_access_key = "alice-secret"
account = "111111111111"
[[auth.keys]]
access_key_id = "AKIDBOB"
secret_access_key = "bob-secret"
account = "222222222222"
"#;

/// Sends a request signed by botocore's SigV4 signer (service `lambda`), as the AWS docs show
/// for IAM-authenticated function URLs; prints status and body.
fn signed_get(url: &str, key: (&str, &str)) -> (u16, String) {
    signed(url, key, &[])
}

/// A request signed by botocore for `lambda`; `body` is `[signed]` or `[signed, sent]` (a
/// tampered body).
fn signed(url: &str, key: (&str, &str), body: &[&str]) -> (u16, String) {
    signed_for("lambda", url, key, body)
}

/// A request signed by botocore for `service` in us-east-1 (see [`signed`]).
pub fn signed_for(service: &str, url: &str, key: (&str, &str), body: &[&str]) -> (u16, String) {
    let program = r#"
import sys, urllib.request, urllib.error
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
body = sys.argv[4].encode() if len(sys.argv) > 5 else None
req = AWSRequest(method='POST' if body else 'GET', url=sys.argv[1], data=body)
SigV4Auth(Credentials(sys.argv[2], sys.argv[3]), sys.argv[-1], 'us-east-1').add_auth(req)
sent = sys.argv[5].encode() if len(sys.argv) > 6 else body
r = urllib.request.Request(sys.argv[1], data=sent, headers=dict(req.headers.items()))
try:
    resp = urllib.request.urlopen(r, timeout=20)
    print(resp.status); print(resp.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"#;
    let out = Command::new(python_venv().join("bin/python"))
        .args(["-c", program, url, key.0, key.1])
        .args(body)
        .arg(service)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, body) = text.split_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_urls_need_the_resource_policy_and_iam_urls_a_signature() {
    let app = spawn_app_with(AUTH).await;
    let ep = app.endpoint();
    let alice = sdk_client(&ep, "AKIDALICE", "alice-secret", "us-east-1");
    deploy_http(&alice, "open", "bare").await;
    deploy_http(&alice, "iam", "bare").await;
    let key = ("AKIDALICE", "alice-secret");
    let open = aws(
        &ep,
        key,
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "open",
            "--auth-type",
            "NONE",
        ],
    )
    .unwrap()["FunctionUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    // Without the statements a NONE URL is forbidden, as on Lambda.
    let (s, _, _) = curl(&[&open]);
    assert_eq!(s, 403);
    aws(
        &ep,
        key,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "open",
            "--statement-id",
            "url",
            "--action",
            "lambda:InvokeFunctionUrl",
            "--principal",
            "*",
            "--function-url-auth-type",
            "NONE",
        ],
    )
    .unwrap();
    // Both statements are needed, as for function URLs created since October 2025.
    let (s, _, _) = curl(&[&open]);
    assert_eq!(s, 403);
    aws(
        &ep,
        key,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "open",
            "--statement-id",
            "invoke",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "*",
            "--invoked-via-function-url",
        ],
    )
    .unwrap();
    let (s, _, b) = curl(&[&open]);
    assert_eq!((s, b.as_slice()), (200, &br#"{"hello":"world"}"#[..]));
    // AWS_IAM: unsigned and wrongly signed requests are refused; the owner's signature passes.
    let iam = aws(
        &ep,
        key,
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "iam",
            "--auth-type",
            "AWS_IAM",
        ],
    )
    .unwrap()["FunctionUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _, _) = curl(&[&iam]);
    assert_eq!(s, 403);
    // glibc's resolver (Python's) does not map *.localhost to loopback: path-style it is.
    let id = iam.trim_start_matches("http://").split('.').next().unwrap();
    let iam = format!("{ep}/_aws/lambda-url/{id}/");
    assert_eq!(signed_get(&iam, ("AKIDALICE", "wrong")).0, 403);
    let (s, b) = signed_get(&iam, key);
    assert_eq!((s, b.as_str()), (200, r#"{"hello":"world"}"#));
    // The signature covers the body: the same signature with another body is refused.
    assert_eq!(signed(&iam, key, &["{\"a\":1}"]).0, 200);
    assert_eq!(signed(&iam, key, &["{\"a\":1}", "{\"a\":2}"]).0, 403);
    // Another account needs a statement naming it.
    assert_eq!(signed_get(&iam, ("AKIDBOB", "bob-secret")).0, 403);
    aws(
        &ep,
        key,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "iam",
            "--statement-id",
            "bob-url",
            "--action",
            "lambda:InvokeFunctionUrl",
            "--principal",
            "222222222222",
            "--function-url-auth-type",
            "AWS_IAM",
        ],
    )
    .unwrap();
    aws(
        &ep,
        key,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "iam",
            "--statement-id",
            "bob",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "222222222222",
            "--invoked-via-function-url",
        ],
    )
    .unwrap();
    assert_eq!(signed_get(&iam, ("AKIDBOB", "bob-secret")).0, 200);
}
