//! Lambda's REST API: routes, wire types, error mapping, and the asynchronous event queue.
//!
//! Requests are parsed at the edge into `model` types; the store is called through
//! `spawn_blocking`; every error leaves through [`error::ApiError`].

mod account;
mod aliases;
mod attempt;
mod bill;
mod code;
mod concurrency;
mod config;
mod destinations;
pub mod dispatch;
mod error;
mod event_config;
pub mod from_service;
mod functions;
mod history;
mod hot;
mod image;
mod invoke;
mod layers;
mod logs;
mod meters;
mod minutes;
mod policy;
pub mod queue;
mod recursion;
mod stream;
mod tags;
mod urls;
mod versions;
mod vpc;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lamina_model::{ErrorKind, FunctionRef, LambdaError, Qualifier};
use lamina_store::{ExtractLimits, FunctionKey};
use serde::de::DeserializeOwned;

pub(crate) use crate::auth::{AuthError, AuthFailure};
pub(crate) use crate::{AppState, Caller, query, sigv4};
pub use error::{ApiError, ApiResult};
pub use hot::HotCache;
pub use invoke::MAX_SYNC_PAYLOAD;
pub use minutes::Minutes;
pub use vpc::vpc_access_of;

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::blocking(f).await
}

impl crate::Internal for ApiError {
    fn internal() -> Self {
        LambdaError::service("An internal error occurred.").into()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let kind = match e.kind {
            AuthFailure::MissingToken => ErrorKind::MissingAuthenticationToken,
            AuthFailure::Malformed | AuthFailure::BadSignature => ErrorKind::InvalidSignature,
            AuthFailure::UnknownKey => ErrorKind::UnrecognizedClient,
        };
        LambdaError::new(kind, e.message).into()
    }
}

