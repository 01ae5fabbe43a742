//! Event invoke configurations (`/2019-09-25/functions/{name}/event-invoke-config`): how many
//! times an asynchronous event is retried, how old it may get, and where its outcome goes.
//! Per function version or alias, with Lambda's validation and error texts.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use lamina_model::{FunctionRef, LambdaError, Qualifier, now_millis};
use lamina_store::{EventInvokeConfig, FunctionKey, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::query::Query;
use super::{ApiResult, AppState, Caller, arn, blocking, json_body, resolve};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    destination: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfig {
    on_success: Option<Destination>,
    on_failure: Option<Destination>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigRequest {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfig>,
}

/// The qualifier a request acts on (`$LATEST` when none), which must exist.
async fn target(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
    raw: Option<&str>,
    operation: &str,
) -> ApiResult<(FunctionKey, Qualifier)> {
    let q = Query::parse(raw);
    let (key, qualifier) = resolve(caller, name, q.get("Qualifier"), operation)?;
    let qualifier = qualifier.unwrap_or(Qualifier::Latest);
    super::versions::version_for(state, &key, Some(&qualifier)).await?;
    Ok((key, qualifier))
}

fn config_json(key: &FunctionKey, c: &EventInvokeConfig) -> Value {
    let qualifier = Qualifier::parse(&c.qualifier).unwrap_or(Qualifier::Latest);
    let destination = |d: &Option<String>| match d {
        Some(d) => json!({ "Destination": d }),
        None => json!({}),
    };
    let mut v = json!({
        "LastModified": c.last_modified_ms as f64 / 1000.0,
        "FunctionArn": arn(key, Some(&qualifier)),
        "DestinationConfig": {
            "OnSuccess": destination(&c.on_success),
            "OnFailure": destination(&c.on_failure),
        },
    });
    if let Some(n) = c.max_retries {
        v["MaximumRetryAttempts"] = json!(n);
    }
    if let Some(n) = c.max_age_s {
        v["MaximumEventAgeInSeconds"] = json!(n);
    }
    v
}

fn no_config(key: &FunctionKey, qualifier: &Qualifier) -> LambdaError {
    LambdaError::not_found(format!(
        "The function {} doesn't have an EventInvokeConfig",
        arn(key, Some(qualifier))
    ))
}

/// Checks a destination (`side`: `onSuccess` or `onFailure`): a Lamina function of the same
/// account, other than this one. Services Lamina cannot deliver to are refused, never accepted
/// and dropped.
async fn check_destination(
    state: &Arc<AppState>,
    key: &FunctionKey,
    side: &str,
    arn_text: &str,
) -> ApiResult<()> {
    let parts: Vec<&str> = arn_text.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" || !parts[1].starts_with("aws") {
        return Err(LambdaError::validation(
            arn_text,
            &format!("destinationConfig.{side}.destination"),
            "Member must satisfy regular expression pattern: ^$|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)",
        )
        .into());
    }
    match parts[2] {
        "lambda" => {}
        "sns" => {
            // A topic of the function's own account and region, that exists.
            let invalid = || {
                LambdaError::invalid_parameter(format!(
                    "The destination ARN {arn_text} is invalid."
                ))
            };
            let topic =
                crate::sns::parse_topic_arn("Destination", arn_text).map_err(|_| invalid())?;
            if topic.account != key.account || topic.region != key.region {
                return Err(invalid().into());
            }
            let store = state.store.clone();
            if !blocking(move || Ok(store.topic(&topic)?.is_some())).await? {
                return Err(invalid().into());
            }
            return Ok(());
        }
        service @ ("sqs" | "events" | "s3") => {
            return Err(LambdaError::invalid_parameter(format!(
                "Lamina cannot deliver to {} destinations ({arn_text}): use a Lambda function or an SNS topic.",
                match service {
                    "sqs" => "SQS queue",
                    "events" => "EventBridge bus",
                    _ => "S3 bucket",
                }
            ))
            .into());
        }
        _ => {
            return Err(LambdaError::invalid_parameter(format!(
                "The provided destination config {} is invalid.",
                match side {
                    "onSuccess" => format!("DestinationConfig(onSuccess=OnSuccess(destination={arn_text}), onFailure=null)"),
                    _ => format!("DestinationConfig(onSuccess=null, onFailure=OnFailure(destination={arn_text}))"),
                }
            ))
            .into());
        }
    }
    let invalid =
        || LambdaError::invalid_parameter(format!("The destination ARN {arn_text} is invalid."));
    let target = FunctionRef::parse(arn_text).map_err(|_| invalid())?;
    let dest = FunctionKey {
        account: target
            .account
            .clone()
            .unwrap_or_else(|| key.account.clone()),
        region: target.region.clone().unwrap_or_else(|| key.region.clone()),
        name: target.name.clone(),
    };
    if dest == *key {
        return Err(LambdaError::invalid_parameter(
            "You can't specify the function as a destination for itself.",
        )
        .into());
    }
    // Another account's function would need its owner's consent: not offered.
    if dest.region != key.region || dest.account != key.account {
        return Err(invalid().into());
    }
    super::versions::version_for(state, &dest, target.qualifier.as_ref())
        .await
        .map_err(|_| invalid())?;
    Ok(())
}

/// Validates a request into a configuration; `base` is the current one for an update.
async fn apply(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: &Qualifier,
    req: ConfigRequest,
    mut base: EventInvokeConfig,
) -> ApiResult<EventInvokeConfig> {
    if let Some(n) = req.maximum_retry_attempts {
        if !(0..=2).contains(&n) {
            let constraint = if n < 0 {
                "Member must have value greater than or equal to 0"
            } else {
                "Member must have value less than or equal to 2"
            };
            return Err(LambdaError::validation(n, "maximumRetryAttempts", constraint).into());
        }
        base.max_retries = Some(n as u32);
    }
    if let Some(n) = req.maximum_event_age_in_seconds {
        if !(60..=21_600).contains(&n) {
            let constraint = if n < 60 {
                "Member must have value greater than or equal to 60"
            } else {
                "Member must have value less than or equal to 21600"
            };
            return Err(LambdaError::validation(n, "maximumEventAgeInSeconds", constraint).into());
        }
        base.max_age_s = Some(n as u32);
    }
    if let Some(d) = req.destination_config {
        if let Some(s) = d.on_success {
            base.on_success = s.destination.filter(|d| !d.is_empty());
        }
        if let Some(f) = d.on_failure {
            base.on_failure = f.destination.filter(|d| !d.is_empty());
        }
    }
    for (side, d) in [
        ("onSuccess", &base.on_success),
        ("onFailure", &base.on_failure),
    ] {
        if let Some(d) = d {
            check_destination(state, key, side, d).await?;
        }
    }
    base.qualifier = qualifier.to_string();
    base.last_modified_ms = now_millis();
    Ok(base)
}

fn empty(qualifier: &Qualifier) -> EventInvokeConfig {
    EventInvokeConfig {
        qualifier: qualifier.to_string(),
        max_retries: None,
        max_age_s: None,
        on_success: None,
        on_failure: None,
        last_modified_ms: 0,
    }
}

async fn store_config(
    state: &Arc<AppState>,
    key: &FunctionKey,
    config: EventInvokeConfig,
) -> ApiResult<Json<Value>> {
    let (store, st, k, c) = (
        state.store.clone(),
        state.clone(),
        key.clone(),
        config.clone(),
    );
    // The dispatcher told on the thread that committed, so that a caller gone meanwhile cannot
    // leave it on the old rules.
    blocking(move || {
        store.put_event_config(&k, &c)?;
        st.queue.rules_changed();
        Ok(())
    })
    .await?;
    Ok(Json(config_json(key, &config)))
}

/// `PUT …/event-invoke-config`: replaces the configuration (omitted settings are removed).
pub async fn put(
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
        "PutFunctionEventInvokeConfig",
    )
    .await?;
    let req: ConfigRequest = json_body(&body)?;
    let has_destination = req
        .destination_config
        .as_ref()
        .is_some_and(|d| d.on_success.is_some() || d.on_failure.is_some());
    if req.maximum_retry_attempts.is_none()
        && req.maximum_event_age_in_seconds.is_none()
        && !has_destination
    {
        return Err(LambdaError::invalid_parameter(
            "You must specify at least one of error handling or destination setting.",
        )
        .into());
    }
    let config = apply(&state, &key, &qualifier, req, empty(&qualifier)).await?;
    store_config(&state, &key, config).await
}

