//! SNS over the AWS query protocol: topics, subscriptions, publishing, and delivery to functions
//! and HTTP endpoints.
//!
//! Every request is `POST /` (or, for the links in confirmation messages, `GET /`) with an
//! `Action`; parameters are decoded once into [`wire::Params`], the caller is identified by the
//! shared SigV4 piece, and errors leave as SNS's XML. Topics and subscriptions live in the store;
//! a publish is durable before its `MessageId` is returned: deliveries to functions become
//! asynchronous events of Lambda's queue, the others rows of the SNS outbox that [`deliver`]
//! works through.

mod deliver;
pub mod egress;
mod fifo;
pub mod filter;
mod permissions;
mod publish;
mod signing;
mod subscriptions;
mod topic_policy;
mod topics;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use lamina_model::{AccountId, Region};
use lamina_store::TopicKey;

use crate::auth::{AuthFailure, identify, read_body};
use crate::{AppState, Caller};
pub use deliver::start as start_deliverer;
pub use publish::{Published, publish_from_service};
pub use signing::{Signer, SignerError};
use wire::{Params, SnsError, SnsResult, error_response};

/// The largest request body: a 256 KB message with its attributes, URL-encoded (up to three
/// bytes per byte), or a batch of ten.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// How SNS behaves on this server.
#[derive(Debug, Clone)]
pub struct SnsSettings {
    /// The base URL of this server in links it sends (`SubscribeURL`, `UnsubscribeURL`).
    pub public_url: String,
    /// How long an HTTP endpoint has to answer a delivery.
    pub http_timeout: Duration,
    /// Bytes of deliveries the outbox may hold (retries and HTTP endpoints); publishing beyond
    /// is throttled.
    pub max_backlog_bytes: u64,
    /// Networks HTTP deliveries may not reach.
    pub deny: egress::Deny,
}

impl Default for SnsSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:9001".into(),
            http_timeout: Duration::from_secs(15),
            max_backlog_bytes: 256 << 20,
            deny: egress::Deny::link_local(),
        }
    }
}

/// SNS's share of the server state.
pub struct SnsState {
    pub(crate) settings: SnsSettings,
    /// Wakes the deliverer when deliveries were queued.
    pub(crate) wake: tokio::sync::Notify,
    /// Bytes in the outbox, and reserved for it by publishes in progress.
    backlog: AtomicU64,
    /// FIFO topics: deduplication and sequence numbers, per topic ARN.
    pub(crate) fifo: std::sync::Mutex<fifo::FifoTopics>,
    pub(crate) http: reqwest::Client,
    pub(crate) signer: Signer,
    /// Subscriptions' filter policies, parsed.
    pub(crate) policies: filter::Policies,
}

impl SnsState {
    /// SNS state for a server with these settings, signing with `signer`.
    pub fn new(settings: SnsSettings, signer: Signer) -> Result<Self, String> {
        let http = egress::client(settings.http_timeout, Arc::new(settings.deny.clone()))?;
        Ok(Self {
            settings,
            wake: tokio::sync::Notify::new(),
            backlog: AtomicU64::new(0),
            fifo: Default::default(),
            http,
            signer,
            policies: filter::Policies::default(),
        })
    }

    /// Reserves `bytes` of the outbox (false: it is full).
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        self.backlog
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b + bytes <= self.settings.max_backlog_bytes).then_some(b + bytes)
            })
            .is_ok()
    }

    /// Gives back `bytes` of the outbox: deliveries that left it, or reservations not used.
    pub(crate) fn release(&self, bytes: u64) {
        let _ = self
            .backlog
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(bytes))
            });
    }

    /// The Base64 signature of a message's fields.
    pub(crate) fn sign(&self, fields: &[(&str, &str)]) -> String {
        self.signer.sign(fields)
    }

    /// `SigningCertURL`.
    pub(crate) fn cert_url(&self) -> String {
        format!(
            "{}/_lamina/sns/{}",
            self.settings.public_url, self.signer.cert_name
        )
    }
}

