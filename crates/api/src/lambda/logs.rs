//! `GET /_lamina/logs/{function}?after=<cursor>&last=<n>`: a function's log lines, for
//! `lamina logs`. Authenticated like every API call.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use serde_json::{Value, json};

use super::query::Query;
use super::{ApiResult, AppState, Caller, blocking, resolve};

pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    let (key, _) = resolve(&caller, &name, None, "GetLogs")?;
    let after: Option<i64> = q.get("after").and_then(|a| a.parse().ok());
    let last: usize = q
        .get("last")
        .and_then(|a| a.parse().ok())
        .unwrap_or(100)
        .min(10_000);
    let store = state.store.clone();
    let events = blocking(move || {
        let after = match after {
            Some(a) => a,
            None => store.logs_cursor_for_last(&key, last)?,
        };
        Ok(store.logs(&key, after, 1000)?)
    })
    .await?;
    let next = events.last().map(|e| e.id);
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| json!({ "id": e.id, "stream": e.stream, "timestamp": e.ts_ms, "message": e.message }))
        .collect();
    Ok(Json(json!({ "events": events, "next": next })))
}
