//! The AWS APIs Lamina speaks, on one port: one dispatcher picks the service of each request,
//! and each service (`lambda`, `sns`, `apigateway`, `ecr`, `ec2`, `logs`) is a module of its own with
//! its own wire protocol and errors, sharing the state, the accounts and SigV4 ([`auth`],
//! [`sigv4`]), and the query protocols' parameters and XML ([`query`], [`xml`]).
//! Requests for functions over HTTP (function URLs, HTTP APIs) go to [`http`], by host or
//! path-style prefix, before any service is picked. The web console ([`console`]) is served
//! beside them at `/console`.
//!
//! Nothing else in the workspace knows about HTTP.

#![deny(missing_docs)]

pub mod apigw;
pub mod auth;
mod browser;
pub mod console;
pub mod ec2;
pub mod ecr;
pub mod eventstream;
pub mod from_functions;
pub mod http;
pub mod lambda;
pub mod logs;
pub mod prometheus;
pub mod query;
pub mod sigv4;
pub mod sns;
pub mod xml;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use lamina_model::Limits;
use lamina_store::Store;
use tower::ServiceExt;

pub use auth::{AccessKey, AuthConfig, Caller};

/// Everything the handlers share.
pub struct AppState {
    /// The durable store.
    pub store: Arc<Store>,
    /// Limits enforced at the API.
    pub limits: Limits,
    /// How callers are identified.
    pub auth: AuthConfig,
    /// The account concurrency limit reported by GetAccountSettings.
    pub account_concurrency: u32,
    /// Key for signing code download URLs; random per process, like short-lived presigned URLs.
    pub url_key: [u8; 32],
    /// Runs invocations.
    pub executor: lamina_runtime_api::Executor,
    /// The runtimes this server can serve.
    pub runtimes: Vec<String>,
    /// Where each invocation's usage record goes (batched into the store).
    pub usage: Arc<dyn UsageSink>,
    /// Prices for bills.
    pub prices: lamina_billing::PriceSheet,
    /// SNS: settings, the deliverer's wake-up, FIFO state.
    pub sns: sns::SnsState,
    /// Function URLs and HTTP APIs: their names and read caches.
    pub http: http::HttpState,
    /// The image registry: its token key and pull settings.
    pub ecr: ecr::EcrState,
    /// Asynchronous events: the queue's front door (its dispatcher runs beside).
    pub queue: Arc<lambda::queue::EventQueue>,
    /// Set when the server begins to shut down, so that long-lived responses (live tails) end
    /// rather than hold the shutdown for its whole grace period.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Per-function metrics since the last flush, which the server writes into the store's
    /// metric history.
    pub minutes: Arc<lambda::Minutes>,
    /// What Invoke runs, read once (see `lambda::HotCache`).
    pub hot: std::sync::RwLock<lambda::HotCache>,
    /// The host interfaces each account may bind subnets to (EC2's `lamina:interface`).
    pub ec2_interfaces: lamina_model::vpc::InterfacePermits,
    /// CloudWatch Logs' live tail sessions open, per account.
    pub live_tails: logs::livetail::LiveTails,
    /// Held across a write of a function's reserved concurrency (or of its deletion) and the
    /// scheduler's copy of it, so that the two agree whatever the order of concurrent writes.
    pub reservations: std::sync::Mutex<()>,
}

/// Receives one usage record per invocation; must not block.
pub trait UsageSink: Send + Sync {
    /// Takes a record for durable storage.
    fn record(&self, record: lamina_store::UsageRecord);
}

/// Adds `x-amzn-RequestId` to a response that has none (Invoke sets the invocation's own): every
/// response of the port gets one. Done in the dispatcher, not as a layer, so that no request
/// pays for a boxed middleware future.
fn with_request_id(mut resp: Response) -> Response {
    if !resp.headers().contains_key("x-amzn-requestid")
        && let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
    {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

/// An error a service answers when its own machinery fails.
pub(crate) trait Internal {
    /// "An internal error occurred", in the service's words.
    fn internal() -> Self;
}

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static, E: Internal + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "blocking task failed");
        Err(E::internal())
    })
}

/// A fresh id of `len` (at most 32) lowercase letters and digits: URL ids, API ids and the
/// ids of their parts.
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    a.as_bytes()
        .iter()
        .chain(b.as_bytes())
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Writes a file only the server may read, durably and whole (written aside, then renamed):
/// the keys that sign SNS messages and registry passwords.
pub(crate) fn write_private(
    path: &std::path::Path,
    bytes: impl AsRef<[u8]>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes.as_ref())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The services this port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Lambda (rest-json).
    Lambda,
    /// SNS (the query protocol).
    Sns,
    /// API Gateway v2 (rest-json under `/v2/`).
    ApiGateway,
    /// ECR's API (JSON 1.1).
    Ecr,
    /// The OCI distribution API (`/v2/<repository>/…`), unsigned (HTTP Basic).
    Registry,
    /// EC2's VPC subset (the `ec2` protocol).
    Ec2,
    /// CloudWatch Logs over function logs (JSON 1.1).
    Logs,
}