/// `GET /_lamina/sns/{file}`: the certificate that verifies this server's message signatures.
pub async fn certificate(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    use axum::response::IntoResponse;
    if file != state.sns.signer.cert_name {
        return (StatusCode::NOT_FOUND, "no such certificate").into_response();
    }
    (
        [("content-type", "application/x-pem-file")],
        state.sns.signer.certificate().to_owned(),
    )
        .into_response()
}

/// The router of the SNS endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", axum::routing::any(handle))
        .fallback(|| async {
            error_response(
                &SnsError::batch("InvalidAction", "SNS is served at the path /."),
                &uuid::Uuid::new_v4().to_string(),
            )
        })
        .with_state(state)
}

/// Actions a confirmation or notification link may carry without a signature: the token (or
/// the subscription ARN) is the authority, as on SNS.
fn link_action(action: &str) -> bool {
    matches!(action, "ConfirmSubscription" | "Unsubscribe")
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match serve(&state, req, &request_id).await {
        Ok(r) => r,
        Err(e) => error_response(&e, &request_id),
    }
}

async fn serve(state: &Arc<AppState>, req: Request, request_id: &str) -> SnsResult<Response> {
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST && parts.method != Method::GET {
        return Err(SnsError::auth(
            "InvalidAction",
            StatusCode::METHOD_NOT_ALLOWED,
            "SNS takes POST (and GET for confirmation links).",
        ));
    }
    let Some(body) = read_body(&parts, body, MAX_REQUEST_BYTES).await else {
        return Err(SnsError::auth(
            "RequestEntityTooLarge",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes."),
        ));
    };
    let mut pairs = crate::query::pairs(parts.uri.query().unwrap_or(""));
    pairs.extend(crate::query::pairs(&String::from_utf8_lossy(&body)));
    let params = Params::new(pairs);
    let action = params.get("Action").ok_or_else(SnsError::missing_action)?;
    // Unsigned links act for nobody in particular: each checks what it names.
    let caller = if !parts.headers.contains_key("authorization") && link_action(action) {
        None
    } else {
        Some(identify(&state.auth, &parts, &body).map_err(auth_error)?)
    };
    let ctx = Ctx {
        state,
        request_id,
        params: &params,
    };
    match action {
        "CreateTopic" => topics::create(&ctx, need(&caller)?).await,
        "DeleteTopic" => topics::delete(&ctx, need(&caller)?).await,
        "ListTopics" => topics::list(&ctx, need(&caller)?).await,
        "GetTopicAttributes" => topics::get_attributes(&ctx, need(&caller)?).await,
        "SetTopicAttributes" => topics::set_attributes(&ctx, need(&caller)?).await,
        "TagResource" => topics::tag(&ctx, need(&caller)?).await,
        "UntagResource" => topics::untag(&ctx, need(&caller)?).await,
        "ListTagsForResource" => topics::list_tags(&ctx, need(&caller)?).await,
        "AddPermission" => permissions::add(&ctx, need(&caller)?).await,
        "RemovePermission" => permissions::remove(&ctx, need(&caller)?).await,
        "Subscribe" => subscriptions::subscribe(&ctx, need(&caller)?).await,
        "ConfirmSubscription" => subscriptions::confirm(&ctx, caller.as_ref()).await,
        "Unsubscribe" => subscriptions::unsubscribe(&ctx, caller.as_ref()).await,
        "ListSubscriptions" => subscriptions::list(&ctx, need(&caller)?, false).await,
        "ListSubscriptionsByTopic" => subscriptions::list(&ctx, need(&caller)?, true).await,
        "GetSubscriptionAttributes" => subscriptions::get_attributes(&ctx, need(&caller)?).await,
        "SetSubscriptionAttributes" => subscriptions::set_attributes(&ctx, need(&caller)?).await,
        "Publish" => publish::publish(&ctx, need(&caller)?).await,
        "PublishBatch" => publish::publish_batch(&ctx, need(&caller)?).await,
        other => Err(SnsError::invalid_action(other)),
    }
}

