//! The SNS part of `lamina bench`: publish-to-handler latency of a warm native function, the
//! rate one topic sustains to it, and a fan-out to 100 subscriptions.
//!
//! Each message is the publisher's clock (microseconds since the epoch) when it sent the
//! `Publish`; the function (this binary as `bootstrap`, with `LAMINA_BENCH_STAMP` set) logs
//! `STAMP <sent> <received>` for every event, so latencies come from one clock, the host's.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::json;

/// Functions subscribed for the fan-out.
const FAN_OUT: usize = 100;

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

struct Sns {
    http: reqwest::Client,
    base: String,
}

impl Sns {
    /// Calls an SNS action; returns the text of the response.
    async fn call(&self, params: &[(&str, &str)]) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}/", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(params))
            .send()
            .await?;
        let ok = r.status().is_success();
        let text = r.text().await?;
        if !ok {
            bail!("SNS answered: {text}");
        }
        Ok(text)
    }

    async fn lambda(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<()> {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{path}: {}", r.text().await?);
        }
        Ok(())
    }

    async fn publish(&self, topic: &str) -> anyhow::Result<()> {
        let sent = now_micros().to_string();
        self.call(&[
            ("Action", "Publish"),
            ("TopicArn", topic),
            ("Message", &sent),
        ])
        .await?;
        Ok(())
    }

    /// Every `(sent, received)` stamp a function has logged.
    async fn stamps(&self, function: &str) -> anyhow::Result<Vec<(u128, u128)>> {
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let page: serde_json::Value = self
                .http
                .get(format!(
                    "{}/_lamina/logs/{function}?after={after}",
                    self.base
                ))
                .send()
                .await?
                .json()
                .await?;
            for e in page["events"].as_array().into_iter().flatten() {
                let Some(rest) = e["message"].as_str().and_then(|m| m.strip_prefix("STAMP "))
                else {
                    continue;
                };
                let mut parts = rest.split_whitespace().map(str::parse::<u128>);
                if let (Some(Ok(sent)), Some(Ok(got))) = (parts.next(), parts.next()) {
                    out.push((sent, got));
                }
            }
            match page["next"].as_i64() {
                Some(n) if n != after => after = n,
                _ => return Ok(out),
            }
        }
    }

    /// Waits until a function has logged at least `n` stamps.
    async fn wait_for(&self, function: &str, n: usize) -> anyhow::Result<Vec<(u128, u128)>> {
        let started = Instant::now();
        loop {
            let s = self.stamps(function).await?;
            if s.len() >= n {
                return Ok(s);
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!(
                    "{function} received {} of {n} messages within 5 minutes",
                    s.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn form(params: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        f.append_pair(k, v);
    }
    f.finish()
}

fn between(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

fn latencies_ms(stamps: &[(u128, u128)]) -> Vec<f64> {
    stamps
        .iter()
        .map(|(sent, got)| got.saturating_sub(*sent) as f64 / 1000.0)
        .collect()
}

/// Runs the SNS measurements with `n` messages for the sustained rate.
pub async fn run(
    http: &reqwest::Client,
    base: &str,
    zip: &[u8],
    n: usize,
    quiet: bool,
) -> anyhow::Result<serde_json::Value> {
    let sns = Sns {
        http: http.clone(),
        base: base.to_owned(),
    };
    let code = base64::engine::general_purpose::STANDARD.encode(zip);
    for name in ["sns-echo", "sns-fan"] {
        sns.lambda(
            reqwest::Method::POST,
            "/2015-03-31/functions",
            json!({
                "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
                "Role": "arn:aws:iam::000000000000:role/bench", "MemorySize": 128,
                "Environment": {"Variables": {"LAMINA_BENCH_STAMP": "1"}},
                "Code": {"ZipFile": code},
            }),
        )
        .await?;
    }
    let topic = between(
        &sns.call(&[("Action", "CreateTopic"), ("Name", "bench")])
            .await?,
        "TopicArn",
    )
    .context("CreateTopic gave no TopicArn")?;
    let account = topic.split(':').nth(4).unwrap_or("000000000000").to_owned();
    let echo_arn = format!("arn:aws:lambda:us-east-1:{account}:function:sns-echo");
    sns.call(&[
        ("Action", "Subscribe"),
        ("TopicArn", &topic),
        ("Protocol", "lambda"),
        ("Endpoint", &echo_arn),
    ])
    .await?;

    // Latency, one message at a time, warm.
    let b = crate::bench::bar(220, "sns: latency", quiet);
    for _ in 0..220 {
        sns.publish(&topic).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        b.inc(1);
    }
    b.finish_and_clear();
    let stamps = sns.wait_for("sns-echo", 220).await?;
    let mut warm = stamps.clone();
    warm.sort();
    let latency = crate::bench::stats(latencies_ms(&warm[20..]));

    // Sustained: `n` messages at concurrency 8.
    let b = crate::bench::bar(n, "sns: sustained", quiet);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = Sns {
            http: http.clone(),
            base: base.to_owned(),
        };
        let topic = topic.clone();
        let b = b.clone();
        set.spawn(async move {
            for _ in 0..n / 8 {
                s.publish(&topic).await?;
                b.inc(1);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let published_s = started.elapsed().as_secs_f64();
    b.finish_and_clear();
    let sent = n / 8 * 8;
    let all = sns.wait_for("sns-echo", 220 + sent).await?;
    let delivered_s = started.elapsed().as_secs_f64();
    let mut loaded = all;
    loaded.sort();
    let under_load = crate::bench::stats(latencies_ms(&loaded[220..]));

    // Fan-out: one message to 100 subscriptions (aliases of one function), from cold and warm.
    let fan = "sns-fan";
    sns.lambda(
        reqwest::Method::POST,
        &format!("/2015-03-31/functions/{fan}/versions"),
        json!({}),
    )
    .await?;
    let fan_topic = between(
        &sns.call(&[("Action", "CreateTopic"), ("Name", "fan")])
            .await?,
        "TopicArn",
    )
    .context("CreateTopic gave no TopicArn")?;
    let b = crate::bench::bar(FAN_OUT, "sns: fan-out setup", quiet);
    for i in 0..FAN_OUT {
        let alias = format!("a{i}");
        sns.lambda(
            reqwest::Method::POST,
            &format!("/2015-03-31/functions/{fan}/aliases"),
            json!({"Name": alias, "FunctionVersion": "1"}),
        )
        .await?;
        let endpoint = format!("arn:aws:lambda:us-east-1:{account}:function:{fan}:{alias}");
        sns.call(&[
            ("Action", "Subscribe"),
            ("TopicArn", &fan_topic),
            ("Protocol", "lambda"),
            ("Endpoint", &endpoint),
        ])
        .await?;
        b.inc(1);
    }
    b.finish_and_clear();
    let mut fan_out = Vec::new();
    for round in 1..=2 {
        let sent = now_micros();
        sns.call(&[
            ("Action", "Publish"),
            ("TopicArn", &fan_topic),
            ("Message", &sent.to_string()),
        ])
        .await?;
        let stamps = sns.wait_for(fan, FAN_OUT * round).await?;
        let last = stamps
            .iter()
            .filter(|(s, _)| *s == sent)
            .map(|(_, got)| *got)
            .max()
            .unwrap_or(sent);
        fan_out.push(last.saturating_sub(sent) as f64 / 1000.0);
    }
    Ok(json!({
        "latency_ms": latency,
        "sustained": {
            "messages": sent,
            "published_per_s": sent as f64 / published_s,
            "delivered_per_s": sent as f64 / delivered_s,
            "latency_ms": under_load,
        },
        "fan_out": {
            "subscriptions": FAN_OUT,
            "cold_ms": fan_out[0],
            "warm_ms": fan_out[1],
        },
    }))
}
