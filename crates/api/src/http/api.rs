//! HTTP APIs at run time: the stage, its deployment, CORS, the route, the authorizer, the
//! integration event, the function, and the result mapped back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::authorizer::{self, Verdict};
use super::cors::Cors;
use super::event::{self, Context, Incoming};
use super::jwt::{self, JwtVerdict};
use super::{forwarded, message, reply, routes, status_class};
use crate::AppState;
use crate::apigw::doc::{ApiDoc, Integration, Route, Snapshot};
use crate::lambda::from_service::{self, Principal, Refusal};

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "message", "Not Found")
}

fn internal() -> Response {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "message",
        "Internal Server Error",
    )
}

async fn lookup(state: &Arc<AppState>, id: &str) -> Option<Arc<ApiDoc>> {
    let store = state.store.clone();
    let key = id.to_owned();
    state
        .http
        .apis
        .get(id, move || {
            let Some(row) = store.api(&key).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            serde_json::from_str(&row.doc)
                .map(|doc| Some((doc, row.doc.len())))
                .map_err(|e| format!("the stored API {key} is unreadable: {e}"))
        })
        .await
}

/// Serves one request to an HTTP API.
pub(crate) async fn serve(
    state: &Arc<AppState>,
    id: &str,
    path: &str,
    parts: Parts,
    body: Body,
    ip: &str,
) -> Response {
    let started = std::time::Instant::now();
    let request_id = request_id();
    let Some(doc) = lookup(state, id).await else {
        metrics::counter!("lamina_http_requests_total", "gateway" => "api", "id" => "unknown", "status" => "4xx").increment(1);
        return not_found();
    };
    let mut resp = match super::read_body(body).await {
        Ok(body) => handle(state, &doc, path, &parts, body, ip, &request_id).await,
        Err(resp) => resp,
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("apigw-requestid", v);
    }
    metrics::counter!("lamina_http_requests_total", "gateway" => "api", "id" => id.to_owned(), "status" => status_class(resp.status())).increment(1);
    metrics::histogram!("lamina_http_request_duration_seconds", "gateway" => "api", "id" => id.to_owned())
        .record(started.elapsed().as_secs_f64());
    resp
}

/// An API Gateway style request id (`JKJaXmPLvHcESHA=`).
fn request_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(&uuid::Uuid::new_v4().as_bytes()[..10])
}

/// The stage a path names (its first segment), else `$default`; with the path within it.
fn stage_of<'a>(doc: &'a ApiDoc, path: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, within) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !first.is_empty() && first != "$default" && doc.stages.contains_key(first) {
        return Some((first, within));
    }
    doc.stages
        .contains_key("$default")
        .then_some(("$default", path))
}

struct Chosen<'a> {
    route: &'a Route,
    integration: &'a Integration,
    params: Map<String, Value>,
}