/// The caller of an action that needs one (all but the links, which always have one).
fn need(c: &Option<Caller>) -> SnsResult<&Caller> {
    c.as_ref()
        .ok_or_else(|| SnsError::internal("An unsigned request reached a signed action."))
}

fn auth_error(e: crate::auth::AuthError) -> SnsError {
    let (code, status) = match e.kind {
        AuthFailure::MissingToken => ("MissingAuthenticationToken", StatusCode::FORBIDDEN),
        AuthFailure::Malformed => ("IncompleteSignature", StatusCode::BAD_REQUEST),
        AuthFailure::UnknownKey => ("InvalidClientTokenId", StatusCode::FORBIDDEN),
        AuthFailure::BadSignature => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN),
    };
    SnsError::auth(code, status, e.message)
}

/// What every action gets.
pub(crate) struct Ctx<'a> {
    pub state: &'a Arc<AppState>,
    pub request_id: &'a str,
    pub params: &'a Params,
}

impl Ctx<'_> {
    /// The answer to this action.
    pub fn respond(&self, result: Option<Vec<wire::Xml>>) -> SnsResult<Response> {
        let action = self.params.get("Action").unwrap_or_default();
        Ok(wire::respond(action, result, self.request_id))
    }
}

/// Parses a topic ARN (`arn:aws:sns:<region>:<account>:<name>`), with SNS's messages.
pub(crate) fn parse_topic_arn(member: &str, arn: &str) -> SnsResult<TopicKey> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 6 {
        return Err(SnsError::invalid_parameter(format!(
            "{member} Reason: An ARN must have at least 6 elements, not {}",
            parts.len()
        )));
    }
    let bad =
        || SnsError::invalid_parameter(format!("{member} Reason: {arn} is not a valid topic ARN"));
    if parts.len() != 6 || parts[0] != "arn" || !parts[1].starts_with("aws") || parts[2] != "sns" {
        return Err(bad());
    }
    let region = Region::parse(parts[3]).map_err(|_| bad())?;
    let account = AccountId::parse(parts[4]).map_err(|_| bad())?;
    if !topics::valid_name(parts[5]) {
        return Err(bad());
    }
    Ok(TopicKey {
        account,
        region,
        name: parts[5].to_owned(),
    })
}

/// `Topic does not exist`.
pub(crate) fn no_topic() -> SnsError {
    SnsError::not_found("Topic does not exist")
}

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> SnsResult<T> + Send + 'static,
) -> SnsResult<T> {
    crate::blocking(f).await
}

/// A topic the caller may act on with `action`: its own, or one whose policy lets it.
pub(crate) async fn topic_for(
    ctx: &Ctx<'_>,
    caller: &Caller,
    arn: &str,
    action: &str,
) -> SnsResult<lamina_store::TopicRecord> {
    let key = parse_topic_arn("TopicArn", arn)?;
    if key.region != caller.region {
        return Err(SnsError::invalid_parameter("TopicArn"));
    }
    let store = ctx.state.store.clone();
    let k = key.clone();
    let topic = blocking(move || Ok(store.topic(&k)?))
        .await?
        .ok_or_else(no_topic)?;
    if key.account != caller.account
        && !topic_policy::allows(&topic, action, caller.account.as_str())
    {
        return Err(not_authorized(caller, action, arn));
    }
    Ok(topic)
}

/// SNS's refusal of `action` on the topic `arn` to `caller`.
pub(crate) fn not_authorized(caller: &Caller, action: &str, arn: &str) -> SnsError {
    SnsError::authorization(format!(
        "User: arn:aws:iam::{}:root is not authorized to perform: SNS:{action} on resource: {arn}",
        caller.account
    ))
}
