//! `lamina url ...`: function URLs for daily use — create (granting the public access a `NONE`
//! URL needs when the server checks policies), show, remove.

use reqwest::Method;
use serde_json::{Value, json};

use crate::Client;
use crate::client::{ApiFailure, label};

fn path(function: &str) -> String {
    format!("/2021-10-31/functions/{}/url", label(function))
}

fn query(qualifier: Option<&str>) -> String {
    qualifier
        .map(|q| format!("Qualifier={}", label(q)))
        .unwrap_or_default()
}

/// Adds a policy statement unless one with its id exists.
pub(crate) async fn grant(
    client: &Client,
    function: &str,
    statement: Value,
    qualifier: Option<&str>,
) -> anyhow::Result<()> {
    let sent = client
        .send(
            Method::POST,
            &format!("/2015-03-31/functions/{}/policy", label(function)),
            &query(qualifier),
            statement.to_string().into_bytes(),
        )
        .await;
    match sent {
        Ok(_) => Ok(()),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.error_type == "ResourceConflictException") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The path-style form of a function URL, for clients without `*.localhost` names.
fn path_style(client: &Client, url: &str) -> String {
    let id = url
        .split("://")
        .nth(1)
        .and_then(|h| h.split('.').next())
        .unwrap_or_default();
    format!(
        "{}/_aws/lambda-url/{id}/",
        client.endpoint().trim_end_matches('/')
    )
}

fn print(client: &Client, v: &Value, json: bool) {
    let url = v["FunctionUrl"].as_str().unwrap_or_default();
    if json {
        let mut v = v.clone();
        v["PathStyleUrl"] = json!(path_style(client, url));
        println!("{v}");
        return;
    }
    println!("{url}");
    println!("  path-style: {}", path_style(client, url));
    println!("  auth: {}", v["AuthType"].as_str().unwrap_or_default());
    println!("  try: curl {url}");
}

/// `lamina url create FUNCTION [--qualifier ALIAS] [--auth-type NONE|AWS_IAM] [--cors-origin O]...`.
pub async fn create(
    client: &Client,
    function: &str,
    qualifier: Option<&str>,
    auth_type: &str,
    cors_origins: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let mut body = json!({ "AuthType": auth_type });
    if !cors_origins.is_empty() {
        body["Cors"] =
            json!({ "AllowOrigins": cors_origins, "AllowMethods": ["*"], "AllowHeaders": ["*"] });
    }
    let created = client
        .send(
            Method::POST,
            &path(function),
            &query(qualifier),
            body.to_string().into_bytes(),
        )
        .await?
        .json()?;
    if auth_type == "NONE" {
        // What AWS asks of a public URL: both statements (checked when the server verifies
        // signatures, harmless otherwise).
        let url = json!({"StatementId": "lamina-url-public", "Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"});
        grant(client, function, url, qualifier).await?;
        let invoke = json!({"StatementId": "lamina-url-invoke", "Action": "lambda:InvokeFunction", "Principal": "*", "InvokedViaFunctionUrl": true});
        grant(client, function, invoke, qualifier).await?;
    }
    print(client, &created, json);
    Ok(())
}

/// `lamina url show FUNCTION [--qualifier ALIAS]`.
pub async fn show(
    client: &Client,
    function: &str,
    qualifier: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let v = client
        .send(Method::GET, &path(function), &query(qualifier), Vec::new())
        .await?
        .json()?;
    print(client, &v, json);
    Ok(())
}

/// `lamina url rm FUNCTION [--qualifier ALIAS]`.
pub async fn rm(
    client: &Client,
    function: &str,
    qualifier: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    client
        .send(
            Method::DELETE,
            &path(function),
            &query(qualifier),
            Vec::new(),
        )
        .await?;
    if json {
        println!("{}", json!({ "Deleted": function }));
    } else {
        println!("removed the URL of {function}");
    }
    Ok(())
}
