//! APIs themselves: create (with quick create), get, list, update, delete, CORS, tags.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::doc::{Api, ApiCors, ApiDoc, Integration, Route, Stage};
use super::parts::{page, patch};
use super::{ApiGwError, ApiGwResult, body_of, load, modify, new_id, now, save};
use crate::http::cors::Cors;
use crate::{AppState, Caller};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateApi {
    #[serde(flatten)]
    api: Api,
    target: Option<String>,
    route_key: Option<String>,
    credentials_arn: Option<String>,
}

/// The API's wire shape, with its endpoint on this server.
pub(crate) fn wire(state: &AppState, doc: &ApiDoc) -> Value {
    let mut api = doc.api.clone();
    api.api_endpoint = Some(state.http.api_endpoint(&api.api_id));
    serde_json::to_value(api).unwrap_or_default()
}

pub(crate) fn check_cors(c: &Option<ApiCors>) -> ApiGwResult<()> {
    if let Some(c) = c {
        Cors::from(c)
            .validate_api()
            .map_err(ApiGwError::bad_request)?;
    }
    Ok(())
}

fn check_api(api: &Api) -> ApiGwResult<()> {
    if api.name.is_empty() || api.name.len() > 128 {
        return Err(ApiGwError::bad_request(
            "The API name must be 1 to 128 characters.",
        ));
    }
    match api.protocol_type.as_str() {
        "HTTP" => {}
        "WEBSOCKET" => {
            return Err(ApiGwError::bad_request(
                "WEBSOCKET APIs are not supported by this server; create an HTTP API (protocolType HTTP).",
            ));
        }
        _ => {
            return Err(ApiGwError::bad_request(
                "Invalid protocol specified. Must be one of [HTTP, WEBSOCKET]",
            ));
        }
    }
    check_cors(&api.cors_configuration)
}

/// A Lambda function ARN for a quick-created integration; anything else is refused.
pub(crate) fn check_function_target(target: &str) -> ApiGwResult<()> {
    if target.starts_with("arn:aws:lambda:") || target.starts_with("arn:aws:apigateway:") {
        return Ok(());
    }
    Err(ApiGwError::bad_request(format!(
        "Invalid target '{target}': this server integrates HTTP APIs with Lambda functions (AWS_PROXY); give a function ARN."
    )))
}

/// `POST /v2/apis`: CreateApi; with `target`, quick create.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiGwResult<Response> {
    let req: CreateApi = body_of(&body)?;
    let mut api = req.api;
    check_api(&api)?;
    if req.route_key.is_some() && req.target.is_none() {
        return Err(ApiGwError::bad_request(
            "routeKey can only be given with a target (quick create).",
        ));
    }
    let t = now();
    api.api_id = crate::random_id(10);
    api.created_date = t.clone();
    api.api_endpoint = None;
    if api.route_selection_expression.is_empty() {
        api.route_selection_expression = "$request.method $request.path".into();
    }
    if api.api_key_selection_expression.is_empty() {
        api.api_key_selection_expression = "$request.header.x-api-key".into();
    }
    let mut doc = ApiDoc {
        account: caller.account.to_string(),
        region: caller.region.to_string(),
        api,
        ..ApiDoc::default()
    };
    if let Some(target) = &req.target {
        check_function_target(target)?;
        let route_key = req.route_key.clone().unwrap_or_else(|| "$default".into());
        crate::http::routes::parse(&route_key).map_err(ApiGwError::bad_request)?;
        let integration_id = new_id();
        doc.integrations.insert(
            integration_id.clone(),
            Integration {
                integration_id: integration_id.clone(),
                integration_type: "AWS_PROXY".into(),
                integration_uri: Some(target.clone()),
                integration_method: Some("POST".into()),
                payload_format_version: Some("2.0".into()),
                timeout_in_millis: 30_000,
                connection_type: "INTERNET".into(),
                credentials_arn: req.credentials_arn.clone(),
                api_gateway_managed: true,
                ..Integration::default()
            },
        );
        let route_id = new_id();
        doc.routes.insert(
            route_id.clone(),
            Route {
                route_id,
                route_key,
                target: Some(format!("integrations/{integration_id}")),
                authorization_type: "NONE".into(),
                api_gateway_managed: true,
                ..Route::default()
            },
        );
        doc.stages.insert(
            "$default".into(),
            Stage {
                stage_name: "$default".into(),
                auto_deploy: true,
                created_date: t.clone(),
                last_updated_date: t.clone(),
                api_gateway_managed: true,
                ..Stage::default()
            },
        );
        doc.api.api_gateway_managed = true;
        doc.auto_deploy(&t);
    }
    save(&state, &doc, true).await?;
    Ok((StatusCode::CREATED, Json(wire(&state, &doc))).into_response())
}

