//! Reserved concurrency: PutFunctionConcurrency, GetFunctionConcurrency,
//! DeleteFunctionConcurrency. A function's reservation is both its floor and its ceiling; the
//! account keeps at least 100 unreserved.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use lamina_model::{LambdaError, Qualifier};
use lamina_store::{FunctionKey, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, AppState, Caller, arn, blocking, json_body, resolve};

/// The smallest unreserved concurrency an account keeps.
const UNRESERVED_MIN: u64 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRequest {
    reserved_concurrent_executions: Option<i64>,
}

pub(super) fn unqualified(caller: &Caller, name: &str, op: &str) -> ApiResult<FunctionKey> {
    let (key, q) = resolve(caller, name, None, op)?;
    if q.is_some() {
        return Err(LambdaError::invalid_parameter(
            "This operation is permitted on Lambda functions only. Aliases and versions do not support this operation. Please specify either a function name or an unqualified function ARN.",
        )
        .into());
    }
    Ok(key)
}

pub(super) fn not_found(key: &FunctionKey) -> ApiError {
    LambdaError::not_found(format!(
        "Function not found: {}",
        arn(key, Some(&Qualifier::Latest))
    ))
    .into()
}

/// `PUT /2017-10-31/functions/{name}/concurrency`.
pub async fn put(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let key = unqualified(&caller, &name, "PutFunctionConcurrency")?;
    let req: PutRequest = json_body(&body)?;
    let value = req
        .reserved_concurrent_executions
        .ok_or_else(|| LambdaError::missing("reservedConcurrentExecutions"))?;
    let value = u32::try_from(value).map_err(|_| {
        LambdaError::validation(
            value,
            "reservedConcurrentExecutions",
            "Member must have value greater than or equal to 0",
        )
    })?;
    let limit = state.account_concurrency as u64;
    reserve(&state, key, Some(value), move |others| {
        if limit.saturating_sub(others + value as u64) < UNRESERVED_MIN {
            return Err(LambdaError::invalid_parameter(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MIN}]."
            )));
        }
        Ok(())
    })
    .await?;
    Ok(Json(json!({ "ReservedConcurrentExecutions": value })))
}

/// `GET /2019-09-30/functions/{name}/concurrency`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = unqualified(&caller, &name, "GetFunctionConcurrency")?;
    let store = state.store.clone();
    let k = key.clone();
    match blocking(move || Ok(store.reserved_concurrency(&k)?)).await? {
        None => Err(not_found(&key)),
        Some(None) => Ok(Json(json!({}))),
        Some(Some(n)) => Ok(Json(json!({ "ReservedConcurrentExecutions": n }))),
    }
}

/// `DELETE /2017-10-31/functions/{name}/concurrency`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let key = unqualified(&caller, &name, "DeleteFunctionConcurrency")?;
    reserve(&state, key, None, |_| Ok(())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Writes a function's reservation (`check` sees the sum of the account's others) and gives
/// the scheduler its copy, on the thread that committed and under the lock that orders such
/// writes: a caller gone meanwhile, or two writes at once, cannot leave the two apart.
async fn reserve(
    state: &Arc<AppState>,
    key: FunctionKey,
    value: Option<u32>,
    check: impl FnOnce(u64) -> Result<(), LambdaError> + Send + 'static,
) -> ApiResult<()> {
    let st = state.clone();
    blocking(move || {
        let _order = st.reservations.lock().unwrap_or_else(|e| e.into_inner());
        st.store
            .set_reserved_concurrency(&key, value, check)
            .map_err(|e| match e {
                StoreError::NotFound => not_found(&key),
                e => e.into(),
            })?;
        st.executor.set_reserved(
            key.account.as_str(),
            key.region.as_str(),
            &arn(&key, None),
            value,
        );
        Ok(())
    })
    .await
}
