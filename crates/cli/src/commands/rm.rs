//! `lamina rm NAME`: delete a function with its versions, aliases and tags.

use reqwest::Method;

use crate::Client;
use crate::client::label;

pub async fn run(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    client
        .send(
            Method::DELETE,
            &format!("/2015-03-31/functions/{}", label(name)),
            "",
            Vec::new(),
        )
        .await?;
    if json {
        println!("{}", serde_json::json!({ "Deleted": name }));
    } else {
        println!("deleted {name}");
    }
    Ok(())
}
