//! `lamina layer publish NAME PATH` and `lamina layer ls`.

use base64::Engine;
use reqwest::Method;
use serde_json::json;

use crate::Client;
use crate::client::label;
use crate::output::{s, size, table};
use crate::package;

pub async fn publish(
    client: &Client,
    name: &str,
    path: &std::path::Path,
    runtimes: &[String],
    json_out: bool,
) -> anyhow::Result<()> {
    let zip = package::load(path)?;
    let body = json!({
        "Content": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(&zip) },
        "CompatibleRuntimes": runtimes,
    });
    let reply = client
        .send(
            Method::POST,
            &format!("/2018-10-31/layers/{}/versions", label(name)),
            "",
            serde_json::to_vec(&body)?,
        )
        .await?
        .json()?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        println!(
            "published {} ({})",
            s(&reply, "LayerVersionArn"),
            size(reply["Content"]["CodeSize"].as_u64().unwrap_or(0))
        );
    }
    Ok(())
}

pub async fn ls(client: &Client, json_out: bool) -> anyhow::Result<()> {
    let reply = client
        .send(Method::GET, "/2018-10-31/layers", "", Vec::new())
        .await?
        .json()?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply["Layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let v = &l["LatestMatchingVersion"];
            vec![
                s(l, "LayerName"),
                v["Version"].to_string(),
                s(v, "LayerVersionArn"),
                s(v, "CreatedDate"),
            ]
        })
        .collect();
    table(&["NAME", "LATEST", "ARN", "CREATED"], &rows);
    Ok(())
}
