//! API Gateway v2 (`apigatewayv2`, rest-json under `/v2/`): HTTP APIs with their routes,
//! integrations, authorizers, stages and deployments. Each API is one document in the store,
//! changed whole under one lock; the data plane ([`crate::http::api`]) serves what a stage's
//! deployment froze.

mod apis;
pub(crate) mod doc;
mod parts;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use lamina_store::ApiRow;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::{AuthError, AuthFailure};
use crate::{AppState, Caller};
use doc::ApiDoc;

/// The largest control-plane request.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// An API Gateway error: `x-amzn-ErrorType` and `{"message": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGwError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    resource_type: Option<&'static str>,
}

/// Results of API Gateway handlers.
pub type ApiGwResult<T> = Result<T, ApiGwError>;

impl ApiGwError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "BadRequestException",
            message: message.into(),
            resource_type: None,
        }
    }
    pub(crate) fn not_found(message: impl Into<String>, resource_type: &'static str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "NotFoundException",
            message: message.into(),
            resource_type: Some(resource_type),
        }
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            kind: "ConflictException",
            message: message.into(),
            resource_type: None,
        }
    }
    pub(crate) fn quota(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "TooManyRequestsException",
            message: message.into(),
            resource_type: None,
        }
    }
}

impl crate::Internal for ApiGwError {
    fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "InternalServerErrorException",
            message: "An internal error occurred.".into(),
            resource_type: None,
        }
    }
}

impl From<lamina_store::StoreError> for ApiGwError {
    fn from(e: lamina_store::StoreError) -> Self {
        tracing::error!(error = %e, "API Gateway store operation failed");
        <Self as crate::Internal>::internal()
    }
}

impl From<AuthError> for ApiGwError {
    fn from(e: AuthError) -> Self {
        let kind = match e.kind {
            AuthFailure::MissingToken => "MissingAuthenticationTokenException",
            AuthFailure::Malformed | AuthFailure::BadSignature => "InvalidSignatureException",
            AuthFailure::UnknownKey => "UnrecognizedClientException",
        };
        Self {
            status: StatusCode::FORBIDDEN,
            kind,
            message: e.message,
            resource_type: None,
        }
    }
}

impl IntoResponse for ApiGwError {
    fn into_response(self) -> Response {
        let mut body = json!({ "message": self.message });
        if let Some(t) = self.resource_type {
            body["resourceType"] = json!(t);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.kind));
        resp
    }
}

/// An id for a route, integration, authorizer or deployment.
pub(crate) fn new_id() -> String {
    crate::random_id(7)
}

/// Now, as the wire writes it.
pub(crate) fn now() -> String {
    lamina_model::iso8601_millis(lamina_model::now_millis())
}

/// Parses a JSON body; an empty one is `{}`.
pub(crate) fn body_of<T: DeserializeOwned>(body: &Bytes) -> ApiGwResult<T> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiGwError::bad_request(format!("Invalid request body: {e}")))
}

fn no_api(api_id: &str) -> ApiGwError {
    ApiGwError::not_found(format!("Invalid API identifier specified {api_id}"), "Api")
}

/// The caller's API `api_id`.
pub(crate) async fn load(
    state: &Arc<AppState>,
    caller: &Caller,
    api_id: &str,
) -> ApiGwResult<ApiDoc> {
    let store = state.store.clone();
    let id = api_id.to_owned();
    let row = crate::blocking(move || Ok::<_, ApiGwError>(store.api(&id)?)).await?;
    let row = row
        .filter(|r| r.account == caller.account && r.region == caller.region)
        .ok_or_else(|| no_api(api_id))?;
    serde_json::from_str(&row.doc).map_err(|e| {
        tracing::error!(api = api_id, error = %e, "a stored API is unreadable");
        <ApiGwError as crate::Internal>::internal()
    })
}

/// Changes the caller's API `api_id` with `f` under the write lock and stores it; `redeploy`
/// deploys the change to the stages that deploy automatically.
pub(crate) async fn modify<T>(
    state: &Arc<AppState>,
    caller: &Caller,
    api_id: &str,
    redeploy: bool,
    f: impl FnOnce(&mut ApiDoc) -> ApiGwResult<T>,
) -> ApiGwResult<T> {
    let _writing = state.http.writes.lock().await;
    let mut doc = load(state, caller, api_id).await?;
    let out = f(&mut doc)?;
    if redeploy {
        doc.auto_deploy(&now());
    }
    save(state, &doc, false).await?;
    Ok(out)
}

/// The largest stored API (its routes, integrations, authorizers, stages and the snapshots of
/// its deployments), serialized.
const MAX_DOC_BYTES: usize = 4 << 20;
/// HTTP APIs per account and region (API Gateway's quota: 600).
const MAX_APIS: usize = 600;

