//! `lamina ls`: every function of the account in the region, following pagination.

use reqwest::Method;

use crate::Client;
use crate::client::label;
use crate::output::{s, size, table};

pub async fn run(client: &Client, json: bool) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let query = match &marker {
            Some(m) => format!("Marker={}", label(m)),
            None => String::new(),
        };
        let page = client
            .send(Method::GET, "/2015-03-31/functions/", &query, Vec::new())
            .await?
            .json()?;
        if let Some(fs) = page.get("Functions").and_then(|f| f.as_array()) {
            all.extend(fs.iter().cloned());
        }
        match page.get("NextMarker").and_then(|m| m.as_str()) {
            Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "Functions": all }))?
        );
        return Ok(());
    }
    if all.is_empty() {
        println!(
            "no functions (create one with `lamina deploy DIR --name N --runtime R --handler H`)"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|f| {
            vec![
                s(f, "FunctionName"),
                s(f, "Runtime"),
                format!("{} MB", s(f, "MemorySize")),
                format!("{} s", s(f, "Timeout")),
                size(f.get("CodeSize").and_then(|c| c.as_u64()).unwrap_or(0)),
                s(f, "LastModified"),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "RUNTIME",
            "MEMORY",
            "TIMEOUT",
            "CODE",
            "LAST MODIFIED",
        ],
        &rows,
    );
    Ok(())
}