/// `GET /v2/apis/{api}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
) -> ApiGwResult<Json<Value>> {
    let doc = load(&state, &caller, &api).await?;
    Ok(Json(wire(&state, &doc)))
}

/// `GET /v2/apis`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiGwResult<Json<Value>> {
    let store = state.store.clone();
    let (account, region) = (caller.account.clone(), caller.region.clone());
    let rows = crate::blocking(move || Ok::<_, ApiGwError>(store.apis(&account, &region)?)).await?;
    let items: Vec<(String, Value)> = rows
        .iter()
        .filter_map(|r| serde_json::from_str::<ApiDoc>(&r.doc).ok())
        .map(|d| (d.api.api_id.clone(), wire(&state, &d)))
        .collect();
    page(items, raw.as_deref()).map(Json)
}

/// `PATCH /v2/apis/{api}`: UpdateApi (quick-create `target` and `routeKey` change the
/// managed integration and route).
pub async fn update(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
    body: Bytes,
) -> ApiGwResult<Json<Value>> {
    let changes: Map<String, Value> = body_of(&body)?;
    let doc = modify(&state, &caller, &api, true, |doc| {
        doc.api = patch(
            &doc.api,
            &changes,
            &[
                "name",
                "description",
                "corsConfiguration",
                "disableExecuteApiEndpoint",
                "version",
                "routeSelectionExpression",
                "apiKeySelectionExpression",
            ],
        )?;
        check_api(&doc.api)?;
        if let Some(target) = changes.get("target").and_then(Value::as_str) {
            check_function_target(target)?;
            for i in doc
                .integrations
                .values_mut()
                .filter(|i| i.api_gateway_managed)
            {
                i.integration_uri = Some(target.to_owned());
            }
        }
        if let Some(key) = changes.get("routeKey").and_then(Value::as_str) {
            crate::http::routes::parse(key).map_err(ApiGwError::bad_request)?;
            for r in doc.routes.values_mut().filter(|r| r.api_gateway_managed) {
                r.route_key = key.to_owned();
            }
        }
        Ok(doc.clone())
    })
    .await?;
    Ok(Json(wire(&state, &doc)))
}

/// `DELETE /v2/apis/{api}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
) -> ApiGwResult<StatusCode> {
    let _writing = state.http.writes.lock().await;
    load(&state, &caller, &api).await?;
    let store = state.store.clone();
    let id = api.clone();
    crate::blocking(move || {
        store.delete_api(&id)?;
        // Its series go with it: its requests (`id`) and its authorizers' cache (`api`).
        crate::prometheus::forget(&[("id", &id), ("gateway", "api")]);
        crate::prometheus::forget(&[("api", &id)]);
        Ok::<_, ApiGwError>(())
    })
    .await?;
    state.http.forget_api(&api);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/apis/{api}/cors`: DeleteCorsConfiguration.
pub async fn delete_cors(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
) -> ApiGwResult<StatusCode> {
    modify(&state, &caller, &api, true, |doc| {
        doc.api.cors_configuration = None;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The API a tag ARN names: `arn:aws:apigateway:<region>::/apis/<id>`.
fn api_of_arn(caller: &Caller, arn: &str) -> ApiGwResult<String> {
    let prefix = format!("arn:aws:apigateway:{}::/apis/", caller.region);
    arn.strip_prefix(&prefix)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiGwError::not_found(format!("Invalid resource ARN specified {arn}"), "Resource")
        })
}

#[derive(Debug, Deserialize)]
struct Tags {
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// `GET /v2/tags/{arn}`.
pub async fn get_tags(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
) -> ApiGwResult<Json<Value>> {
    let doc = load(&state, &caller, &api_of_arn(&caller, &arn)?).await?;
    Ok(Json(json!({ "tags": doc.api.tags })))
}

/// `POST /v2/tags/{arn}`.
pub async fn tag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
    body: Bytes,
) -> ApiGwResult<StatusCode> {
    let req: Tags = body_of(&body)?;
    let api = api_of_arn(&caller, &arn)?;
    modify(&state, &caller, &api, false, |doc| {
        doc.api.tags.extend(req.tags);
        if doc.api.tags.len() > 50 {
            return Err(ApiGwError::bad_request(
                "A resource can have at most 50 tags.",
            ));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /v2/tags/{arn}?tagKeys=…`.
pub async fn untag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiGwResult<StatusCode> {
    let api = api_of_arn(&caller, &arn)?;
    let query = crate::query::Query::parse(raw.as_deref());
    let keys = query.all("tagKeys");
    modify(&state, &caller, &api, false, |doc| {
        for k in &keys {
            doc.api.tags.remove(*k);
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