/// `POST …/event-invoke-config`: changes the settings given, keeps the others.
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
        "UpdateFunctionEventInvokeConfig",
    )
    .await?;
    let req: ConfigRequest = json_body(&body)?;
    let current = load(&state, &key, &qualifier).await?;
    let config = apply(&state, &key, &qualifier, req, current).await?;
    store_config(&state, &key, config).await
}

async fn load(
    state: &AppState,
    key: &FunctionKey,
    qualifier: &Qualifier,
) -> ApiResult<EventInvokeConfig> {
    let store = state.store.clone();
    let k = key.clone();
    let q = qualifier.to_string();
    blocking(move || Ok(store.event_config(&k, &q)?))
        .await?
        .ok_or_else(|| no_config(key, qualifier).into())
}

/// `GET …/event-invoke-config`.
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
        "GetFunctionEventInvokeConfig",
    )
    .await?;
    let config = load(&state, &key, &qualifier).await?;
    Ok(Json(config_json(&key, &config)))
}

/// `DELETE …/event-invoke-config`.
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
        "DeleteFunctionEventInvokeConfig",
    )
    .await?;
    let (store, st, k, q) = (
        state.store.clone(),
        state.clone(),
        key.clone(),
        qualifier.to_string(),
    );
    let existed = blocking(move || {
        let existed = store.delete_event_config(&k, &q)?;
        st.queue.rules_changed();
        Ok(existed)
    })
    .await?;
    if !existed {
        return Err(no_config(&key, &qualifier).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/event-invoke-config/list`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    let (key, _) = resolve(&caller, &name, None, "ListFunctionEventInvokeConfigs")?;
    let max = super::max_items(&q)?;
    let start: usize = q.get("Marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let store = state.store.clone();
    let k = key.clone();
    let all = blocking(move || {
        store.event_configs(&k, None).map_err(|e| match e {
            StoreError::NotFound => LambdaError::not_found("The function doesn't exist.").into(),
            e => e.into(),
        })
    })
    .await?;
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|c| config_json(&key, c))
        .collect();
    let mut out = json!({ "FunctionEventInvokeConfigs": page });
    if start.saturating_add(max) < all.len() {
        out["NextMarker"] = json!((start + max).to_string());
    }
    Ok(Json(out))
}