/// The route for the request and its integration; `None`: not found.
fn choose<'a>(snap: &'a Snapshot, method: &str, path: &str) -> Option<Chosen<'a>> {
    let (route_id, params) = routes::select(
        snap.routes
            .iter()
            .map(|(id, r)| (id.as_str(), r.route_key.as_str())),
        method,
        path,
    )?;
    let route = &snap.routes[route_id];
    let integration = route
        .target
        .as_deref()
        .and_then(|t| t.strip_prefix("integrations/"))
        .and_then(|i| snap.integrations.get(i));
    let Some(integration) = integration else {
        tracing::info!(route = %route.route_key, "the route has no integration");
        return None;
    };
    Some(Chosen {
        route,
        integration,
        params,
    })
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &Arc<AppState>,
    doc: &ApiDoc,
    path: &str,
    parts: &Parts,
    body: Bytes,
    ip: &str,
    request_id: &str,
) -> Response {
    let id = doc.api.api_id.as_str();
    if doc.api.disable_execute_api_endpoint {
        return message(StatusCode::FORBIDDEN, "message", "Forbidden");
    }
    let Some((stage_name, route_path)) = stage_of(doc, path) else {
        return not_found();
    };
    let stage = &doc.stages[stage_name];
    let Some(snap) = stage
        .deployment_id
        .as_ref()
        .and_then(|d| doc.deployments.get(d))
        .map(|d| &d.frozen)
    else {
        return not_found();
    };
    let cors = snap.cors.as_ref().map(Cors::from);
    if let Some(headers) = cors
        .as_ref()
        .and_then(|c| c.preflight(&parts.method, &parts.headers))
    {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        resp.headers_mut().extend(headers);
        return resp;
    }
    let method = parts.method.as_str();
    let Some(chosen) = choose(snap, method, route_path) else {
        return not_found();
    };
    let stage_variables = &stage.stage_variables;
    let headers = forwarded(&parts.headers, ip, &state.http.scheme, &state.http.port);
    let domain = format!("{id}.execute-api.{}", state.http.domain);
    let incoming = Incoming {
        method,
        path,
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
        source_ip: ip,
    };
    let mut ctx = Context {
        account_id: &doc.account,
        api_id: id,
        domain_name: &domain,
        stage: stage_name,
        route_key: &chosen.route.route_key,
        request_id,
        time_ms: lamina_model::now_millis(),
        authorizer: None,
        path_parameters: Some(&chosen.params),
        stage_variables: Some(stage_variables),
        route_id: &chosen.route.route_id,
    };
    let resource = routes::resource(&chosen.route.route_key);
    let arn_path = if resource == "$default" {
        "$default".to_owned()
    } else {
        format!("{method}{resource}")
    };
    let route_arn = format!(
        "arn:aws:execute-api:{}:{}:{id}/{stage_name}/{method}/{}",
        doc.region,
        doc.account,
        routes::segments(route_path).join("/")
    );
    let v2 = chosen.integration.payload_format_version.as_deref() != Some("1.0");
    match chosen.route.authorization_type.as_str() {
        "CUSTOM" => {
            let Some(a) = chosen
                .route
                .authorizer_id
                .as_ref()
                .and_then(|a| snap.authorizers.get(a))
            else {
                return internal();
            };
            let req = authorizer::Request {
                incoming: &incoming,
                context: &ctx,
                stage_variables,
                route_arn: &route_arn,
                region: &doc.region,
            };
            match authorizer::authorize(state, a, &doc.account, &req).await {
                Verdict::Allow(answer) => {
                    ctx.authorizer = Some(if v2 {
                        json!({ "lambda": answer.context() })
                    } else {
                        // Payload 1.0 (REST's shape): flat, values as strings.
                        let mut flat: Map<String, Value> = answer
                            .context()
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| match v {
                                Value::String(_) => (k.clone(), v.clone()),
                                other => (k.clone(), Value::String(other.to_string())),
                            })
                            .collect();
                        if let Some(p) = answer.principal_id() {
                            flat.insert("principalId".into(), p.clone());
                        }
                        flat.insert("integrationLatency".into(), json!(0));
                        Value::Object(flat)
                    });
                }
                Verdict::Unauthorized => {
                    return message(StatusCode::UNAUTHORIZED, "message", "Unauthorized");
                }
                Verdict::Forbidden => {
                    return message(StatusCode::FORBIDDEN, "message", "Forbidden");
                }
                Verdict::Failed => return internal(),
            }
        }
        "JWT" => {
            let Some(a) = chosen
                .route
                .authorizer_id
                .as_ref()
                .and_then(|a| snap.authorizers.get(a))
            else {
                return internal();
            };
            let req = authorizer::Request {
                incoming: &incoming,
                context: &ctx,
                stage_variables,
                route_arn: &route_arn,
                region: &doc.region,
            };
            let token = a
                .identity_source
                .first()
                .and_then(|s| authorizer::identity_value(s, &req));
            match jwt::authorize(state, a, chosen.route, token).await {
                JwtVerdict::Allow { claims, scopes } => {
                    ctx.authorizer = Some(jwt::context(claims, scopes, v2));
                }
                JwtVerdict::Unauthorized(why) => {
                    tracing::debug!(api = id, "JWT refused: {why}");
                    return message(StatusCode::UNAUTHORIZED, "message", "Unauthorized");
                }
                JwtVerdict::Forbidden => {
                    return message(StatusCode::FORBIDDEN, "message", "Forbidden");
                }
            }
        }
        "AWS_IAM" => match iam_caller(state, doc, parts, &body) {
            Some(iam) => ctx.authorizer = Some(json!({ "iam": iam })),
            None => return message(StatusCode::FORBIDDEN, "message", "Forbidden"),
        },
        _ => {}
    }
    let payload = if v2 {
        super::payload_of(&event::v2(&incoming, &ctx))
    } else {
        super::payload_of(&event::v1(&incoming, &ctx, resource))
    };
    let Some(payload) = payload else {
        return super::too_large();
    };
    let source_arn = format!(
        "arn:aws:execute-api:{}:{}:{id}/{stage_name}/{arn_path}",
        doc.region, doc.account
    );
    let integration = chosen.integration;
    invoke(
        state,
        doc,
        integration,
        stage_variables,
        &source_arn,
        payload,
        v2,
    )
    .await
    .map_or_else(
        |r| r,
        |mut resp| {
            if let Some(c) = &cors {
                c.decorate(&parts.headers, resp.headers_mut());
            }
            resp
        },
    )
}

