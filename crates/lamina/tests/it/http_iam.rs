//! `AWS_IAM` routes of HTTP APIs: requests signed by botocore for `execute-api`, the signer seen
//! by the function in both payload formats, and unsigned or foreign callers refused.

use serde_json::Value;

use crate::helpers::*;
use crate::http_urls::{deploy_http, signed_for};
use crate::sdk_auth::AUTH;
use crate::sns::aws;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_routes_pass_the_signer_in_both_payload_formats() {
    let app = spawn_app_with(AUTH).await;
    let ep = app.endpoint();
    let key = ("AKIDALICE", "alice-secret");
    let alice = sdk_client(&ep, key.0, key.1, "us-east-1");
    let echo = deploy_http(&alice, "echo", "echo").await;
    let v1echo = deploy_http(&alice, "v1echo", "v1echo").await;
    let run = |args: &[&str]| aws(&ep, key, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let api = run(&[
        "apigatewayv2",
        "create-api",
        "--name",
        "private",
        "--protocol-type",
        "HTTP",
    ]);
    let api_id = api["ApiId"].as_str().unwrap().to_owned();
    let source = format!("arn:aws:execute-api:us-east-1:111111111111:{api_id}/*");
    for (f, version, path) in [("echo", "2.0", "/two"), ("v1echo", "1.0", "/one")] {
        run(&[
            "lambda",
            "add-permission",
            "--function-name",
            f,
            "--statement-id",
            "apigw",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "apigateway.amazonaws.com",
            "--source-arn",
            &source,
        ]);
        let arn = if f == "echo" { &echo } else { &v1echo };
        let i = run(&[
            "apigatewayv2",
            "create-integration",
            "--api-id",
            &api_id,
            "--integration-type",
            "AWS_PROXY",
            "--integration-uri",
            arn,
            "--payload-format-version",
            version,
        ]);
        let target = format!("integrations/{}", i["IntegrationId"].as_str().unwrap());
        let r = run(&[
            "apigatewayv2",
            "create-route",
            "--api-id",
            &api_id,
            "--route-key",
            &format!("GET {path}"),
            "--target",
            &target,
            "--authorization-type",
            "AWS_IAM",
        ]);
        assert_eq!(r["AuthorizationType"], "AWS_IAM");
    }
    run(&[
        "apigatewayv2",
        "create-stage",
        "--api-id",
        &api_id,
        "--stage-name",
        "$default",
        "--auto-deploy",
    ]);
    let url = |path: &str| format!("{ep}/_aws/execute-api/{api_id}{path}");
    let event = |path: &str| {
        let (s, b) = signed_for("execute-api", &url(path), key, &[]);
        assert!((200..300).contains(&s), "{path}: {s} {b}");
        serde_json::from_str::<Value>(&b).unwrap()
    };
    // Payload 2.0: the signer in `authorizer.iam`.
    let e = event("/two");
    let iam = &e["requestContext"]["authorizer"]["iam"];
    assert_eq!(iam["accessKey"], "AKIDALICE");
    assert_eq!(iam["accountId"], "111111111111");
    assert_eq!(iam["userArn"], "arn:aws:iam::111111111111:root");
    // Payload 1.0: the signer in `identity`, as REST APIs give it.
    let e = event("/one");
    let identity = &e["requestContext"]["identity"];
    assert_eq!(identity["accessKey"], "AKIDALICE");
    assert_eq!(identity["accountId"], "111111111111");
    assert_eq!(identity["caller"], "111111111111");
    assert_eq!(identity["user"], "111111111111");
    assert_eq!(identity["userArn"], "arn:aws:iam::111111111111:root");
    assert_eq!(identity["sourceIp"], "127.0.0.1");
    // Unsigned, signed for another service, wrongly signed, or by another account: refused.
    for path in ["/one", "/two"] {
        let plain = reqwest::get(url(path)).await.unwrap();
        assert_eq!(plain.status(), 403, "{path} unsigned");
        assert_eq!(signed_for("lambda", &url(path), key, &[]).0, 403);
        let wrong = ("AKIDALICE", "wrong");
        assert_eq!(signed_for("execute-api", &url(path), wrong, &[]).0, 403);
        let bob = ("AKIDBOB", "bob-secret");
        assert_eq!(signed_for("execute-api", &url(path), bob, &[]).0, 403);
    }
}
