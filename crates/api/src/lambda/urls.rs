//! Function URL configurations: `/2021-10-31/functions/{name}/url[?Qualifier=alias]` and
//! `…/urls`. The URLs themselves are served by [`crate::http`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lamina_model::{LambdaError, Qualifier, format_timestamp, now_millis};
use lamina_store::{FunctionKey, FunctionUrl, StoreError, UrlChange};
use serde::Deserialize;
use serde_json::{Value, json};

use super::query::Query;
use super::{ApiResult, AppState, Caller, arn, blocking, json_body, resolve};
use crate::http::cors::Cors;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UrlRequest {
    auth_type: Option<String>,
    cors: Option<Cors>,
    invoke_mode: Option<String>,
}

/// The function and the qualifier (`""` or an alias) a URL request names.
async fn target(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
    raw: Option<&str>,
    operation: &str,
) -> ApiResult<(FunctionKey, Option<Qualifier>)> {
    let q = Query::parse(raw);
    let given = q.get("Qualifier");
    if let Some(g) = given
        && (g.is_empty()
            || g.len() > 128
            || g.bytes().all(|b| b.is_ascii_digit())
            || !g
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(LambdaError::validation(
            g,
            "qualifier",
            "Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)",
        )
        .into());
    }
    let (key, qualifier) = resolve(caller, name, given, operation).map_err(|e| {
        if e.error.message.contains("qualifier") {
            LambdaError::invalid_parameter(
                "The derived qualifier from the function name does not match the specified qualifier.",
            )
            .into()
        } else {
            e
        }
    })?;
    match &qualifier {
        None => {}
        Some(Qualifier::Alias(_)) => {
            super::versions::version_for(state, &key, qualifier.as_ref()).await?;
        }
        Some(q) => {
            return Err(LambdaError::validation(
                q.to_string(),
                "qualifier",
                "Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)",
            )
            .into());
        }
    }
    Ok((key, qualifier))
}

fn qualifier_text(q: &Option<Qualifier>) -> String {
    q.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn check_auth_type(a: &str) -> ApiResult<()> {
    if a == "NONE" || a == "AWS_IAM" {
        return Ok(());
    }
    Err(LambdaError::validation(
        a,
        "authType",
        "Member must satisfy enum value set: [AWS_IAM, NONE]",
    )
    .into())
}

fn check_invoke_mode(m: &str) -> ApiResult<()> {
    if m == "BUFFERED" || m == "RESPONSE_STREAM" {
        return Ok(());
    }
    Err(LambdaError::validation(
        m,
        "invokeMode",
        "Member must satisfy enum value set: [RESPONSE_STREAM, BUFFERED]",
    )
    .into())
}

fn cors_text(c: &Cors) -> ApiResult<String> {
    c.validate().map_err(LambdaError::invalid_parameter)?;
    Ok(serde_json::to_string(c).unwrap_or_default())
}

/// The wire shape of a configuration; `modified` adds `LastModifiedTime`, `mode` `InvokeMode`.
fn url_json(state: &AppState, u: &FunctionUrl, modified: bool, mode: bool) -> Value {
    let q = Qualifier::parse(&u.qualifier).ok();
    let mut v = json!({
        "FunctionUrl": state.http.function_url(&u.url_id, u.function.region.as_str()),
        "FunctionArn": arn(&u.function, q.filter(|_| !u.qualifier.is_empty()).as_ref()),
        "AuthType": u.auth_type,
        "CreationTime": format_timestamp(u.created_ms),
    });
    if let Some(c) = u
        .cors
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
    {
        v["Cors"] = c;
    }
    if modified {
        v["LastModifiedTime"] = json!(format_timestamp(u.modified_ms));
    }
    if mode {
        v["InvokeMode"] = json!(u.invoke_mode.as_deref().unwrap_or("BUFFERED"));
    }
    v
}

fn no_url() -> super::ApiError {
    LambdaError::not_found("The resource you requested does not exist.").into()
}

/// `POST …/url`: CreateFunctionUrlConfig.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let (key, qualifier) = target(
        &state,
        &caller,
        &name,
        raw.as_deref(),
        "CreateFunctionUrlConfig",
    )
    .await?;
    let req: UrlRequest = json_body(&body)?;
    let auth_type = req
        .auth_type
        .ok_or_else(|| LambdaError::validation("null", "authType", "Member must not be null"))?;
    check_auth_type(&auth_type)?;
    if let Some(m) = &req.invoke_mode {
        check_invoke_mode(m)?;
    }
    let now = now_millis();
    let url = FunctionUrl {
        function: key.clone(),
        qualifier: qualifier_text(&qualifier),
        url_id: crate::random_id(32),
        auth_type,
        cors: req.cors.as_ref().map(cors_text).transpose()?,
        invoke_mode: req.invoke_mode.clone(),
        created_ms: now,
        modified_ms: now,
    };
    let store = state.store.clone();
    let stored = url.clone();
    let created = blocking(move || match store.create_function_url(&stored) {
        Err(StoreError::NotFound) => Ok(None),
        r => Ok(Some(r?)),
    })
    .await?;
    match created {
        None => Err(LambdaError::not_found("Function does not exist").into()),
        Some(false) => Err(LambdaError::conflict(format!(
            "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
            arn(&key, qualifier.as_ref())
        ))
        .into()),
        Some(true) => {
            let mut v = url_json(&state, &url, false, false);
            if let Some(m) = &req.invoke_mode {
                v["InvokeMode"] = json!(m);
            }
            Ok((StatusCode::CREATED, Json(v)).into_response())
        }
    }
}

