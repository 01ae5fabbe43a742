//! Aliases: CreateAlias, GetAlias, ListAliases, UpdateAlias, DeleteAlias, with
//! `RoutingConfig.AdditionalVersionWeights` for weighted traffic to a second version.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lamina_model::{LambdaError, Qualifier};
use lamina_store::{AliasRecord, FunctionKey, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, AppState, Caller, arn, blocking, function_not_found, json_body, resolve,
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Routing {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasRequest {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<Routing>,
    revision_id: Option<String>,
}

fn alias_arn(key: &FunctionKey, name: &str) -> String {
    arn(key, Some(&Qualifier::Alias(name.to_owned())))
}

fn render(key: &FunctionKey, a: &AliasRecord) -> Value {
    let mut v = json!({
        "AliasArn": alias_arn(key, &a.name),
        "Name": a.name,
        "FunctionVersion": a.version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if !a.routing.is_empty() {
        v["RoutingConfig"] = json!({ "AdditionalVersionWeights": a.routing });
    }
    v
}

fn check_name(name: &str) -> Result<(), LambdaError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LambdaError::validation(
            name,
            "name",
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        ))
    }
}

fn check_version(v: &str) -> Result<(), LambdaError> {
    if v == "$LATEST" || (!v.is_empty() && v.len() <= 1024 && v.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(LambdaError::validation(
            v,
            "functionVersion",
            "Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)",
        ))
    }
}

fn routing(version: &str, r: Option<Routing>) -> Result<BTreeMap<String, f64>, LambdaError> {
    let weights = r
        .and_then(|r| r.additional_version_weights)
        .unwrap_or_default();
    if weights.len() > 1 {
        return Err(LambdaError::invalid_parameter(
            "Number of items in AdditionalVersionWeights cannot be greater than 1",
        ));
    }
    for (v, w) in &weights {
        check_version(v)?;
        if !(0.0..=1.0).contains(w) {
            return Err(LambdaError::validation(
                w,
                "routingConfig.additionalVersionWeights",
                "Member must have value between 0.0 and 1.0",
            ));
        }
        if version == "$LATEST" || v == "$LATEST" {
            return Err(LambdaError::invalid_parameter(
                "$LATEST is not supported for an alias pointing to more than 1 version",
            ));
        }
        if v == version {
            return Err(LambdaError::invalid_parameter(
                "The primary version and the additional version cannot be the same.",
            ));
        }
    }
    Ok(weights)
}

fn function_key(caller: &Caller, name: &str, op: &str) -> ApiResult<FunctionKey> {
    let (key, q) = resolve(caller, name, None, op)?;
    if q.is_some() {
        return Err(LambdaError::invalid_parameter(
            "Aliases belong to the function: remove the qualifier.",
        )
        .into());
    }
    Ok(key)
}

fn not_found(key: &FunctionKey, name: &str) -> ApiError {
    LambdaError::not_found(format!("Cannot find alias arn: {}", alias_arn(key, name))).into()
}

/// `POST /2015-03-31/functions/{name}/aliases`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(function): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let key = function_key(&caller, &function, "CreateAlias")?;
    let req: AliasRequest = json_body(&body)?;
    let name = req.name.ok_or_else(|| LambdaError::missing("name"))?;
    check_name(&name)?;
    let version = req
        .function_version
        .ok_or_else(|| LambdaError::missing("functionVersion"))?;
    check_version(&version)?;
    let description = req.description.unwrap_or_default();
    lamina_model::limits::check_description(&description)?;
    let alias = AliasRecord {
        routing: routing(&version, req.routing_config)?,
        name: name.clone(),
        version,
        description,
        revision_id: uuid::Uuid::new_v4().to_string(),
    };
    let store = state.store.clone();
    let k = key.clone();
    let created = blocking(move || {
        store.create_alias(&k, &alias).map_err(|e| match e {
            StoreError::NotFound => function_not_found(&k, None),
            e => e.into(),
        })
    })
    .await?;
    match created {
        Some(a) => Ok((StatusCode::CREATED, Json(render(&key, &a))).into_response()),
        None => Err(LambdaError::conflict(format!(
            "Alias already exists: {}",
            alias_arn(&key, &name)
        ))
        .into()),
    }
}