/// Picks the service of a request: the SigV4 credential scope names it for every signed call;
/// unsigned ones go by shape (a repository's blobs, manifests or tags under `/v2/` are the
/// registry's; an ECR or CloudWatch Logs `X-Amz-Target` is that service's; `/` is SNS's query endpoint, where its confirmation links point too; the rest of
/// `/v2/…` is API Gateway's; everything else is Lambda's). `Err` carries a service this server does not speak.
pub fn service_of(parts: &axum::http::request::Parts) -> Result<Service, String> {
    let scoped = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::Authorization::parse)
        .map(|a| a.service);
    match scoped.as_deref() {
        Some("lambda") => Ok(Service::Lambda),
        Some("sns") => Ok(Service::Sns),
        Some("apigateway") => Ok(Service::ApiGateway),
        Some("ecr") => Ok(Service::Ecr),
        Some("ec2") => Ok(Service::Ec2),
        Some("logs") => Ok(Service::Logs),
        Some(other) => Err(other.to_owned()),
        None if ecr::registry::is_registry_path(parts.uri.path()) => Ok(Service::Registry),
        None if parts
            .headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.starts_with("AmazonEC2ContainerRegistry_V20150921.")) =>
        {
            Ok(Service::Ecr)
        }
        None if parts
            .headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.starts_with(logs::TARGET_PREFIX)) =>
        {
            Ok(Service::Logs)
        }
        None if parts.uri.path() == "/" => Ok(Service::Sns),
        None if parts.uri.path().starts_with("/v2/") => Ok(Service::ApiGateway),
        None => Ok(Service::Lambda),
    }
}

/// Builds the one router of the port: every request goes to its service's router.
pub fn router(state: Arc<AppState>) -> Router {
    let lambda = lambda::router(state.clone());
    let sns = sns::router(state.clone());
    let apigw = apigw::router(state.clone());
    let gateways = state.clone();
    let console = console::router(state.clone(), lambda.clone());
    let certificate = Router::new()
        .route("/_lamina/sns/{file}", axum::routing::get(sns::certificate))
        .with_state(state);
    Router::new().fallback(move |req: Request| {
        let (lambda, sns, apigw) = (lambda.clone(), sns.clone(), apigw.clone());
        let (console, certificate) = (console.clone(), certificate.clone());
        let gateways = gateways.clone();
        let dispatched = async move {
            let (mut parts, body) = req.into_parts();
            // A function's host or prefix first: its paths are all its own.
            if let Some(target) = http::target_of(&parts) {
                browser::strip_console_cookie(&mut parts);
                let path_style = parts.uri.path().starts_with("/_aws/");
                let req = Request::from_parts(parts, body);
                let mut resp = Box::pin(http::serve(gateways, target, req)).await;
                if path_style {
                    browser::confine_path_style(&mut resp);
                }
                return resp;
            }
            let path = parts.uri.path();
            if path == "/console" || path.starts_with("/console/") {
                return Box::pin(console.oneshot(Request::from_parts(parts, body)))
                    .await
                    .into_response();
            }
            if let Some(refused) = browser::refuse_other_sites(&parts) {
                return refused;
            }
            let service = service_of(&parts);
            let req = Request::from_parts(parts, body);
            // Every service but Invoke is awaited boxed: inline, each would size the
            // dispatcher's future, which every request (an Invoke too) allocates and copies.
            let mut resp = if req.uri().path().starts_with("/_lamina/sns/") {
                Box::pin(certificate.oneshot(req)).await.into_response()
            } else {
                match service {
                    Ok(Service::Lambda) => match lambda::invoke_name(&req) {
                        Some(name) => lambda::invoke_direct(gateways, name, req).await,
                        None => Box::pin(lambda.oneshot(req)).await.into_response(),
                    },
                    Ok(Service::Sns) => Box::pin(sns.oneshot(req)).await.into_response(),
                    Ok(Service::ApiGateway) => Box::pin(apigw.oneshot(req)).await.into_response(),
                    Ok(Service::Ecr) => Box::pin(ecr::api::serve(gateways, req)).await,
                    Ok(Service::Registry) => Box::pin(ecr::registry::serve(gateways, req)).await,
                    Ok(Service::Ec2) => Box::pin(ec2::serve(gateways, req)).await,
                    Ok(Service::Logs) => Box::pin(logs::serve(gateways, req)).await,
                    Err(name) => unknown_service(&name),
                }
            };
            browser::harden_api_response(&mut resp);
            resp
        };
        async move { with_request_id(dispatched.await) }
    })
}

fn unknown_service(name: &str) -> Response {
    let body = serde_json::json!({
        "message": format!("This server does not speak the '{name}' service; it speaks lambda, sns, apigateway, ecr, ec2 and logs.")
    });
    (
        axum::http::StatusCode::BAD_REQUEST,
        [("x-amzn-ErrorType", "UnknownOperationException")],
        axum::Json(body),
    )
        .into_response()
}
