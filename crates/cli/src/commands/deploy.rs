//! `lamina deploy PATH --name N ...`: create the function, or update its code and configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Client;
use crate::client::{ApiFailure, label};
use crate::output::{fields, s, size};
use crate::package;

/// Uploads bigger than this get a progress bar.
const PROGRESS_FROM: usize = 4 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A directory (zipped for you) or a .zip file.
    #[arg(required_unless_present = "image")]
    pub path: Option<PathBuf>,
    /// Deploy a container image instead: an ImageUri (see `lamina image push`).
    #[arg(long, conflicts_with_all = ["path", "runtime", "handler"])]
    pub image: Option<String>,
    /// Function name.
    #[arg(long)]
    pub name: String,
    /// Runtime, e.g. python3.12, nodejs22.x, provided.al2023.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Handler, e.g. app.handler.
    #[arg(long)]
    pub handler: Option<String>,
    /// Memory in MB (128-10240).
    #[arg(long)]
    pub memory: Option<u32>,
    /// Timeout in seconds (1-900).
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Environment variable KEY=VALUE; repeat for more. Replaces all variables when given.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Execution role ARN (stored; Lamina does not call IAM).
    #[arg(long, default_value = "arn:aws:iam::000000000000:role/lamina")]
    pub role: String,
}

fn parse_env(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!("--env '{p}' is not KEY=VALUE"),
        })
        .collect()
}

pub async fn run(client: &Client, args: DeployArgs, json_out: bool) -> anyhow::Result<()> {
    let zip = match &args.path {
        Some(p) => package::load(p)?,
        None => Vec::new(),
    };
    let zip_b64 = base64::engine::general_purpose::STANDARD.encode(&zip);
    let code = match &args.image {
        Some(uri) => json!({ "ImageUri": uri }),
        None => json!({ "ZipFile": zip_b64 }),
    };
    let env = parse_env(&args.env)?;
    let path = format!("/2015-03-31/functions/{}", label(&args.name));

    let mut config = serde_json::Map::new();
    let mut set = |k: &str, v: Value| {
        config.insert(k.to_owned(), v);
    };
    if let Some(r) = &args.runtime {
        set("Runtime", json!(r));
    }
    if let Some(h) = &args.handler {
        set("Handler", json!(h));
    }
    if let Some(m) = args.memory {
        set("MemorySize", json!(m));
    }
    if let Some(t) = args.timeout {
        set("Timeout", json!(t));
    }
    if let Some(d) = &args.description {
        set("Description", json!(d));
    }
    if !args.env.is_empty() {
        set("Environment", json!({ "Variables": env }));
    }

    let existing = match client
        .send(
            Method::GET,
            &format!("{path}/configuration"),
            "",
            Vec::new(),
        )
        .await
    {
        Ok(r) => Some(r.json()?),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.status == StatusCode::NOT_FOUND) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let (action, result) = match existing {
        None => {
            let mut body = config.clone();
            body.insert("FunctionName".into(), json!(args.name));
            body.insert("Role".into(), json!(args.role));
            body.insert("Code".into(), code);
            if args.image.is_some() {
                body.insert("PackageType".into(), json!("Image"));
            }
            let body = serde_json::to_vec(&Value::Object(body))?;
            let reply = upload(client, Method::POST, "/2015-03-31/functions", body).await?;
            ("created", reply)
        }
        Some(current) => {
            let sha = base64::engine::general_purpose::STANDARD.encode(sha256(&zip));
            let mut latest = current;
            // An image is resolved again (its tag may have moved); a zip is sent if it changed.
            if args.image.is_some() || s(&latest, "CodeSha256") != sha {
                let body = serde_json::to_vec(&code)?;
                latest = upload(client, Method::PUT, &format!("{path}/code"), body).await?;
            }
            if !config.is_empty() {
                let body = serde_json::to_vec(&Value::Object(config))?;
                latest = client
                    .send(Method::PUT, &format!("{path}/configuration"), "", body)
                    .await?
                    .json()?;
            }
            ("updated", latest)
        }
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("{action} {}", s(&result, "FunctionName"));
        fields(&[
            ("ARN", s(&result, "FunctionArn")),
            ("Runtime", s(&result, "Runtime")),
            ("Handler", s(&result, "Handler")),
            (
                "Code",
                match &args.image {
                    Some(uri) => format!("image {uri}"),
                    None => format!(
                        "{} ({})",
                        size(result["CodeSize"].as_u64().unwrap_or(0)),
                        s(&result, "CodeSha256")
                    ),
                },
            ),
        ]);
    }
    Ok(())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    hex::decode(lamina_api::sigv4::sha256_hex(data)).unwrap_or_default()
}

/// Sends a large JSON body, with a progress bar when it is big enough to take a while.
async fn upload(
    client: &Client,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Value> {
    if body.len() < PROGRESS_FROM {
        return client.send(method, path, "", body).await?.json();
    }
    let bar = ProgressBar::new(body.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
            .context("progress template")?,
    );
    let chunks: Vec<Bytes> = body
        .chunks(256 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let b = bar.clone();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
        b.inc(c.len() as u64);
        Ok::<_, std::io::Error>(c)
    }));
    let reply = client.send_streamed(method, path, "", body, stream).await;
    bar.finish_and_clear();
    reply?.json()
}