/// `GET …/url`: GetFunctionUrlConfig.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (key, qualifier) = target(
        &state,
        &caller,
        &name,
        raw.as_deref(),
        "GetFunctionUrlConfig",
    )
    .await?;
    let store = state.store.clone();
    let q = qualifier_text(&qualifier);
    let url = blocking(move || Ok(store.function_url(&key, &q)?))
        .await?
        .ok_or_else(no_url)?;
    Ok(Json(url_json(&state, &url, true, true)))
}

/// `PUT …/url`: UpdateFunctionUrlConfig.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (key, qualifier) = target(
        &state,
        &caller,
        &name,
        raw.as_deref(),
        "UpdateFunctionUrlConfig",
    )
    .await?;
    let req: UrlRequest = json_body(&body)?;
    if let Some(a) = &req.auth_type {
        check_auth_type(a)?;
    }
    if let Some(m) = &req.invoke_mode {
        check_invoke_mode(m)?;
    }
    let change = UrlChange {
        auth_type: req.auth_type.clone(),
        cors: req.cors.as_ref().map(cors_text).transpose()?.map(Some),
        invoke_mode: req.invoke_mode.clone(),
    };
    let (store, st) = (state.store.clone(), state.clone());
    let q = qualifier_text(&qualifier);
    // The cache forgets on the thread that committed, so that a caller gone meanwhile cannot
    // leave the old configuration served.
    let url = blocking(move || {
        let url = store.update_function_url(&key, &q, &change)?;
        if let Some(u) = &url {
            st.http.forget_url(&u.url_id);
        }
        Ok(url)
    })
    .await?
    .ok_or_else(no_url)?;
    Ok(Json(url_json(
        &state,
        &url,
        true,
        req.invoke_mode.is_some(),
    )))
}

/// `DELETE …/url`: DeleteFunctionUrlConfig.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let (key, qualifier) = target(
        &state,
        &caller,
        &name,
        raw.as_deref(),
        "DeleteFunctionUrlConfig",
    )
    .await?;
    let (store, st) = (state.store.clone(), state.clone());
    let q = qualifier_text(&qualifier);
    let deleted = blocking(move || {
        let id = store.delete_function_url(&key, &q)?;
        if let Some(id) = &id {
            st.http.forget_url(id);
        }
        Ok(id.is_some())
    })
    .await?;
    if !deleted {
        return Err(no_url());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/urls`: ListFunctionUrlConfigs.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    let (key, _) = resolve(&caller, &name, None, "ListFunctionUrlConfigs")?;
    let max = super::max_items(&q)?;
    let store = state.store.clone();
    let k = key.clone();
    let (exists, urls) =
        blocking(move || Ok((store.get_function(&k)?.is_some(), store.function_urls(&k)?))).await?;
    if !exists {
        return Err(super::function_not_found(&key, None));
    }
    let start = q
        .get("Marker")
        .map(|m| {
            urls.iter()
                .position(|u| u.url_id == m)
                .unwrap_or(urls.len())
        })
        .unwrap_or(0);
    let page: Vec<Value> = urls
        .iter()
        .skip(start)
        .take(max)
        .map(|u| url_json(&state, u, true, true))
        .collect();
    let mut v = json!({ "FunctionUrlConfigs": page });
    if let Some(next) = urls.get(start + max) {
        v["NextMarker"] = json!(next.url_id);
    }
    Ok(Json(v))
}
