//! A function's recursive loop detection: GetFunctionRecursionConfig and
//! PutFunctionRecursionConfig. `Terminate` (the default) stops an asynchronous event after 16
//! invocations in one chain (see `attempt`); `Allow` lets the loop run on.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use lamina_model::LambdaError;
use lamina_store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::concurrency::{not_found, unqualified};
use super::{ApiResult, AppState, Caller, blocking, json_body};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRequest {
    recursive_loop: Option<String>,
}

fn setting(allowed: bool) -> Json<Value> {
    let value = if allowed { "Allow" } else { "Terminate" };
    Json(json!({ "RecursiveLoop": value }))
}

/// `GET /2024-08-31/functions/{name}/recursion-config`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = unqualified(&caller, &name, "GetFunctionRecursionConfig")?;
    let store = state.store.clone();
    let k = key.clone();
    match blocking(move || Ok(store.recursive_loop_allowed(&k)?)).await? {
        None => Err(not_found(&key)),
        Some(allowed) => Ok(setting(allowed)),
    }
}

/// `PUT /2024-08-31/functions/{name}/recursion-config`.
pub async fn put(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let key = unqualified(&caller, &name, "PutFunctionRecursionConfig")?;
    let req: PutRequest = json_body(&body)?;
    let allowed = match req.recursive_loop.as_deref() {
        Some("Allow") => true,
        Some("Terminate") => false,
        Some(other) => {
            return Err(LambdaError::validation(
                other,
                "recursiveLoop",
                "Member must satisfy enum value set: [Allow, Terminate]",
            )
            .into());
        }
        None => return Err(LambdaError::missing("recursiveLoop").into()),
    };
    let store = state.store.clone();
    blocking(
        move || match store.set_recursive_loop_allowed(&key, allowed) {
            Err(StoreError::NotFound) => Err(not_found(&key)),
            r => Ok(r?),
        },
    )
    .await?;
    Ok(setting(allowed))
}
