//! Function URLs at run time: CORS, `AWS_IAM` signatures, the function's resource policy, a
//! payload 2.0 event, and the result mapped back to HTTP.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lamina_model::Qualifier;
use lamina_store::FunctionUrl;
use serde_json::json;

use super::cors::Cors;
use super::event::{self, Context, Incoming};
use super::{message, reply};
use crate::AppState;
use crate::lambda::from_service::{self, Principal, Refusal};
use crate::prometheus::labels_of;

/// An unknown URL, or a request its function's policy does not allow (as recorded from
/// Lambda: `{"Message":null}`).
fn forbidden() -> Response {
    let mut resp = Response::new(Body::from(r#"{"Message":null}"#));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static("AccessDeniedException"),
    );
    resp
}

fn failed() -> Response {
    message(StatusCode::BAD_GATEWAY, "Message", "Internal Server Error")
}

async fn lookup(state: &Arc<AppState>, id: &str) -> Option<Arc<FunctionUrl>> {
    let store = state.store.clone();
    let key = id.to_owned();
    state
        .http
        .urls
        .get(id, move || {
            let url = store.function_url_by_id(&key).map_err(|e| e.to_string())?;
            // A URL's configuration is small: its count bounds the cache.
            Ok(url.map(|u| (u, 1024)))
        })
        .await
}

/// Who is calling: `None` for `NONE` URLs, the signing account for `AWS_IAM` ones; `Err` when
/// an `AWS_IAM` request is not validly signed for `lambda`.
fn caller(
    state: &AppState,
    url: &FunctionUrl,
    parts: &Parts,
    body: &Bytes,
) -> Result<Option<String>, ()> {
    if url.auth_type != "AWS_IAM" {
        return Ok(None);
    }
    let signed_for_lambda = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::sigv4::Authorization::parse)
        .is_some_and(|a| a.service == "lambda" && a.region == url.function.region.as_str());
    if !signed_for_lambda {
        return Err(());
    }
    match crate::auth::identify(&state.auth, parts, body) {
        Ok(c) => Ok(Some(c.account.to_string())),
        Err(e) => {
            tracing::debug!(error = %e.message, "function URL request refused");
            Err(())
        }
    }
}

/// Serves one request to a function URL.
pub(crate) async fn serve(
    state: &Arc<AppState>,
    id: &str,
    path: &str,
    parts: Parts,
    body: Body,
    ip: &str,
) -> Response {
    let started = std::time::Instant::now();
    let Some(url) = lookup(state, id).await else {
        metrics::counter!("lamina_http_requests_total", "gateway" => "url", "id" => "unknown", "status" => "4xx").increment(1);
        return forbidden();
    };
    let resp = match super::read_body(body).await {
        Ok(body) => handle(state, &url, path, &parts, body, ip).await,
        Err(resp) => resp,
    };
    // Named by its function, not by its id: `/metrics` is read by operators, and a URL's id is
    // all it takes to call it. The series go with the function.
    let status = super::status_class(resp.status());
    let labels = labels_of(&url.function, &[("gateway", "url"), ("status", status)]);
    metrics::counter!("lamina_http_requests_total", labels).increment(1);
    metrics::histogram!(
        "lamina_http_request_duration_seconds",
        labels_of(&url.function, &[("gateway", "url")])
    )
    .record(started.elapsed().as_secs_f64());
    resp
}

async fn handle(
    state: &Arc<AppState>,
    url: &FunctionUrl,
    path: &str,
    parts: &Parts,
    body: Bytes,
    ip: &str,
) -> Response {
    let id = url.url_id.as_str();
    let cors: Option<Cors> = url
        .cors
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok());
    if let Some(headers) = cors
        .as_ref()
        .and_then(|c| c.preflight(&parts.method, &parts.headers))
    {
        let mut resp = StatusCode::OK.into_response();
        resp.headers_mut().extend(headers);
        return resp;
    }
    let Ok(account) = caller(state, url, parts, &body) else {
        return forbidden();
    };
    let key = &url.function;
    let qualifier = (!url.qualifier.is_empty()).then(|| Qualifier::Alias(url.qualifier.clone()));
    let own = account.as_deref() == Some(key.account.as_str());
    if state.auth.verify && !own {
        let who = Principal::Url {
            account: account.as_deref(),
            auth_type: &url.auth_type,
        };
        let q = qualifier.as_ref();
        let ok = async {
            Ok::<_, Refusal>(
                from_service::allowed(state, key, q, "lambda:InvokeFunctionUrl", who).await?
                    && from_service::allowed(state, key, q, "lambda:InvokeFunction", who).await?,
            )
        }
        .await;
        if !matches!(ok, Ok(true)) {
            return forbidden();
        }
    }
    let domain = format!("{id}.lambda-url.{}.{}", key.region, state.http.domain);
    let headers = super::forwarded(&parts.headers, ip, &state.http.scheme, &state.http.port);
    let request_id = uuid::Uuid::new_v4().to_string();
    let incoming = Incoming {
        method: parts.method.as_str(),
        path,
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
        source_ip: ip,
    };
    let authorizer = account.as_ref().map(|a| {
        json!({ "iam": {
            "accessKey": parts.headers.get("authorization").and_then(|v| v.to_str().ok())
                .and_then(crate::sigv4::Authorization::parse).map(|a| a.access_key_id),
            "accountId": a, "callerId": a, "cognitoIdentity": null, "principalOrgId": null,
            "userArn": format!("arn:aws:iam::{a}:root"), "userId": a,
        }})
    });
    let ctx = Context {
        account_id: account.as_deref().unwrap_or("anonymous"),
        api_id: id,
        domain_name: &domain,
        stage: "$default",
        route_key: "$default",
        request_id: &request_id,
        time_ms: lamina_model::now_millis(),
        authorizer,
        path_parameters: None,
        stage_variables: None,
        route_id: "",
    };
    let Some(payload) = super::payload_of(&event::v2(&incoming, &ctx).for_url()) else {
        return super::too_large();
    };
    let streaming = url.invoke_mode.as_deref() == Some("RESPONSE_STREAM");
    let invoked = from_service::invoke_outcome(state, key, qualifier.as_ref(), payload, streaming);
    let mut resp = match invoked.await {
        Ok(mut a) if !a.function_error => match a.stream.take() {
            Some(s) => super::stream::reply(*s).await.unwrap_or_else(|()| {
                tracing::info!(url = id, "the function's stream has no valid HTTP prelude");
                failed()
            }),
            None => match event::reply_v2(&a.body) {
                Ok(r) => reply(r),
                Err(()) => {
                    tracing::info!(
                        url = id,
                        "the function's response is not a valid HTTP response"
                    );
                    failed()
                }
            },
        },
        Ok(_) => failed(),
        Err(Refusal::Throttled(_)) => {
            message(StatusCode::TOO_MANY_REQUESTS, "Message", "Rate Exceeded.")
        }
        Err(Refusal::NotFound(_)) => {
            state.http.forget_url(id);
            forbidden()
        }
        Err(e) => {
            tracing::error!(
                url = id,
                error = e.message(),
                "a function URL request failed"
            );
            failed()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    if let Some(c) = &cors {
        c.decorate(&parts.headers, resp.headers_mut());
    }
    resp
}
