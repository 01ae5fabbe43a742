//! `lamina show NAME`: one function's configuration.

use reqwest::Method;

use crate::Client;
use crate::client::label;
use crate::output::{fields, s, size};

pub async fn run(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let reply = client
        .send(
            Method::GET,
            &format!("/2015-03-31/functions/{}", label(name)),
            "",
            Vec::new(),
        )
        .await?
        .json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let c = &reply["Configuration"];
    let env = c["Environment"]["Variables"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let tags = reply
        .get("Tags")
        .and_then(|t| t.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let or_dash = |v: String| if v.is_empty() { "-".to_owned() } else { v };
    let (env, tags) = (or_dash(env), or_dash(tags));
    let code = &reply["Code"];
    let (runtime, handler) = if s(c, "PackageType") == "Image" {
        (
            format!("image {}", s(code, "ImageUri")),
            format!("(resolved to {})", s(code, "ResolvedImageUri")),
        )
    } else {
        (s(c, "Runtime"), s(c, "Handler"))
    };
    fields(&[
        ("Name", s(c, "FunctionName")),
        ("ARN", s(c, "FunctionArn")),
        ("Runtime", runtime),
        ("Handler", handler),
        ("Memory", format!("{} MB", s(c, "MemorySize"))),
        ("Timeout", format!("{} s", s(c, "Timeout"))),
        (
            "Ephemeral storage",
            format!("{} MB", c["EphemeralStorage"]["Size"]),
        ),
        (
            "Architecture",
            c["Architectures"][0].as_str().unwrap_or("-").to_owned(),
        ),
        ("State", s(c, "State")),
        ("Last update", s(c, "LastUpdateStatus")),
        ("Code size", size(c["CodeSize"].as_u64().unwrap_or(0))),
        ("Code SHA-256", s(c, "CodeSha256")),
        ("Last modified", s(c, "LastModified")),
        ("Revision", s(c, "RevisionId")),
        ("Environment", env),
        ("Tags", tags),
    ]);
    Ok(())
}