/// The signer of an `AWS_IAM` route's request (signed for `execute-api` in the API's region);
/// with signatures verified, only the API's own account (HTTP APIs have no resource policy).
fn iam_caller(state: &AppState, doc: &ApiDoc, parts: &Parts, body: &Bytes) -> Option<Value> {
    let sig = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::sigv4::Authorization::parse)
        .filter(|a| a.service == "execute-api" && a.region == doc.region)?;
    let caller = crate::auth::identify(&state.auth, parts, body).ok()?;
    if state.auth.verify && caller.account.as_str() != doc.account {
        return None;
    }
    let a = caller.account.to_string();
    Some(json!({
        "accessKey": sig.access_key_id, "accountId": a, "callerId": a,
        "cognitoIdentity": null, "principalOrgId": null,
        "userArn": format!("arn:aws:iam::{a}:root"), "userId": a,
    }))
}

/// Runs the integration's function; `Err` holds the gateway's own answer.
async fn invoke(
    state: &Arc<AppState>,
    doc: &ApiDoc,
    integration: &Integration,
    stage_variables: &BTreeMap<String, String>,
    source_arn: &str,
    payload: Bytes,
    v2: bool,
) -> Result<Response, Response> {
    let uri = integration.integration_uri.as_deref().unwrap_or_default();
    let arn = authorizer::function_arn(uri, stage_variables);
    let (key, qualifier) = from_service::function_of(&arn).map_err(|e| {
        tracing::warn!(api = %doc.api.api_id, error = e.message(), "the integration names no function");
        internal()
    })?;
    if state.auth.verify || key.account.as_str() != doc.account {
        let who = Principal::Service {
            service: "apigateway.amazonaws.com",
            source_arn,
            source_account: &doc.account,
        };
        if !matches!(
            from_service::allowed(
                state,
                &key,
                qualifier.as_ref(),
                "lambda:InvokeFunction",
                who
            )
            .await,
            Ok(true)
        ) {
            tracing::warn!(api = %doc.api.api_id, function = %arn, source_arn, "API Gateway may not invoke the function: add a permission for apigateway.amazonaws.com with this source ARN");
            return Err(internal());
        }
    }
    let state2 = state.clone();
    let call = tokio::spawn(async move {
        from_service::invoke_sync(&state2, &key, qualifier.as_ref(), payload).await
    });
    let limit = Duration::from_millis(integration.timeout_in_millis.clamp(50, 30_000) as u64);
    let answer = match tokio::time::timeout(limit, call).await {
        Err(_) => {
            return Err(message(
                StatusCode::SERVICE_UNAVAILABLE,
                "message",
                "Service Unavailable",
            ));
        }
        Ok(Err(_)) => return Err(internal()),
        Ok(Ok(Err(
            Refusal::NotFound(m)
            | Refusal::Denied(m)
            | Refusal::Internal(m)
            | Refusal::Throttled(m),
        ))) => {
            tracing::info!(api = %doc.api.api_id, function = %arn, "integration failed: {m}");
            return Err(internal());
        }
        Ok(Ok(Ok(a))) => a,
    };
    if answer.function_error {
        return Err(internal());
    }
    let mapped = if v2 {
        event::reply_v2(&answer.body)
    } else {
        event::reply_v1(&answer.body)
    };
    mapped.map(reply).map_err(|()| {
        tracing::info!(api = %doc.api.api_id, function = %arn, "the function's response is not a valid HTTP response");
        internal()
    })
}
