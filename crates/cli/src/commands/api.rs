//! `lamina api ...`: HTTP APIs for daily use — a quick-created API with a route to a function
//! (and a Lambda authorizer in front, if asked), granting API Gateway the permissions it needs;
//! list; remove.

use reqwest::Method;
use serde_json::{Value, json};

use crate::Client;
use crate::client::label;
use crate::commands::url::grant;

/// The ARN of a function given by name or ARN.
async fn function_arn(client: &Client, function: &str) -> anyhow::Result<String> {
    let v = client
        .send(
            Method::GET,
            &format!("/2015-03-31/functions/{}/configuration", label(function)),
            "",
            Vec::new(),
        )
        .await?
        .json()?;
    v["FunctionArn"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the server did not say the ARN of {function}"))
}

/// What `lamina api create` sets up.
pub struct NewApi<'a> {
    pub name: &'a str,
    pub function: &'a str,
    pub route: Option<&'a str>,
    pub authorizer: Option<&'a str>,
    pub identity_source: &'a str,
    pub ttl: u32,
}

fn path_style(client: &Client, api_id: &str) -> String {
    format!(
        "{}/_aws/execute-api/{api_id}",
        client.endpoint().trim_end_matches('/')
    )
}

/// `lamina api create NAME --function F [--route KEY] [--authorizer FN]`.
pub async fn create(client: &Client, new: NewApi<'_>, json: bool) -> anyhow::Result<()> {
    let arn = function_arn(client, new.function).await?;
    let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
    let mut body = json!({ "name": new.name, "protocolType": "HTTP", "target": arn });
    if let Some(r) = new.route {
        body["routeKey"] = json!(r);
    }
    let api = client
        .apigw(Method::POST, "/v2/apis", "", Some(body))
        .await?;
    let api_id = api["apiId"].as_str().unwrap_or_default().to_owned();
    let prefix = format!("arn:aws:execute-api:{}:{account}:{api_id}", client.region());
    let statement = |sid: &str, source: &str| {
        json!({"StatementId": sid, "Action": "lambda:InvokeFunction",
               "Principal": "apigateway.amazonaws.com", "SourceArn": source})
    };
    grant(
        client,
        new.function,
        statement(&format!("apigw-{api_id}"), &format!("{prefix}/*")),
        None,
    )
    .await?;
    if let Some(auth) = new.authorizer {
        let auth_arn = function_arn(client, auth).await?;
        let authorizer = client
            .apigw(
                Method::POST,
                &format!("/v2/apis/{api_id}/authorizers"),
                "",
                Some(json!({
                    "name": format!("{}-authorizer", new.name),
                    "authorizerType": "REQUEST",
                    "authorizerUri": format!("arn:aws:apigateway:{}:lambda:path/2015-03-31/functions/{auth_arn}/invocations", client.region()),
                    "authorizerPayloadFormatVersion": "2.0",
                    "enableSimpleResponses": true,
                    "identitySource": [new.identity_source],
                    "authorizerResultTtlInSeconds": new.ttl,
                })),
            )
            .await?;
        let authorizer_id = authorizer["authorizerId"].as_str().unwrap_or_default();
        let routes = client
            .apigw(Method::GET, &format!("/v2/apis/{api_id}/routes"), "", None)
            .await?;
        for r in routes["items"].as_array().into_iter().flatten() {
            let route_id = r["routeId"].as_str().unwrap_or_default();
            client
                .apigw(
                    Method::PATCH,
                    &format!("/v2/apis/{api_id}/routes/{route_id}"),
                    "",
                    Some(json!({"authorizationType": "CUSTOM", "authorizerId": authorizer_id})),
                )
                .await?;
        }
        grant(
            client,
            auth,
            statement(
                &format!("apigw-{api_id}-auth"),
                &format!("{prefix}/authorizers/{authorizer_id}"),
            ),
            None,
        )
        .await?;
    }
    let endpoint = api["apiEndpoint"].as_str().unwrap_or_default();
    if json {
        let mut v = api.clone();
        v["pathStyleEndpoint"] = json!(path_style(client, &api_id));
        println!("{v}");
        return Ok(());
    }
    println!("{endpoint}/");
    println!("  id: {api_id}");
    println!("  path-style: {}/", path_style(client, &api_id));
    match new.authorizer {
        Some(_) => println!("  try: curl -H 'authorization: <token>' {endpoint}/"),
        None => println!("  try: curl {endpoint}/"),
    }
    Ok(())
}

/// `lamina api ls`.
pub async fn ls(client: &Client, json: bool) -> anyhow::Result<()> {
    let mut items: Vec<Value> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let query = token
            .as_ref()
            .map(|t| format!("nextToken={}", label(t)))
            .unwrap_or_default();
        let page = client.apigw(Method::GET, "/v2/apis", &query, None).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        token = page["nextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    if json {
        println!("{}", Value::Array(items));
        return Ok(());
    }
    if items.is_empty() {
        println!("no HTTP APIs (create one with `lamina api create NAME --function F`)");
    }
    for a in &items {
        println!(
            "{:<12} {:<24} {}/",
            a["apiId"].as_str().unwrap_or_default(),
            a["name"].as_str().unwrap_or_default(),
            a["apiEndpoint"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// `lamina api rm ID`.
pub async fn rm(client: &Client, api_id: &str, json: bool) -> anyhow::Result<()> {
    client
        .apigw(
            Method::DELETE,
            &format!("/v2/apis/{}", label(api_id)),
            "",
            None,
        )
        .await?;
    if json {
        println!("{}", json!({ "Deleted": api_id }));
    } else {
        println!("removed API {api_id}");
    }
    Ok(())
}
