//! HTTP APIs through clients we did not write: built with the AWS CLI (`apigatewayv2`), called
//! with curl and reqwest, answered by plain Python handlers and a `lambda_http` function; Lambda
//! authorizers with their cache, context and policies; the gateway's own errors.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::http_urls::{curl, deploy_http, deploy_rust_http, header, logged};
use crate::sns::{aws, cli, counter};

fn id(v: &Value, member: &str) -> String {
    v[member]
        .as_str()
        .unwrap_or_else(|| panic!("{member} in {v}"))
        .to_owned()
}

fn integration(ep: &str, api: &str, function_arn: &str, version: &str) -> String {
    id(
        &cli(
            ep,
            &[
                "apigatewayv2",
                "create-integration",
                "--api-id",
                api,
                "--integration-type",
                "AWS_PROXY",
                "--integration-uri",
                function_arn,
                "--payload-format-version",
                version,
            ],
        ),
        "IntegrationId",
    )
}

fn route(ep: &str, api: &str, key: &str, integration: &str, extra: &[&str]) -> String {
    let target = format!("integrations/{integration}");
    let mut args = vec![
        "apigatewayv2",
        "create-route",
        "--api-id",
        api,
        "--route-key",
        key,
        "--target",
        &target,
    ];
    args.extend(extra);
    id(&cli(ep, &args), "RouteId")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_create_answers_at_the_api_endpoint() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let arn = deploy_http(&app.client, "echo", "echo").await;
    let api = cli(
        &ep,
        &[
            "apigatewayv2",
            "create-api",
            "--name",
            "quick",
            "--protocol-type",
            "HTTP",
            "--target",
            &arn,
        ],
    );
    let api_id = id(&api, "ApiId");
    let endpoint = id(&api, "ApiEndpoint");
    assert_eq!(
        endpoint,
        format!("http://{api_id}.execute-api.localhost:{}", app.addr.port())
    );
    assert_eq!(
        api["RouteSelectionExpression"],
        "$request.method $request.path"
    );
    let (s, _, b) = curl(&[&format!("{endpoint}/hello/world?x=1")]);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let event: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/hello/world");
    assert_eq!(event["rawQueryString"], "x=1");
    let rc = &event["requestContext"];
    assert_eq!(rc["stage"], "$default");
    assert_eq!(rc["apiId"], api_id.as_str());
    assert_eq!(rc["accountId"], "000000000000");
    assert_eq!(
        rc["domainName"],
        format!("{api_id}.execute-api.localhost").as_str()
    );
    assert!(rc.get("authorizer").is_none());
    // What quick create made, as the CLI lists it.
    let routes = cli(&ep, &["apigatewayv2", "get-routes", "--api-id", &api_id]);
    assert_eq!(routes["Items"][0]["RouteKey"], "$default");
    assert_eq!(routes["Items"][0]["ApiGatewayManaged"], true);
    let integrations = cli(
        &ep,
        &["apigatewayv2", "get-integrations", "--api-id", &api_id],
    );
    assert_eq!(integrations["Items"][0]["PayloadFormatVersion"], "2.0");
    assert_eq!(integrations["Items"][0]["IntegrationType"], "AWS_PROXY");
    let stages = cli(&ep, &["apigatewayv2", "get-stages", "--api-id", &api_id]);
    assert_eq!(stages["Items"][0]["StageName"], "$default");
    assert_eq!(stages["Items"][0]["AutoDeploy"], true);
    // Path-style, for hosts that do not resolve *.localhost.
    let resp = reqwest::get(format!("{ep}/_aws/execute-api/{api_id}/x"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let event: Value = resp.json().await.unwrap();
    assert_eq!(event["rawPath"], "/x");
    // Errors in API Gateway's shapes.
    let missing = aws(
        &ep,
        ("test", "test"),
        &["apigatewayv2", "get-api", "--api-id", "nope123"],
    )
    .unwrap_err();
    assert!(missing.contains("NotFoundException"), "{missing}");
    let bad = aws(
        &ep,
        ("test", "test"),
        &[
            "apigatewayv2",
            "create-route",
            "--api-id",
            &api_id,
            "--route-key",
            "FETCH /x",
        ],
    )
    .unwrap_err();
    assert!(bad.contains("BadRequestException"), "{bad}");
    let named = format!("id=\"{api_id}\"");
    assert!(
        metrics(&ep).await.contains(&named),
        "its requests are counted"
    );
    cli(&ep, &["apigatewayv2", "delete-api", "--api-id", &api_id]);
    let (s, _, b) = curl(&[&format!("{endpoint}/hello")]);
    assert_eq!((s, b.as_slice()), (404, &br#"{"message":"Not Found"}"#[..]));
    // Its series went with it.
    let text = metrics(&ep).await;
    assert!(!text.contains(&named), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_stages_payload_versions_and_deployments() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let echo = deploy_http(&app.client, "echo", "echo").await;
    let v1echo = deploy_http(&app.client, "v1echo", "v1echo").await;
    let api = cli(
        &ep,
        &[
            "apigatewayv2",
            "create-api",
            "--name",
            "pets",
            "--protocol-type",
            "HTTP",
        ],
    );
    let api_id = id(&api, "ApiId");
    let endpoint = id(&api, "ApiEndpoint");
    let i2 = integration(&ep, &api_id, &echo, "2.0");
    let i1 = integration(&ep, &api_id, &v1echo, "1.0");
    route(&ep, &api_id, "GET /pets/{id}", &i2, &[]);
    route(&ep, &api_id, "GET /pets/dog/1", &i2, &[]);
    route(&ep, &api_id, "ANY /{proxy+}", &i1, &[]);
    cli(
        &ep,
        &[
            "apigatewayv2",
            "create-stage",
            "--api-id",
            &api_id,
            "--stage-name",
            "dev",
            "--auto-deploy",
            "--stage-variables",
            "color=blue",
        ],
    );
    let get = |path: &str| curl(&[&format!("{endpoint}{path}")]);
    let (s, _, b) = get("/dev/pets/7");
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let e: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(e["routeKey"], "GET /pets/{id}");
    assert_eq!(e["rawPath"], "/dev/pets/7");
    assert_eq!(e["requestContext"]["http"]["path"], "/dev/pets/7");
    assert_eq!(e["requestContext"]["stage"], "dev");
    assert_eq!(e["pathParameters"], json!({"id": "7"}));
    assert_eq!(e["stageVariables"], json!({"color": "blue"}));
    let (_, _, b) = get("/dev/pets/dog/1");
    let e: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(e["routeKey"], "GET /pets/dog/1");
    // Payload 1.0 through the greedy route.
    let (s, h, b) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        "x=1",
        &format!("{endpoint}/dev/any/thing?q=1&q=2"),
    ]);
    assert_eq!(s, 202);
    assert_eq!(header(&h, "x-m"), ["a", "b"]);
    assert_eq!(header(&h, "x-a"), ["1"]);
    let e: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(e["version"], "1.0");
    assert_eq!(e["resource"], "/{proxy+}");
    assert_eq!(e["httpMethod"], "POST");
    assert_eq!(e["path"], "/dev/any/thing");
    assert_eq!(e["pathParameters"], json!({"proxy": "any/thing"}));
    assert_eq!(e["multiValueQueryStringParameters"]["q"], json!(["1", "2"]));
    assert_eq!(e["queryStringParameters"]["q"], "2");
    assert_eq!(e["body"], "x=1");
    assert_eq!(e["requestContext"]["stage"], "dev");
    // No stage of that name and no $default stage: not found.
    let (s, _, b) = get("/prod/pets/7");
    assert_eq!((s, b.as_slice()), (404, &br#"{"message":"Not Found"}"#[..]));
    // A stage without automatic deployment serves nothing until deployed, then what was deployed.
    cli(
        &ep,
        &[
            "apigatewayv2",
            "create-stage",
            "--api-id",
            &api_id,
            "--stage-name",
            "manual",
        ],
    );
    assert_eq!(get("/manual/pets/7").0, 404);
    let d = cli(
        &ep,
        &[
            "apigatewayv2",
            "create-deployment",
            "--api-id",
            &api_id,
            "--stage-name",
            "manual",
        ],
    );
    assert_eq!(d["DeploymentStatus"], "DEPLOYED");
    assert_eq!(get("/manual/pets/7").0, 200);
    let r = route(&ep, &api_id, "GET /new", &i2, &[]);
    assert_eq!(get("/dev/new").0, 200, "auto-deployed");
    let (_, _, b) = get("/manual/new");
    let e: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        e["version"], "1.0",
        "the manual stage still serves its deployment"
    );
    cli(
        &ep,
        &[
            "apigatewayv2",
            "delete-route",
            "--api-id",
            &api_id,
            "--route-id",
            &r,
        ],
    );
    // Deployed deployments cannot go while a stage serves them.
    let busy = aws(
        &ep,
        ("test", "test"),
        &[
            "apigatewayv2",
            "delete-deployment",
            "--api-id",
            &api_id,
            "--deployment-id",
            &id(&d, "DeploymentId"),
        ],
    )
    .unwrap_err();
    assert!(busy.contains("BadRequestException"), "{busy}");
    // lambda_http reads a 2.0 event of a named stage.
    let rusty = deploy_rust_http(&app.client, "rusty-http").await;
    let ir = integration(&ep, &api_id, &rusty, "2.0");
    route(&ep, &api_id, "PUT /items/{id}", &ir, &[]);
    let (s, _, b) = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        "payload",
        &format!("{endpoint}/dev/items/42?q=z"),
    ]);
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let seen: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(seen["id"], "42");
    assert_eq!(seen["stage"], "dev");
    assert_eq!(seen["q"], json!(["z"]));
    assert_eq!(seen["body"], "payload");
}

/// An API with one 2.0 integration to `echo` and an authorizer; returns (api id, endpoint,
/// integration id, authorizer id).
async fn api_with_authorizer(
    ep: &str,
    echo: &str,
    auth_arn: &str,
    simple: bool,
    ttl: &str,
) -> (String, String, String, String) {
    let api = cli(
        ep,
        &[
            "apigatewayv2",
            "create-api",
            "--name",
            "guarded",
            "--protocol-type",
            "HTTP",
        ],
    );
    let api_id = id(&api, "ApiId");
    let i = integration(ep, &api_id, echo, "2.0");
    let uri = format!(
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{auth_arn}/invocations"
    );
    let mut args = vec![
        "apigatewayv2",
        "create-authorizer",
        "--api-id",
        &api_id,
        "--name",
        "au",
        "--authorizer-type",
        "REQUEST",
        "--identity-source",
        "$request.header.Authorization",
        "--authorizer-uri",
        &uri,
        "--authorizer-payload-format-version",
        "2.0",
        "--authorizer-result-ttl-in-seconds",
        ttl,
    ];
    if simple {
        args.push("--enable-simple-responses");
    }
    let a = id(&cli(ep, &args), "AuthorizerId");
    cli(
        ep,
        &[
            "apigatewayv2",
            "create-stage",
            "--api-id",
            &api_id,
            "--stage-name",
            "$default",
            "--auto-deploy",
        ],
    );
    (api_id, id(&api, "ApiEndpoint"), i, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_authorizers_decide_pass_context_and_cache() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let echo = deploy_http(&app.client, "echo", "echo").await;
    let simple = deploy_http(&app.client, "auth-simple", "auth_simple").await;
    let (api_id, endpoint, i, a) = api_with_authorizer(&ep, &echo, &simple, true, "300").await;
    route(
        &ep,
        &api_id,
        "GET /pets/{id}",
        &i,
        &["--authorization-type", "CUSTOM", "--authorizer-id", &a],
    );
    let call = |token: Option<&str>| {
        let url = format!("{endpoint}/pets/1");
        match token {
            Some(t) => curl(&["-H", &format!("authorization: {t}"), &url]),
            None => curl(&[&url]),
        }
    };
    let auth_calls = || async { logged(&ep, "auth-simple", "AUTH ").await };
    // No identity: 401 without invoking the authorizer.
    let (s, _, b) = call(None);
    assert_eq!(
        (s, b.as_slice()),
        (401, &br#"{"message":"Unauthorized"}"#[..])
    );
    assert!(auth_calls().await.is_empty());
    // Allowed: the authorizer's context reaches the function, JSON types kept.
    let (s, _, b) = call(Some("allow"));
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let e: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        e["requestContext"]["authorizer"],
        json!({"lambda": {"user": "u1", "n": 1, "roles": ["a"]}})
    );
    let calls = auth_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["type"], "REQUEST");
    assert_eq!(calls[0]["identitySource"], json!(["allow"]));
    assert_eq!(
        calls[0]["routeArn"],
        format!("arn:aws:execute-api:us-east-1:000000000000:{api_id}/$default/GET/pets/1").as_str()
    );
    assert_eq!(calls[0]["routeKey"], "GET /pets/{id}");
    // Within the TTL the same identity is answered from the cache.
    assert_eq!(call(Some("allow")).0, 200);
    assert_eq!(auth_calls().await.len(), 1);
    // Denied: 403.
    let (s, _, b) = call(Some("deny"));
    assert_eq!((s, b.as_slice()), (403, &br#"{"message":"Forbidden"}"#[..]));
    assert_eq!(auth_calls().await.len(), 2);
    // ResetAuthorizersCache empties the stage's cache.
    cli(
        &ep,
        &[
            "apigatewayv2",
            "reset-authorizers-cache",
            "--api-id",
            &api_id,
            "--stage-name",
            "$default",
        ],
    );
    assert_eq!(call(Some("allow")).0, 200);
    assert_eq!(auth_calls().await.len(), 3);
    // All of it in the metrics, per API.
    let hits = format!("api=\"{api_id}\",result=\"hit\"");
    assert_eq!(
        counter(&ep, "lamina_http_authorizer_cache_total", &hits).await,
        1.0
    );
    let of = |class: &str| format!("gateway=\"api\",id=\"{api_id}\",status=\"{class}\"");
    assert_eq!(
        counter(&ep, "lamina_http_requests_total", &of("2xx")).await,
        3.0
    );
    assert_eq!(
        counter(&ep, "lamina_http_requests_total", &of("4xx")).await,
        2.0
    );

    // An IAM-policy authorizer: Deny wins over Allow, per route.
    let policy = deploy_http(&app.client, "auth-policy", "auth_policy").await;
    let (api_id, endpoint, i, a) = api_with_authorizer(&ep, &echo, &policy, false, "0").await;
    for key in ["GET /pets/{id}", "GET /cats"] {
        route(
            &ep,
            &api_id,
            key,
            &i,
            &["--authorization-type", "CUSTOM", "--authorizer-id", &a],
        );
    }
    let with = |token: &str, path: &str| {
        curl(&[
            "-H",
            &format!("authorization: {token}"),
            &format!("{endpoint}{path}"),
        ])
    };
    let (s, _, b) = with("no-pets", "/cats");
    assert_eq!(s, 200);
    let e: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(e["requestContext"]["authorizer"]["lambda"]["tier"], "gold");
    assert_eq!(with("no-pets", "/pets/3").0, 403);
    assert_eq!(with("anyone", "/pets/3").0, 200);
    // TTL 0: every request asks the authorizer.
    assert_eq!(logged(&ep, "auth-policy", "AUTH ").await.len(), 3);

    // Payload 1.0 throughout: the authorizer gets a 1.0 request with methodArn and the query
    // string as its identity; a 1.0 integration gets the context flat, as strings.
    let v1echo = deploy_http(&app.client, "v1echo", "v1echo").await;
    let api = cli(
        &ep,
        &[
            "apigatewayv2",
            "create-api",
            "--name",
            "v1",
            "--protocol-type",
            "HTTP",
        ],
    );
    let api_id = id(&api, "ApiId");
    let i = integration(&ep, &api_id, &v1echo, "1.0");
    let uri = format!(
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{policy}/invocations"
    );
    let a = id(
        &cli(
            &ep,
            &[
                "apigatewayv2",
                "create-authorizer",
                "--api-id",
                &api_id,
                "--name",
                "v1",
                "--authorizer-type",
                "REQUEST",
                "--identity-source",
                "$request.querystring.token",
                "--authorizer-uri",
                &uri,
                "--authorizer-payload-format-version",
                "1.0",
            ],
        ),
        "AuthorizerId",
    );
    route(
        &ep,
        &api_id,
        "GET /cats",
        &i,
        &["--authorization-type", "CUSTOM", "--authorizer-id", &a],
    );
    cli(
        &ep,
        &[
            "apigatewayv2",
            "create-stage",
            "--api-id",
            &api_id,
            "--stage-name",
            "$default",
            "--auto-deploy",
        ],
    );
    let endpoint = id(&api, "ApiEndpoint");
    assert_eq!(
        curl(&[&format!("{endpoint}/cats")]).0,
        401,
        "no token in the query"
    );
    let (s, _, b) = curl(&[&format!("{endpoint}/cats?token=t1")]);
    assert_eq!(s, 202, "{}", String::from_utf8_lossy(&b));
    let e: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(e["requestContext"]["authorizer"]["tier"], "gold");
    assert_eq!(e["requestContext"]["authorizer"]["principalId"], "user-t1");
    let asked = logged(&ep, "auth-policy", "AUTH ").await;
    let last = asked.last().unwrap();
    assert_eq!(last["version"], "1.0");
    assert_eq!(last["type"], "REQUEST");
    assert_eq!(last["identitySource"], "t1");
    assert_eq!(
        last["methodArn"],
        format!("arn:aws:execute-api:us-east-1:000000000000:{api_id}/$default/GET/cats").as_str()
    );
}

const AUTH: &str = r#"
[auth]
verify = true
[[auth.keys]]
access_key_id = "AKIDALICE"
secret_access_key = "alice-secret"
account = "111111111111"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_timeouts_cors_and_the_invoke_permission() {
    let app = spawn_app_with(AUTH).await;
    let ep = app.endpoint();
    let key = ("AKIDALICE", "alice-secret");
    let alice = sdk_client(&ep, key.0, key.1, "us-east-1");
    let echo = deploy_http(&alice, "echo", "echo").await;
    let fail = deploy_http(&alice, "fail", "fail").await;
    let slow = deploy_http(&alice, "slow", "slow").await;
    let run = |args: &[&str]| aws(&ep, key, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let api = run(&[
        "apigatewayv2",
        "create-api",
        "--name",
        "site",
        "--protocol-type",
        "HTTP",
        "--target",
        &echo,
        "--cors-configuration",
        r#"{"AllowOrigins":["https://app.example"],"AllowMethods":["GET"],"MaxAge":60}"#,
    ]);
    let api_id = id(&api, "ApiId");
    let endpoint = id(&api, "ApiEndpoint");
    // Without a permission for API Gateway the caller sees a 500, as on AWS.
    let (s, _, b) = curl(&[&format!("{endpoint}/x")]);
    assert_eq!(
        (s, b.as_slice()),
        (500, &br#"{"message":"Internal Server Error"}"#[..])
    );
    let source = format!("arn:aws:execute-api:us-east-1:111111111111:{api_id}/*");
    for f in ["echo", "fail", "slow"] {
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
    }
    let (s, h, _) = curl(&[
        "-H",
        "origin: https://app.example",
        &format!("{endpoint}/x"),
    ]);
    assert_eq!(s, 200);
    // The gateway's CORS headers replace the function's.
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        ["https://app.example"]
    );
    let (s, h, _) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "origin: https://app.example",
        "-H",
        "access-control-request-method: GET",
        &format!("{endpoint}/x"),
    ]);
    assert_eq!(s, 204);
    assert_eq!(header(&h, "access-control-allow-methods"), ["GET"]);
    assert_eq!(header(&h, "access-control-max-age"), ["60"]);
    // A function error is a 500; a function slower than the integration timeout a 503.
    let i = integration_as(&run, &api_id, &fail, &[]);
    run(&[
        "apigatewayv2",
        "create-route",
        "--api-id",
        &api_id,
        "--route-key",
        "GET /fail",
        "--target",
        &format!("integrations/{i}"),
    ]);
    let (s, _, _) = curl(&[&format!("{endpoint}/fail")]);
    assert_eq!(s, 500);
    let i = integration_as(&run, &api_id, &slow, &["--timeout-in-millis", "1000"]);
    run(&[
        "apigatewayv2",
        "create-route",
        "--api-id",
        &api_id,
        "--route-key",
        "GET /slow",
        "--target",
        &format!("integrations/{i}"),
    ]);
    let (s, _, b) = curl(&[&format!("{endpoint}/slow")]);
    assert_eq!(
        (s, b.as_slice()),
        (503, &br#"{"message":"Service Unavailable"}"#[..])
    );
}

fn integration_as(
    run: &dyn Fn(&[&str]) -> Value,
    api: &str,
    function: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "apigatewayv2",
        "create-integration",
        "--api-id",
        api,
        "--integration-type",
        "AWS_PROXY",
        "--integration-uri",
        function,
        "--payload-format-version",
        "2.0",
    ];
    args.extend(extra);
    id(&run(&args), "IntegrationId")
}

/// Runs `lamina` against `endpoint`; its stdout.
fn lamina(endpoint: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(args)
        .args(["--endpoint", endpoint])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lamina {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamina_url_and_api_print_urls_that_work() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy_http(&app.client, "bare", "bare").await;
    deploy_http(&app.client, "gate", "auth_simple").await;
    let printed = lamina(&ep, &["url", "create", "bare"]);
    let url = printed.lines().next().unwrap().trim();
    let (s, _, b) = curl(&[url]);
    assert_eq!((s, b.as_slice()), (200, &br#"{"hello":"world"}"#[..]));
    let path_style = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("path-style: "))
        .unwrap();
    assert_eq!(curl(&[path_style]).0, 200);
    let shown: Value =
        serde_json::from_str(&lamina(&ep, &["url", "show", "bare", "--json"])).unwrap();
    assert_eq!(shown["FunctionUrl"], url);
    let printed = lamina(
        &ep,
        &[
            "api",
            "create",
            "shop",
            "--function",
            "bare",
            "--route",
            "GET /items/{id}",
            "--authorizer",
            "gate",
            "--ttl",
            "60",
        ],
    );
    let endpoint = printed
        .lines()
        .next()
        .unwrap()
        .trim()
        .trim_end_matches('/')
        .to_owned();
    assert_eq!(curl(&[&format!("{endpoint}/items/1")]).0, 401);
    assert_eq!(
        curl(&["-H", "authorization: deny", &format!("{endpoint}/items/1")]).0,
        403
    );
    let (s, _, b) = curl(&["-H", "authorization: allow", &format!("{endpoint}/items/1")]);
    assert_eq!((s, b.as_slice()), (200, &br#"{"hello":"world"}"#[..]));
    let listed: Value = serde_json::from_str(&lamina(&ep, &["api", "ls", "--json"])).unwrap();
    let id = listed[0]["apiId"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["name"], "shop");
    lamina(&ep, &["api", "rm", &id]);
    lamina(&ep, &["url", "rm", "bare"]);
    assert_eq!(curl(&[url]).0, 403);
}
