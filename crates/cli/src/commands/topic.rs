//! `lamina topic ...`: SNS topics for daily use — create, list, subscribe functions or HTTP
//! endpoints (granting SNS the permission to invoke), publish, delete.

use reqwest::Method;

use crate::Client;
use crate::client::{ApiFailure, label};
use crate::output;

/// The ARN of a topic given by name or ARN (a name is looked up among the caller's topics).
async fn topic_arn(client: &Client, topic: &str) -> anyhow::Result<String> {
    if topic.starts_with("arn:") {
        return Ok(topic.to_owned());
    }
    for arn in list(client).await? {
        if arn.rsplit(':').next() == Some(topic) {
            return Ok(arn);
        }
    }
    anyhow::bail!(
        "no topic named '{topic}' (see `lamina topic ls`, or create it with `lamina topic create {topic}`)"
    )
}

/// Every topic ARN of the caller.
async fn list(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let params: Vec<(&str, String)> = token.iter().map(|t| ("NextToken", t.clone())).collect();
        let xml = client.sns("ListTopics", &params).await?;
        arns.extend(xml.all("TopicArn"));
        token = xml.first("NextToken");
        if token.is_none() {
            return Ok(arns);
        }
    }
}

/// `lamina topic create NAME [--fifo]`.
pub async fn create(client: &Client, name: &str, fifo: bool, json: bool) -> anyhow::Result<()> {
    let mut params = vec![("Name", name.to_owned())];
    if fifo {
        params.push(("Attributes.entry.1.key", "FifoTopic".into()));
        params.push(("Attributes.entry.1.value", "true".into()));
    }
    let arn = client
        .sns("CreateTopic", &params)
        .await?
        .first("TopicArn")
        .unwrap_or_default();
    if json {
        println!("{}", serde_json::json!({ "TopicArn": arn }));
    } else {
        println!("{arn}");
    }
    Ok(())
}

/// `lamina topic ls`: topics with their subscription counts.
pub async fn ls(client: &Client, json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for arn in list(client).await? {
        let attrs: std::collections::BTreeMap<String, String> = client
            .sns("GetTopicAttributes", &[("TopicArn", arn.clone())])
            .await?
            .entries()
            .into_iter()
            .collect();
        let n = |k: &str| attrs.get(k).cloned().unwrap_or_else(|| "0".into());
        rows.push((arn, n("SubscriptionsConfirmed"), n("SubscriptionsPending")));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(arn, c, p)| serde_json::json!({"TopicArn": arn, "SubscriptionsConfirmed": c, "SubscriptionsPending": p}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(arn, c, p)| {
            let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
            vec![name, c, p, arn]
        })
        .collect();
    output::table(&["TOPIC", "CONFIRMED", "PENDING", "ARN"], &table);
    Ok(())
}

/// Options of `lamina topic subscribe`.
pub struct Subscription<'a> {
    pub topic: &'a str,
    /// A function name or ARN, or an `http(s)://` URL.
    pub endpoint: &'a str,
    pub filter: Option<&'a str>,
    pub on_body: bool,
    pub raw: bool,
}

