//! `lamina bill [--month YYYY-MM] [--function F] [--csv]`: requests, GB-seconds and cost per
//! function and in total for a month.

use reqwest::Method;

use crate::Client;
use crate::client::label;
use crate::output::table;

pub async fn run(
    client: &Client,
    month: Option<&str>,
    function: Option<&str>,
    csv: bool,
    json: bool,
) -> anyhow::Result<()> {
    if csv && json {
        anyhow::bail!("--csv and --json each choose the output's form: give one of them");
    }
    let mut query = Vec::new();
    if let Some(m) = month {
        query.push(format!("month={}", label(m)));
    }
    if let Some(f) = function {
        query.push(format!("function={}", label(f)));
    }
    if csv {
        query.push("format=csv".into());
    }
    let reply = client
        .send(Method::GET, "/_lamina/bill", &query.join("&"), Vec::new())
        .await?;
    if csv {
        print!("{}", String::from_utf8_lossy(&reply.body));
        return Ok(());
    }
    let b = reply.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&b)?);
        return Ok(());
    }
    let cur = b["currency"].as_str().unwrap_or("USD");
    println!(
        "{} for account {} ({cur})\n",
        b["month"].as_str().unwrap_or_default(),
        b["account"].as_str().unwrap_or_default()
    );
    let rows: Vec<Vec<String>> = b["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            vec![
                f["function"].as_str().unwrap_or_default().to_owned(),
                f["architecture"].as_str().unwrap_or_default().to_owned(),
                f["requests"].to_string(),
                f["gb_seconds"].as_str().unwrap_or_default().to_owned(),
                f["cost"].as_str().unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    table(
        &["FUNCTION", "ARCH", "REQUESTS", "GB-SECONDS", "LIST PRICE"],
        &rows,
    );
    println!();
    for l in b["lines"].as_array().into_iter().flatten() {
        println!(
            "{:<60} {:>12}",
            l["item"].as_str().unwrap_or_default(),
            l["amount"].as_str().unwrap_or_default()
        );
    }
    let note = if b["free_tier_applied"] == true {
        "free tier applied"
    } else {
        "list price: the free tier applies to the whole account"
    };
    println!(
        "{:<60} {:>12}   ({note})",
        "TOTAL",
        b["total"].as_str().unwrap_or_default()
    );
    Ok(())
}
