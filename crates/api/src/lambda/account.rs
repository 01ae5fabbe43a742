//! GetAccountSettings.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};

use super::wire::{AccountLimit, AccountSettings, AccountUsage};
use super::{ApiResult, AppState, Caller, blocking};

/// `GET /2016-08-19/account-settings/`.
pub async fn settings(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<AccountSettings>> {
    let store = state.store.clone();
    let (size, count, reserved) = blocking(move || {
        let (size, count) = store.account_usage(&caller.account, &caller.region)?;
        let reserved = store.reserved_total(caller.account.as_str(), caller.region.as_str())?;
        Ok((size, count, reserved))
    })
    .await?;
    Ok(Json(AccountSettings {
        account_limit: AccountLimit {
            total_code_size: state.limits.code_storage_max_bytes,
            code_size_unzipped: state.limits.unzipped_max_bytes,
            code_size_zipped: state.limits.zipped_max_bytes,
            concurrent_executions: state.account_concurrency,
            unreserved_concurrent_executions: state
                .account_concurrency
                .saturating_sub(reserved as u32),
        },
        account_usage: AccountUsage {
            total_code_size: size,
            function_count: count,
        },
    }))
}