/// `lamina topic subscribe TOPIC FUNCTION|URL`: a function also gets the permission for SNS to
/// invoke it from this topic (as the console does).
pub async fn subscribe(client: &Client, s: Subscription<'_>, json: bool) -> anyhow::Result<()> {
    let arn = topic_arn(client, s.topic).await?;
    let (protocol, endpoint) = if s.endpoint.starts_with("http://") {
        ("http", s.endpoint.to_owned())
    } else if s.endpoint.starts_with("https://") {
        ("https", s.endpoint.to_owned())
    } else {
        let f = client
            .send(
                Method::GET,
                &format!("/2015-03-31/functions/{}/configuration", label(s.endpoint)),
                "",
                Vec::new(),
            )
            .await?
            .json()?;
        let function_arn = output::s(&f, "FunctionArn");
        grant(client, s.endpoint, &arn).await?;
        ("lambda", function_arn)
    };
    let mut params = vec![
        ("TopicArn", arn.clone()),
        ("Protocol", protocol.to_owned()),
        ("Endpoint", endpoint),
        ("ReturnSubscriptionArn", "true".to_owned()),
    ];
    let mut attributes = Vec::new();
    if let Some(f) = s.filter {
        attributes.push(("FilterPolicy", f.to_owned()));
    }
    if s.on_body {
        attributes.push(("FilterPolicyScope", "MessageBody".to_owned()));
    }
    if s.raw {
        attributes.push(("RawMessageDelivery", "true".to_owned()));
    }
    let keys = [
        "Attributes.entry.1.key",
        "Attributes.entry.2.key",
        "Attributes.entry.3.key",
    ];
    let values = [
        "Attributes.entry.1.value",
        "Attributes.entry.2.value",
        "Attributes.entry.3.value",
    ];
    for (i, (k, v)) in attributes.into_iter().enumerate() {
        params.push((keys[i], k.to_owned()));
        params.push((values[i], v));
    }
    let sub = client
        .sns("Subscribe", &params)
        .await?
        .first("SubscriptionArn")
        .unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({ "SubscriptionArn": sub, "Protocol": protocol })
        );
    } else if protocol == "lambda" {
        println!("{sub}");
    } else {
        println!("{sub}\n(pending until the endpoint confirms: it was sent a SubscribeURL)");
    }
    Ok(())
}

/// Lets SNS invoke the function from this topic; an existing grant is kept.
async fn grant(client: &Client, function: &str, topic_arn: &str) -> anyhow::Result<()> {
    let sid: String = format!("sns-{}", topic_arn.rsplit(':').next().unwrap_or("topic"))
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let body = serde_json::json!({
        "StatementId": sid,
        "Action": "lambda:InvokeFunction",
        "Principal": "sns.amazonaws.com",
        "SourceArn": topic_arn,
    });
    let sent = client
        .send(
            Method::POST,
            &format!("/2015-03-31/functions/{}/policy", label(function)),
            "",
            body.to_string().into_bytes(),
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

/// `lamina topic publish TOPIC MESSAGE [--subject S] [--attr K=V]...`.
pub async fn publish(
    client: &Client,
    topic: &str,
    message: &str,
    subject: Option<&str>,
    attrs: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let arn = topic_arn(client, topic).await?;
    let message = match message.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the message from {path}: {e}"))?,
        None => message.to_owned(),
    };
    let mut params = vec![("TopicArn", arn), ("Message", message)];
    if let Some(s) = subject {
        params.push(("Subject", s.to_owned()));
    }
    let mut owned: Vec<(String, String)> = Vec::new();
    for (i, a) in attrs.iter().enumerate() {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--attr '{a}' is not KEY=VALUE"))?;
        let n = i + 1;
        let number = v.parse::<f64>().is_ok();
        owned.push((format!("MessageAttributes.entry.{n}.Name"), k.to_owned()));
        owned.push((
            format!("MessageAttributes.entry.{n}.Value.DataType"),
            if number { "Number" } else { "String" }.to_owned(),
        ));
        owned.push((
            format!("MessageAttributes.entry.{n}.Value.StringValue"),
            v.to_owned(),
        ));
    }
    params.extend(owned.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let id = client
        .sns("Publish", &params)
        .await?
        .first("MessageId")
        .unwrap_or_default();
    if json {
        println!("{}", serde_json::json!({ "MessageId": id }));
    } else {
        println!("{id}");
    }
    Ok(())
}

/// `lamina topic rm TOPIC`.
pub async fn rm(client: &Client, topic: &str, json: bool) -> anyhow::Result<()> {
    let arn = topic_arn(client, topic).await?;
    client
        .sns("DeleteTopic", &[("TopicArn", arn.clone())])
        .await?;
    if json {
        println!("{}", serde_json::json!({ "Deleted": arn }));
    } else {
        println!("deleted {arn}");
    }
    Ok(())
}