/// Buffers the body (within the request limit), authenticates, and passes `Caller` and the
/// body on.
async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let (caller, bytes) = match identified(&state, &parts, body).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The body, read within the request limit, and the caller it and the head identify; or the
/// answer refusing the request.
async fn identified(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<(Caller, Bytes), Response> {
    let mut limit = state.limits.request_max_bytes as usize;
    // A function's requests are bounded lower (see `lamina_runtime_api::apis`).
    if crate::auth::function_credentials(parts).is_some() {
        limit = limit.min(lamina_runtime_api::apis::MAX_API_BODY);
    }
    // A body of more than 1 MiB (or chunked, of a length not declared) is read only for a
    // caller the head does not already refuse. A request without a body is signed once.
    let large = match parts.headers.get("content-length") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .is_none_or(|n| n > 1 << 20),
        None => parts.headers.contains_key("transfer-encoding"),
    };
    if large && let Some(e) = crate::auth::refused_by_head(&state.auth, parts) {
        return Err(ApiError::from(e).into_response());
    }
    let Some(bytes) = crate::auth::read_body(parts, body, limit).await else {
        return Err(too_large(limit, parts).into_response());
    };
    match crate::auth::identify(&state.auth, parts, &bytes) {
        Ok(caller) => Ok((caller, bytes)),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

/// The function an Invoke names (`POST /2015-03-31/functions/{name}/invocations`), for
/// [`invoke_direct`]; `None` for any other request, and for a name whose percent-encoding the
/// router's own rejection should answer.
pub(crate) fn invoke_name(req: &Request) -> Option<String> {
    if req.method() != axum::http::Method::POST {
        return None;
    }
    let name = req
        .uri()
        .path()
        .strip_prefix("/2015-03-31/functions/")?
        .strip_suffix("/invocations")?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

/// Invoke, the one operation on every invocation's path, straight to its handler: what the
/// router and [`authenticate`] do for it (the body read within the request limit, the caller
/// identified, the name percent-decoded), without their boxed services and futures.
pub(crate) async fn invoke_direct(state: Arc<AppState>, name: String, req: Request) -> Response {
    use axum::extract::{Extension, Path, RawQuery};
    let (parts, body) = req.into_parts();
    let (caller, bytes) = match identified(&state, &parts, body).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let raw = RawQuery(parts.uri.query().map(str::to_owned));
    invoke::invoke(
        State(state),
        Extension(caller),
        Path(name),
        raw,
        parts.headers,
        bytes,
    )
    .await
    .into_response()
}

fn too_large(limit: usize, parts: &axum::http::request::Parts) -> ApiError {
    let path = parts.uri.path();
    let op = if path.ends_with("/invocations") {
        "InvokeFunction"
    } else if path.ends_with("/response-streaming-invocations") {
        "InvokeWithResponseStream"
    } else if path.ends_with("/code") {
        "UpdateFunctionCode"
    } else if path.trim_end_matches('/').ends_with("/functions") {
        "CreateFunction"
    } else {
        "this"
    };
    LambdaError::too_large(format!(
        "Request must be smaller than {limit} bytes for the {op} operation"
    ))
    .into()
}

/// Removes code nothing references any more (after a change that may have left some), off the
/// request path.
pub(crate) fn collect_code(state: &AppState) {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.collect_garbage() {
            tracing::warn!(error = %e, "code garbage collection failed");
        }
    });
}

impl AppState {
    /// Forgets what the caches hold of a function that changed: its records and aliases, and
    /// any cached URL configuration or event rules (which a deleted function or alias takes
    /// with it). A store write calls it in its own blocking task, right after its commit, so
    /// that a handler dropped while it waits (its client gone) leaves nothing stale.
    pub(crate) fn forget(&self, key: &FunctionKey) {
        self.forget_hot(key);
        self.http.forget_urls();
        self.queue.rules_changed();
    }

    /// After a function changed (and its write called [`AppState::forget`]): retires the
    /// environments of `version` (`$LATEST`, or a deleted version's number), or of every
    /// version (`None`: the function was deleted).
    pub(crate) fn changed(&self, key: &FunctionKey, version: Option<&str>) {
        self.executor.retire(&arn(key, None), version);
    }
}

impl AppState {
    pub(crate) fn extract_limits(&self) -> ExtractLimits {
        ExtractLimits {
            max_unzipped_bytes: self.limits.unzipped_max_bytes,
            max_entries: self.limits.zip_max_entries,
        }
    }
}

/// Builds the router with every route of the Lambda API.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/2015-03-31/functions",
            post(functions::create).get(functions::list),
        )
        .route(
            "/2015-03-31/functions/",
            post(functions::create).get(functions::list),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            axum::routing::put(functions::update_code),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            post(stream::invoke_with_response_stream),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async",
            post(invoke::invoke_async),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async/",
            post(invoke::invoke_async),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            get(event_config::get)
                .put(event_config::put)
                .post(event_config::update)
                .delete(event_config::delete),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(event_config::list),
        )
        .route(
            "/2015-03-31/functions/{name}/policy",
            get(policy::get).post(policy::add),
        )
        .route(
            "/2015-03-31/functions/{name}/policy/{sid}",
            axum::routing::delete(policy::remove),
        )
        .route("/_lamina/logs/{name}", get(logs::get))
        .route("/_lamina/bill", get(bill::get))
        .route("/_lamina/metrics/history", get(history::summary))
        .route("/_lamina/metrics/history/{name}", get(history::function))
        .route("/2018-10-31/layers", get(layers::list_or_find))
        .route("/2018-10-31/layers/", get(layers::list_or_find))
        .route(
            "/2018-10-31/layers/{name}/versions",
            post(layers::publish).get(layers::list_versions),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}",
            get(layers::get).delete(layers::delete),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}/policy",
            post(layers::add_permission).get(layers::get_policy),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}/policy/{sid}",
            axum::routing::delete(layers::remove_permission),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(versions::publish).get(versions::list),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            post(aliases::create).get(aliases::list),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(aliases::get)
                .put(aliases::update)
                .delete(aliases::delete),
        )
        .route(
            "/2024-08-31/functions/{name}/recursion-config",
            get(recursion::get).put(recursion::put),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            axum::routing::put(concurrency::put).delete(concurrency::delete),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(concurrency::get),
        )
        .route(
            "/2021-10-31/functions/{name}/url",
            get(urls::get)
                .post(urls::create)
                .put(urls::update)
                .delete(urls::delete),
        )
        .route("/2021-10-31/functions/{name}/urls", get(urls::list))
        .route("/2016-08-19/account-settings", get(account::settings))
        .route("/2016-08-19/account-settings/", get(account::settings))
        .route(
            "/2017-03-31/tags/{arn}",
            get(tags::list).post(tags::tag).delete(tags::untag),
        )
        .fallback(unknown_operation)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        // `authenticate` has already read the body within the configured request limit.
        .layer(DefaultBodyLimit::disable());
    Router::new()
        // Code downloads carry their own signature in the URL, like a presigned S3 URL.
        .route("/_lamina/code/{file}", get(code::download))
        .merge(api)
        .with_state(state)
}

async fn unknown_operation() -> ApiError {
    LambdaError::new(
        ErrorKind::UnknownOperation,
        "Unknown operation: this server does not implement that path.",
    )
    .into()
}

/// `MaxItems` of the lists that take 1 to 10,000 and answer at most 50 a page (versions,
/// aliases).
pub(crate) fn page_size(q: &query::Query) -> ApiResult<usize> {
    let Some(m) = q.get("MaxItems") else {
        return Ok(50);
    };
    m.parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .map(|n| n.min(50))
        .ok_or_else(|| {
            LambdaError::validation(m, "maxItems", "Member must have value between 1 and 10000")
                .into()
        })
}

/// `MaxItems` of the lists that take at most 50 (event invoke configs, function URLs).
pub(crate) fn max_items(q: &query::Query) -> ApiResult<usize> {
    let Some(m) = q.get("MaxItems") else {
        return Ok(50);
    };
    m.parse::<usize>()
        .ok()
        .filter(|n| (1..=50).contains(n))
        .ok_or_else(|| {
            LambdaError::validation(
                m,
                "maxItems",
                "Member must have value less than or equal to 50",
            )
            .into()
        })
}

