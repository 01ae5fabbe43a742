//! `lamina publish FN` and `lamina alias set FN NAME VERSION [--weight V=W]`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Client;
use crate::client::{ApiFailure, label};
use crate::output::s;

pub async fn publish(
    client: &Client,
    function: &str,
    description: Option<&str>,
    json_out: bool,
) -> anyhow::Result<()> {
    let mut body = json!({});
    if let Some(d) = description {
        body["Description"] = d.into();
    }
    let reply = client
        .send(
            Method::POST,
            &format!("/2015-03-31/functions/{}/versions", label(function)),
            "",
            serde_json::to_vec(&body)?,
        )
        .await?
        .json()?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        println!(
            "{} version {} ({})",
            s(&reply, "FunctionName"),
            s(&reply, "Version"),
            s(&reply, "CodeSha256")
        );
    }
    Ok(())
}

pub async fn alias_set(
    client: &Client,
    function: &str,
    name: &str,
    version: &str,
    weights: &[String],
    json_out: bool,
) -> anyhow::Result<()> {
    let mut routing = serde_json::Map::new();
    for w in weights {
        let (v, weight) = w
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--weight '{w}' is not VERSION=WEIGHT"))?;
        let weight: f64 = weight.parse().map_err(|_| {
            anyhow::anyhow!("--weight '{w}': the weight is not a number between 0 and 1")
        })?;
        routing.insert(v.to_owned(), weight.into());
    }
    let mut body = json!({ "FunctionVersion": version, "RoutingConfig": { "AdditionalVersionWeights": Value::Object(routing) } });
    let path = format!("/2015-03-31/functions/{}/aliases", label(function));
    let reply = match client
        .send(
            Method::PUT,
            &format!("{path}/{}", label(name)),
            "",
            serde_json::to_vec(&body)?,
        )
        .await
    {
        Ok(r) => r.json()?,
        Err(e)
            if e.downcast_ref::<ApiFailure>().is_some_and(|f| {
                f.status == StatusCode::NOT_FOUND && f.message.contains("alias")
            }) =>
        {
            body["Name"] = name.into();
            client
                .send(Method::POST, &path, "", serde_json::to_vec(&body)?)
                .await?
                .json()?
        }
        Err(e) => return Err(e),
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        println!(
            "{} → version {}",
            s(&reply, "AliasArn"),
            s(&reply, "FunctionVersion")
        );
    }
    Ok(())
}
