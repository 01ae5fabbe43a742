//! The HTTP part of `lamina bench`: one warm native function reached four ways in interleaved
//! rounds (so that noise falls on all alike): a direct Invoke (of an event as large as the
//! gateway's), its function URL, an HTTP API route, and an HTTP API route behind a Lambda
//! authorizer whose answer is cached; and, in the same rounds, the same echo streamed by its
//! runtime and read with InvokeWithResponseStream. The gateway's cost is the difference of
//! medians; the loopback echo of the same run is the floor.

use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::bench::{Stats, bar, stats};

struct Http {
    http: reqwest::Client,
    base: String,
}

impl Http {
    /// Sends a JSON request to the server's APIs; the JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let ok = r.status().is_success();
        let text = r.text().await?;
        if !ok {
            bail!("{path}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One request; its time in ms. `Err` unless it succeeded.
    async fn time(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<f64> {
        let t = Instant::now();
        let r = req.send().await?;
        let ok = r.status().is_success() && !r.headers().contains_key("x-amz-function-error");
        let status = r.status();
        let body = r.bytes().await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !ok {
            bail!(
                "{what} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(ms)
    }
}

/// Measures `rounds` requests of each kind.
pub async fn run(
    http: &reqwest::Client,
    base: &str,
    native_zip: &[u8],
    rounds: usize,
    json_out: bool,
) -> anyhow::Result<Value> {
    let h = Http {
        http: http.clone(),
        base: base.to_owned(),
    };
    let zip = base64::engine::general_purpose::STANDARD.encode(native_zip);
    let function = |name: &str, env: Value| {
        json!({
            "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
            "MemorySize": 128, "Role": "arn:aws:iam::000000000000:role/bench", "Timeout": 30,
            "Environment": {"Variables": env}, "Code": {"ZipFile": zip},
        })
    };
    let post = reqwest::Method::POST;
    let echo = h
        .call(
            post.clone(),
            "/2015-03-31/functions",
            function("http-echo", json!({})),
        )
        .await?["FunctionArn"]
        .as_str()
        .context("no function ARN")?
        .to_owned();
    h.call(
        post.clone(),
        "/2015-03-31/functions",
        function("http-stream", json!({"LAMINA_BENCH_STREAM": "1"})),
    )
    .await?;
    let gate = h
        .call(
            post.clone(),
            "/2015-03-31/functions",
            function("http-gate", json!({"LAMINA_BENCH_AUTHORIZE": "1"})),
        )
        .await?["FunctionArn"]
        .as_str()
        .context("no function ARN")?
        .to_owned();
    let url = h
        .call(
            post.clone(),
            "/2021-10-31/functions/http-echo/url",
            json!({"AuthType": "NONE"}),
        )
        .await?;
    let url_id = url["FunctionUrl"]
        .as_str()
        .and_then(|u| u.split("://").nth(1)?.split('.').next())
        .context("no function URL")?
        .to_owned();
    let quick = |name: &str| json!({"name": name, "protocolType": "HTTP", "target": echo});
    let open = h.call(post.clone(), "/v2/apis", quick("open")).await?;
    let guarded = h.call(post.clone(), "/v2/apis", quick("guarded")).await?;
    let (open_id, guarded_id) = (
        open["apiId"].as_str().context("no api id")?.to_owned(),
        guarded["apiId"].as_str().context("no api id")?.to_owned(),
    );
    let authorizer = h
        .call(
            post.clone(),
            &format!("/v2/apis/{guarded_id}/authorizers"),
            json!({
                "name": "gate", "authorizerType": "REQUEST", "identitySource": ["$request.header.Authorization"],
                "authorizerUri": format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{gate}/invocations"),
                "authorizerPayloadFormatVersion": "2.0", "enableSimpleResponses": true,
                "authorizerResultTtlInSeconds": 300,
            }),
        )
        .await?;
    let routes = h
        .call(
            reqwest::Method::GET,
            &format!("/v2/apis/{guarded_id}/routes"),
            Value::Null,
        )
        .await?;
    let route_id = routes["items"][0]["routeId"].as_str().context("no route")?;
    h.call(
        reqwest::Method::PATCH,
        &format!("/v2/apis/{guarded_id}/routes/{route_id}"),
        json!({"authorizationType": "CUSTOM", "authorizerId": authorizer["authorizerId"]}),
    )
    .await?;

    let invoke_url = format!("{base}/2015-03-31/functions/http-echo/invocations");
    let url_url = format!("{base}/_aws/lambda-url/{url_id}/bench");
    // The direct Invoke carries the event the gateway makes (the echo function returns it), so
    // that both move the same bytes through the function and the difference is the gateway's
    // own work: reading the request, building the event, mapping the result.
    let event = h.http.get(&url_url).send().await?.bytes().await?;
    let open_url = format!("{base}/_aws/execute-api/{open_id}/bench");
    let guarded_url = format!("{base}/_aws/execute-api/{guarded_id}/bench");
    let stream_url =
        format!("{base}/2021-11-15/functions/http-stream/response-streaming-invocations");
    let requests = |i: usize| {
        [
            (h.http.post(&invoke_url).body(event.clone()), "invoke"),
            (h.http.get(&url_url), "function URL"),
            // The same header as the guarded route's, so that only the authorizer differs.
            (
                h.http.get(&open_url).header("authorization", "bench-token"),
                "HTTP API",
            ),
            (
                h.http
                    .get(&guarded_url)
                    .header("authorization", "bench-token"),
                "HTTP API + authorizer",
            ),
            (
                h.http.post(&stream_url).body(event.clone()),
                "InvokeWithResponseStream",
            ),
        ]
        .into_iter()
        .enumerate()
        .map(move |(k, r)| (k, r, i))
    };
    for i in 0..20 {
        for (_, (req, what), _) in requests(i) {
            h.time(req, what).await?;
        }
    }
    let b = bar(rounds, "http gateways", json_out);
    let mut times: [Vec<f64>; 5] = Default::default();
    for i in 0..rounds {
        for (k, (req, what), _) in requests(i) {
            times[k].push(h.time(req, what).await?);
        }
        b.inc(1);
    }
    b.finish_and_clear();
    let [invoke, url, api, guarded, streamed]: [Stats; 5] = times.map(stats);
    let us = |a: &Stats, b: &Stats| (a.p50_ms - b.p50_ms) * 1000.0;
    Ok(json!({
        "rounds": rounds,
        "invoke": invoke,
        "function_url": url,
        "http_api": api,
        "http_api_cached_authorizer": guarded,
        "function_url_over_invoke_us": us(&url, &invoke),
        "http_api_over_invoke_us": us(&api, &invoke),
        "cached_authorizer_over_http_api_us": us(&guarded, &api),
        "invoke_with_response_stream": streamed,
        "stream_over_invoke_us": us(&streamed, &invoke),
    }))
}