/// Parses a JSON request body; an empty body is the empty structure.
pub(crate) fn json_body<T: DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        LambdaError::new(
            ErrorKind::Serialization,
            format!("Could not parse the request body as JSON: {e}"),
        )
        .into()
    })
}

/// Resolves a `FunctionName` path label (plus `Qualifier`) against the caller.
pub(crate) fn resolve(
    caller: &Caller,
    raw: &str,
    qualifier: Option<&str>,
    operation: &str,
) -> ApiResult<(FunctionKey, Option<Qualifier>)> {
    let r = FunctionRef::parse(raw)?.with_qualifier(qualifier)?;
    if let Some(region) = &r.region
        && *region != caller.region
    {
        return Err(LambdaError::not_found(format!(
            "Functions from '{region}' are not reachable in this region ('{}')",
            caller.region
        ))
        .into());
    }
    let key = FunctionKey {
        account: caller.account.clone(),
        region: caller.region.clone(),
        name: r.name,
    };
    if let Some(account) = &r.account
        && *account != caller.account
    {
        return Err(not_authorized(caller, account, &key, operation));
    }
    Ok((key, r.qualifier))
}

fn not_authorized(
    caller: &Caller,
    account: &lamina_model::AccountId,
    key: &FunctionKey,
    operation: &str,
) -> ApiError {
    LambdaError::new(
        ErrorKind::AccessDenied,
        format!(
            "User: arn:aws:iam::{}:root is not authorized to perform: lambda:{operation} on resource: {} because no resource-based policy allows the lambda:{operation} action",
            caller.account,
            lamina_model::function_arn(&caller.region, account, &key.name)
        ),
    )
    .into()
}

/// Resolves the function an invoke names: the caller's own, or another account's whose
/// resource-based policy lets the caller invoke it.
pub(crate) async fn resolve_invoke(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    qualifier: Option<&str>,
    operation: &str,
) -> ApiResult<(FunctionKey, Option<Qualifier>)> {
    let r = FunctionRef::parse(raw)?.with_qualifier(qualifier)?;
    let Some(account) = r.account.clone().filter(|a| *a != caller.account) else {
        return resolve(caller, raw, qualifier, operation);
    };
    if r.region
        .as_ref()
        .is_some_and(|region| *region != caller.region)
    {
        return resolve(caller, raw, qualifier, operation);
    }
    let key = FunctionKey {
        account: account.clone(),
        region: caller.region.clone(),
        name: r.name,
    };
    // Boxed: another account's call is rare, and its policy read would size every Invoke's
    // future.
    let allowed = Box::pin(policy::allows(
        state,
        &key,
        r.qualifier.as_ref(),
        "lambda:InvokeFunction",
        policy::Principal::Account(caller.account.as_str()),
    ))
    .await?;
    if !allowed {
        return Err(not_authorized(caller, &account, &key, operation));
    }
    Ok((key, r.qualifier))
}

/// The ARN of a function, qualified if asked.
pub(crate) fn arn(key: &FunctionKey, qualifier: Option<&Qualifier>) -> String {
    let base = lamina_model::function_arn(&key.region, &key.account, &key.name);
    match qualifier {
        Some(q) => format!("{base}:{q}"),
        None => base,
    }
}

/// `Function not found: <arn>`, as Lambda words it.
pub(crate) fn function_not_found(key: &FunctionKey, qualifier: Option<&Qualifier>) -> ApiError {
    LambdaError::not_found(format!("Function not found: {}", arn(key, qualifier))).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(method: &str, uri: &str) -> Option<String> {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        invoke_name(&req)
    }

    #[test]
    fn only_a_post_to_an_invoke_path_goes_straight_to_invoke() {
        let invoke = "/2015-03-31/functions/f/invocations";
        assert_eq!(name_of("POST", invoke).as_deref(), Some("f"));
        assert_eq!(
            name_of("POST", "/2015-03-31/functions/f/invocations?Qualifier=1").as_deref(),
            Some("f"),
            "the query is the handler's"
        );
        assert_eq!(
            name_of(
                "POST",
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations"
            )
            .as_deref(),
            Some("arn:aws:lambda:us-east-1:000000000000:function:f"),
            "decoded as the router's Path would"
        );
        // The router answers everything else, its rejections included.
        assert_eq!(name_of("GET", invoke), None);
        assert_eq!(name_of("POST", "/2015-03-31/functions//invocations"), None);
        assert_eq!(
            name_of("POST", "/2015-03-31/functions/a/b/invocations"),
            None
        );
        assert_eq!(
            name_of("POST", "/2015-03-31/functions/%FF/invocations"),
            None
        );
        assert_eq!(
            name_of("POST", "/2015-03-31/functions/f/invocations/"),
            None
        );
        assert_eq!(
            name_of("POST", "/2014-11-13/functions/f/invoke-async"),
            None
        );
    }
}
