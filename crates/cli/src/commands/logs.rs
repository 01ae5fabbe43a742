//! `lamina logs NAME [--follow]`: a function's recent log lines, and new ones as they come.

use std::time::Duration;

use reqwest::Method;

use crate::Client;
use crate::client::label;

pub async fn run(client: &Client, name: &str, follow: bool, json: bool) -> anyhow::Result<()> {
    let path = format!("/_lamina/logs/{}", label(name));
    let mut query = "last=100".to_string();
    loop {
        let page = client
            .send(Method::GET, &path, &query, Vec::new())
            .await?
            .json()?;
        for e in page["events"].as_array().into_iter().flatten() {
            if json {
                println!("{e}");
            } else {
                println!("{}", e["message"].as_str().unwrap_or_default());
            }
        }
        if let Some(next) = page["next"].as_i64() {
            query = format!("after={next}");
        } else if query.starts_with("last") {
            query = "after=0".into();
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