/// Stores a document (`create`: a new API).
pub(crate) async fn save(state: &Arc<AppState>, doc: &ApiDoc, create: bool) -> ApiGwResult<()> {
    let text = serde_json::to_string(doc).unwrap_or_default();
    if text.len() > MAX_DOC_BYTES {
        return Err(ApiGwError::bad_request(format!(
            "The API's configuration would be larger than {MAX_DOC_BYTES} bytes (with the snapshots of its deployments); remove parts or deployments first."
        )));
    }
    if create {
        let store = state.store.clone();
        let (account, region) = (doc.account.clone(), doc.region.clone());
        let n = crate::blocking(move || {
            let (a, r) = (
                lamina_model::AccountId::parse(&account)
                    .map_err(|e| ApiGwError::bad_request(e.message))?,
                lamina_model::Region::parse(&region)
                    .map_err(|e| ApiGwError::bad_request(e.message))?,
            );
            Ok::<_, ApiGwError>(store.apis(&a, &r)?.len())
        })
        .await?;
        if n >= MAX_APIS {
            return Err(ApiGwError::quota(format!(
                "An account can have at most {MAX_APIS} HTTP APIs in a region."
            )));
        }
    }
    let row = ApiRow {
        api_id: doc.api.api_id.clone(),
        account: lamina_model::AccountId::parse(&doc.account)
            .map_err(|e| ApiGwError::bad_request(e.message))?,
        region: lamina_model::Region::parse(&doc.region)
            .map_err(|e| ApiGwError::bad_request(e.message))?,
        doc: text,
        created_ms: lamina_model::now_millis(),
    };
    let store = state.store.clone();
    let written =
        crate::blocking(move || Ok::<_, ApiGwError>(store.put_api(&row, create)?)).await?;
    state.http.forget_api(&doc.api.api_id);
    if !written {
        return Err(if create {
            ApiGwError::conflict("An API with this id already exists.")
        } else {
            no_api(&doc.api.api_id)
        });
    }
    Ok(())
}

/// Buffers the body and identifies the caller.
async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let Some(bytes) = crate::auth::read_body(&parts, body, MAX_REQUEST_BYTES).await else {
        return ApiGwError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "BadRequestException",
            message: format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes."),
            resource_type: None,
        }
        .into_response();
    };
    match crate::auth::identify(&state.auth, &parts, &bytes) {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => ApiGwError::from(e).into_response(),
    }
}

async fn unknown_operation() -> ApiGwError {
    ApiGwError::not_found(
        "Unknown operation: this server does not implement that API Gateway path.",
        "Operation",
    )
}

/// The API Gateway v2 routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/apis", get(apis::list).post(apis::create))
        .route(
            "/v2/apis/{api}",
            get(apis::get).patch(apis::update).delete(apis::delete),
        )
        .route("/v2/apis/{api}/cors", delete(apis::delete_cors))
        .route(
            "/v2/apis/{api}/routes",
            get(parts::list::<doc::Route>).post(parts::create::<doc::Route>),
        )
        .route(
            "/v2/apis/{api}/routes/{id}",
            get(parts::get::<doc::Route>)
                .patch(parts::update::<doc::Route>)
                .delete(parts::delete::<doc::Route>),
        )
        .route(
            "/v2/apis/{api}/integrations",
            get(parts::list::<doc::Integration>).post(parts::create::<doc::Integration>),
        )
        .route(
            "/v2/apis/{api}/integrations/{id}",
            get(parts::get::<doc::Integration>)
                .patch(parts::update::<doc::Integration>)
                .delete(parts::delete::<doc::Integration>),
        )
        .route(
            "/v2/apis/{api}/authorizers",
            get(parts::list::<doc::Authorizer>).post(parts::create::<doc::Authorizer>),
        )
        .route(
            "/v2/apis/{api}/authorizers/{id}",
            get(parts::get::<doc::Authorizer>)
                .patch(parts::update::<doc::Authorizer>)
                .delete(parts::delete::<doc::Authorizer>),
        )
        .route(
            "/v2/apis/{api}/stages",
            get(parts::list::<doc::Stage>).post(parts::create::<doc::Stage>),
        )
        .route(
            "/v2/apis/{api}/stages/{id}",
            get(parts::get::<doc::Stage>)
                .patch(parts::update::<doc::Stage>)
                .delete(parts::delete::<doc::Stage>),
        )
        .route(
            "/v2/apis/{api}/stages/{id}/cache/authorizers",
            delete(parts::reset_authorizers_cache),
        )
        .route(
            "/v2/apis/{api}/deployments",
            get(parts::list_deployments).post(parts::create_deployment),
        )
        .route(
            "/v2/apis/{api}/deployments/{id}",
            get(parts::get_deployment).delete(parts::delete_deployment),
        )
        .route(
            "/v2/tags/{arn}",
            get(apis::get_tags).post(apis::tag).delete(apis::untag),
        )
        .fallback(unknown_operation)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