/// `GET /2015-03-31/functions/{name}/aliases/{alias}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((function, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let key = function_key(&caller, &function, "GetAlias")?;
    let store = state.store.clone();
    let (k, n) = (key.clone(), name.clone());
    let found = blocking(move || {
        store.get_alias(&k, &n).map_err(|e| match e {
            StoreError::NotFound => function_not_found(&k, None),
            e => e.into(),
        })
    })
    .await?;
    found
        .map(|a| Json(render(&key, &a)))
        .ok_or_else(|| not_found(&key, &name))
}

/// `GET /2015-03-31/functions/{name}/aliases`: by name, those of `FunctionVersion` only if
/// given, in pages whose `NextMarker` is the last alias's name.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(function): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<Json<Value>> {
    let key = function_key(&caller, &function, "ListAliases")?;
    let q = super::query::Query::parse(raw.as_deref());
    let max = super::page_size(&q)?;
    let version = q.get("FunctionVersion").map(str::to_owned);
    let after = q.get("Marker").map(str::to_owned);
    let store = state.store.clone();
    let k = key.clone();
    let all = blocking(move || {
        store.list_aliases(&k).map_err(|e| match e {
            StoreError::NotFound => function_not_found(&k, None),
            e => e.into(),
        })
    })
    .await?;
    let mut chosen = all.iter().filter(|a| {
        version.as_ref().is_none_or(|v| a.version == *v)
            && after.as_ref().is_none_or(|m| a.name.as_str() > m.as_str())
    });
    let page: Vec<&AliasRecord> = chosen.by_ref().take(max).collect();
    let mut out = json!({ "Aliases": page.iter().map(|a| render(&key, a)).collect::<Vec<_>>() });
    if chosen.next().is_some()
        && let Some(last) = page.last()
    {
        out["NextMarker"] = json!(last.name);
    }
    Ok(Json(out))
}

/// `PUT /2015-03-31/functions/{name}/aliases/{alias}`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((function, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let key = function_key(&caller, &function, "UpdateAlias")?;
    let req: AliasRequest = json_body(&body)?;
    if let Some(v) = &req.function_version {
        check_version(v)?;
    }
    let (store, st) = (state.store.clone(), state.clone());
    let (k, n) = (key.clone(), name.clone());
    let updated = blocking(move || {
        let updated = store
            .update_alias(&k, &n, req.revision_id.as_deref(), |mut a| {
                if let Some(v) = req.function_version {
                    a.version = v;
                }
                if let Some(d) = req.description {
                    lamina_model::limits::check_description(&d)?;
                    a.description = d;
                }
                let weights = match req.routing_config {
                    Some(r) => r,
                    None => Routing {
                        additional_version_weights: Some(std::mem::take(&mut a.routing)),
                    },
                };
                // Checked against the (possibly new) primary version.
                a.routing = routing(&a.version, Some(weights))?;
                Ok(a)
            })
            .map_err(|e| match e {
                StoreError::NotFound => not_found(&k, &n),
                e => e.into(),
            })?;
        // In this task, so that a handler dropped while it waits leaves nothing stale.
        st.forget(&k);
        Ok(updated)
    })
    .await?;
    Ok(Json(render(&key, &updated)))
}

/// `DELETE /2015-03-31/functions/{name}/aliases/{alias}` (absent aliases too).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((function, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let key = function_key(&caller, &function, "DeleteAlias")?;
    let (store, st) = (state.store.clone(), state.clone());
    let k = key.clone();
    blocking(move || {
        store.delete_alias(&k, &name).map_err(|e| match e {
            StoreError::NotFound => function_not_found(&k, None),
            e => e.into(),
        })?;
        // The alias's function URL and event invoke configuration went with it. Forgotten in
        // this task, so that a handler dropped while it waits leaves nothing stale.
        st.forget(&k);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
