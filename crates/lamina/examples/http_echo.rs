//! A Rust function built with the official `lambda_http` crate, used by the integration tests
//! behind function URLs and HTTP APIs: it answers with what `lambda_http` made of the request,
//! so a test sees that Lamina's events deserialize in the official library.

use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use serde_json::json;

async fn handler(req: Request) -> Result<Response<Body>, Error> {
    let body = match req.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => format!("{} binary bytes", b.len()),
        _ => String::new(),
    };
    let stage = match req.request_context() {
        lambda_http::request::RequestContext::ApiGatewayV2(c) => c.stage,
        _ => None,
    };
    let answer = json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "raw_http_path": req.raw_http_path(),
        "q": req.query_string_parameters().all("q"),
        "id": req.path_parameters().first("id"),
        "stage": stage,
        "cookie": req.headers().get("cookie").and_then(|v| v.to_str().ok()),
        "body": body,
    });
    Ok(Response::builder()
        .status(201)
        .header("content-type", "application/json")
        .header("set-cookie", "flavour=oat")
        .body(Body::from(answer.to_string()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(handler)).await
}
