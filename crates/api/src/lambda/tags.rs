//! Tags: TagResource, UntagResource, ListTags. Tags belong to the function, not to versions.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use lamina_model::{FunctionRef, LambdaError};
use lamina_store::{FunctionKey, StoreError};

use super::query::Query;
use super::wire::{TagResourceRequest, TagsResponse};
use super::{
    ApiError, ApiResult, AppState, Caller, blocking, function_not_found, json_body, resolve,
};

/// The `Resource` label must be an unqualified function ARN.
fn resource(caller: &Caller, raw: &str, operation: &str) -> ApiResult<FunctionKey> {
    let pattern_error = || {
        LambdaError::validation(
            raw,
            "resource",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-_]+)|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
        )
    };
    let parsed = FunctionRef::parse(raw).map_err(|_| pattern_error())?;
    if parsed.region.is_none() {
        return Err(pattern_error().into());
    }
    if parsed.qualifier.is_some() {
        return Err(LambdaError::invalid_parameter(
            "Tags on function aliases and versions are not supported. Please specify a function ARN.",
        )
        .into());
    }
    Ok(resolve(caller, raw, None, operation)?.0)
}

fn not_found(key: &FunctionKey) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => function_not_found(key, None),
        e => e.into(),
    }
}

/// `POST /2017-03-31/tags/{arn}`.
pub async fn tag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let key = resource(&caller, &arn, "TagResource")?;
    let req: TagResourceRequest = json_body(&body)?;
    let new = req.tags.ok_or_else(|| LambdaError::missing("tags"))?;
    let store = state.store.clone();
    let st = state.clone();
    blocking(move || {
        store
            .update_tags(&key, |mut tags| {
                tags.extend(new);
                st.limits.check_tags(&tags)?;
                Ok(tags)
            })
            .map_err(not_found(&key))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /2017-03-31/tags/{arn}?tagKeys=..&tagKeys=..`.
pub async fn untag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let key = resource(&caller, &arn, "UntagResource")?;
    let keys: Vec<String> = Query::parse(raw.as_deref())
        .all("tagKeys")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(LambdaError::missing("tagKeys").into());
    }
    let store = state.store.clone();
    blocking(move || {
        store
            .update_tags(&key, |mut tags| {
                for k in &keys {
                    tags.remove(k);
                }
                Ok(tags)
            })
            .map_err(not_found(&key))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2017-03-31/tags/{arn}`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
) -> ApiResult<Json<TagsResponse>> {
    let key = resource(&caller, &arn, "ListTags")?;
    let store = state.store.clone();
    let k = key.clone();
    let tags = blocking(move || Ok(store.tags(&k)?)).await?;
    match tags {
        Some(tags) => Ok(Json(TagsResponse { tags })),
        None => Err(function_not_found(&key, None)),
    }
}
