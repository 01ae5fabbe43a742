//! Versions: PublishVersion, ListVersionsByFunction, and resolving a qualifier (version number
//! or alias, with weighted routing) to the version it names.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lamina_model::{LambdaError, Qualifier};
use lamina_store::{AliasRecord, FunctionKey, FunctionRecord, StoreError, version_order};
use serde::Deserialize;

use super::functions::{View, configuration};
use super::query::Query;
use super::{
    ApiError, ApiResult, AppState, Caller, arn, blocking, function_not_found, json_body, resolve,
};

/// The version a qualifier names, for an alias its primary version (Get*; an invocation picks
/// one by weight, see [`picked`]), read from the store.
pub(crate) async fn version_for(
    state: &AppState,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
) -> ApiResult<FunctionRecord> {
    let store = state.store.clone();
    let k = key.clone();
    let q = qualifier.cloned();
    let found = blocking(move || {
        let version = match &q {
            None | Some(Qualifier::Latest) => "$LATEST".to_owned(),
            Some(Qualifier::Version(n)) => n.to_string(),
            Some(Qualifier::Alias(a)) => match store.get_alias(&k, a) {
                Ok(Some(alias)) => alias.version,
                Ok(None) | Err(StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        Ok(store.get_version(&k, &version)?)
    })
    .await?;
    found.ok_or_else(|| function_not_found(key, qualifier))
}

/// The version an invocation through `alias` runs: its additional version (if it has one) with
/// that version's weight, its primary version otherwise.
pub(crate) fn picked(alias: &AliasRecord) -> &str {
    if let Some((extra, weight)) = alias.routing.iter().next() {
        // The low 53 bits of a v4 UUID are random (the version and variant bits lie above).
        let r = (uuid::Uuid::new_v4().as_u128() & ((1 << 53) - 1)) as f64 / (1u64 << 53) as f64;
        if r < *weight {
            return extra;
        }
    }
    &alias.version
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishRequest {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

/// Publishes `$LATEST` (also used by `Publish: true` on create and code updates).
pub(crate) async fn publish_latest(
    state: &AppState,
    key: &FunctionKey,
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
) -> ApiResult<FunctionRecord> {
    let sha_hex = match code_sha256 {
        None => None,
        Some(b64) => Some(hex::encode(
            base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .map_err(|_| {
                    LambdaError::invalid_parameter(format!("CodeSha256 '{b64}' is not base64."))
                })?,
        )),
    };
    if let Some(d) = &description {
        lamina_model::limits::check_description(d)?;
    }
    let store = state.store.clone();
    let k = key.clone();
    let rec = blocking(move || {
        store
            .publish_version(
                &k,
                sha_hex.as_deref(),
                revision_id.as_deref(),
                description.as_deref(),
            )
            .map_err(|e| match e {
                StoreError::NotFound => function_not_found(&k, None),
                e => ApiError::from(e),
            })
    })
    .await?;
    Ok(rec)
}

/// `POST /2015-03-31/functions/{name}/versions`.
pub async fn publish(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (key, q) = resolve(&caller, &name, None, "PublishVersion")?;
    if q.is_some() {
        return Err(LambdaError::invalid_parameter(
            "PublishVersion acts on $LATEST; remove the qualifier.",
        )
        .into());
    }
    let req: PublishRequest = json_body(&body)?;
    let rec = publish_latest(
        &state,
        &key,
        req.code_sha256,
        req.description,
        req.revision_id,
    )
    .await?;
    let n: u64 = rec.version.parse().unwrap_or(0);
    let body = configuration(&rec, arn(&key, Some(&Qualifier::Version(n))), View::Current);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /2015-03-31/functions/{name}/versions`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<serde_json::Value>> {
    let (key, _) = resolve(&caller, &name, None, "ListVersionsByFunction")?;
    let q = Query::parse(raw.as_deref());
    let max = super::page_size(&q)?;
    // The marker is the last version a page showed, so that versions deleted or published
    // between pages neither skip nor repeat one.
    let after = match q.get("Marker").filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(version_order(m).ok_or_else(|| {
            LambdaError::invalid_parameter("Marker is not one this server returned.")
        })?),
    };
    let store = state.store.clone();
    let k = key.clone();
    let all = blocking(move || {
        store.list_versions(&k).map_err(|e| match e {
            StoreError::NotFound => function_not_found(&k, None),
            e => e.into(),
        })
    })
    .await?;
    let rest: Vec<&FunctionRecord> = all
        .iter()
        .filter(|r| after.is_none_or(|a| version_order(&r.version).is_some_and(|o| o > a)))
        .collect();
    let page: Vec<serde_json::Value> = rest
        .iter()
        .take(max)
        .map(|r| {
            let qualifier = match r.version.parse::<u64>() {
                Ok(n) => Qualifier::Version(n),
                Err(_) => Qualifier::Latest,
            };
            serde_json::to_value(configuration(r, arn(&key, Some(&qualifier)), View::Current))
                .unwrap_or_default()
        })
        .collect();
    let mut out = serde_json::json!({ "Versions": page });
    if rest.len() > max {
        out["NextMarker"] = rest[max - 1].version.clone().into();
    }
    Ok(Json(out))
}
