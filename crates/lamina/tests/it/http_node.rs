//! A Node.js handler written against `@types/aws-lambda`'s `APIGatewayProxyEventV2` and
//! `APIGatewayProxyStructuredResultV2` shapes, behind an HTTP API route and a function URL: it
//! checks every member those types declare required (and the types of the optional ones it
//! reads), and answers with a structured result.

use std::path::Path;
use std::process::Command;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use serde_json::Value;

use crate::helpers::*;
use crate::http_urls::{curl, header};
use crate::sns::cli;

/// The checks, member by member, as a TypeScript handler typed with those shapes relies on.
const HANDLER: &[u8] = br#"
const want = {
  version: 'string', routeKey: 'string', rawPath: 'string', rawQueryString: 'string',
  headers: 'object', isBase64Encoded: 'boolean',
  'requestContext.accountId': 'string', 'requestContext.apiId': 'string',
  'requestContext.domainName': 'string', 'requestContext.domainPrefix': 'string',
  'requestContext.http.method': 'string', 'requestContext.http.path': 'string',
  'requestContext.http.protocol': 'string', 'requestContext.http.sourceIp': 'string',
  'requestContext.http.userAgent': 'string', 'requestContext.requestId': 'string',
  'requestContext.routeKey': 'string', 'requestContext.stage': 'string',
  'requestContext.time': 'string', 'requestContext.timeEpoch': 'number',
};
const optional = { cookies: 'object', queryStringParameters: 'object', body: 'string', pathParameters: 'object' };
const at = (o, path) => path.split('.').reduce((v, k) => (v == null ? undefined : v[k]), o);
exports.handler = async (event) => {
  const wrong = [];
  for (const [path, type] of Object.entries(want)) {
    if (typeof at(event, path) !== type) wrong.push(path + ': ' + typeof at(event, path));
  }
  for (const [path, type] of Object.entries(optional)) {
    const v = at(event, path);
    if (v !== undefined && v !== null && typeof v !== type) wrong.push(path + ': ' + typeof v);
  }
  for (const [k, v] of Object.entries(event.headers)) {
    if (typeof v !== 'string') wrong.push('headers.' + k + ': ' + typeof v);
  }
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    cookies: ['seen=1'],
    body: JSON.stringify({ wrong, route: event.routeKey, q: event.queryStringParameters, cookies: event.cookies }),
    isBase64Encoded: false,
  };
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_handlers_typed_with_aws_lambda_types_get_every_member() {
    let node = ["/usr/bin/node", "/usr/local/bin/node"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs node in /usr/bin or /usr/local/bin");
    let out = Command::new(node).arg("--version").output().unwrap();
    let major = String::from_utf8(out.stdout).unwrap();
    let major = major
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .unwrap();
    let app = spawn_app().await;
    let ep = app.endpoint();
    let f = app
        .client
        .create_function()
        .function_name("typed")
        .runtime(Runtime::from(format!("nodejs{major}.x").as_str()))
        .handler("index.handler")
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("index.js", HANDLER)])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create: {}", describe(&e)));
    let arn = f.function_arn().unwrap();
    let api = cli(
        &ep,
        &[
            "apigatewayv2",
            "create-api",
            "--name",
            "typed",
            "--protocol-type",
            "HTTP",
            "--target",
            arn,
            "--route-key",
            "GET /items/{id}",
        ],
    );
    let endpoint = api["ApiEndpoint"].as_str().unwrap();
    let url = cli(
        &ep,
        &[
            "lambda",
            "create-function-url-config",
            "--function-name",
            "typed",
            "--auth-type",
            "NONE",
        ],
    )["FunctionUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    for target in [
        format!("{endpoint}/items/7?q=1"),
        format!("{url}items/7?q=1"),
    ] {
        let (s, h, b) = curl(&["-b", "k=v", "-A", "typed-test", &target]);
        assert_eq!(s, 200, "{target}: {}", String::from_utf8_lossy(&b));
        assert_eq!(header(&h, "set-cookie"), ["seen=1"]);
        let seen: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(seen["wrong"], serde_json::json!([]), "{target}: {seen}");
        assert_eq!(seen["q"]["q"], "1");
        assert_eq!(seen["cookies"], serde_json::json!(["k=v"]));
    }
}
