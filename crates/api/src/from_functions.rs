//! Requests functions make to Lamina's APIs from their sandboxes, through their Runtime API
//! listener ([`lamina_runtime_api::apis`]).
//!
//! They go to the port's one router, as any caller's, with the environment's credentials
//! attached, so that [`crate::auth::identify`] takes them as the function's account and only
//! when they are signed with those credentials, whether or not the server verifies signatures
//! otherwise. Only the AWS services' signed requests are served: function URLs, HTTP APIs and
//! the console are not, nor anything unsigned, which would otherwise act for the default
//! account of a server that does not verify.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use lamina_runtime_api::apis::{ApiBody, ApiRequest, Credentials, Gateway};
use tower::ServiceExt as _;

use crate::sigv4::Authorization;

/// The gateway the executor hands functions' requests to: `router` is the port's, without
/// `/metrics`.
pub fn gateway(state: &crate::AppState, router: Router) -> Arc<dyn Gateway> {
    Arc::new(FromFunctions {
        router,
        stopping: state.stopping.subscribe(),
    })
}

struct FromFunctions {
    router: Router,
    /// Set as the server begins to stop: the port stops taking requests, and so does this.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Gateway for FromFunctions {
    fn serve(
        &self,
        req: ApiRequest,
        from: Arc<Credentials>,
    ) -> Pin<Box<dyn Future<Output = axum::http::Response<ApiBody>> + Send>> {
        let router = self.router.clone();
        let stopping = *self.stopping.borrow();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let refused = match stopping {
                true => Some(stopping_now()),
                false => refused(&parts),
            };
            let resp = match refused {
                Some(refused) => refused,
                None => {
                    parts.extensions.insert(from);
                    let req = Request::from_parts(parts, Body::new(body));
                    router.oneshot(req).await.into_response()
                }
            };
            resp.map(|b| b.map_err(Into::into).boxed_unsync())
        })
    }
}

/// Why a function's request is not served, before any service sees it.
fn refused(parts: &axum::http::request::Parts) -> Option<Response> {
    let path = parts.uri.path();
    // What a function's own host or prefix names, the console, and the URLs that carry their
    // own signature (code downloads) or none (SNS's certificate) are not the AWS APIs.
    if crate::http::target_of(parts).is_some()
        || path == "/console"
        || path.starts_with("/console/")
        || path.starts_with("/_lamina/code/")
        || path.starts_with("/_lamina/sns/")
    {
        return Some(forbidden(
            "AccessDeniedException",
            "Function URLs, HTTP APIs, the console and code downloads are not served at AWS_LAMBDA_RUNTIME_API's address; only the AWS APIs are.",
        ));
    }
    let signed = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(Authorization::parse)
        .is_some();
    (!signed).then(|| {
        forbidden(
            "MissingAuthenticationTokenException",
            "A function's requests to Lamina's APIs must be signed with the credentials of its environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN), as the AWS SDKs do.",
        )
    })
}

fn stopping_now() -> Response {
    refusal(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "ServiceException",
        "Lamina is shutting down; try again once it is back.",
    )
}

fn forbidden(error_type: &'static str, message: &str) -> Response {
    refusal(axum::http::StatusCode::FORBIDDEN, error_type, message)
}

fn refusal(status: axum::http::StatusCode, error_type: &'static str, message: &str) -> Response {
    (
        status,
        [("x-amzn-ErrorType", error_type)],
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}
