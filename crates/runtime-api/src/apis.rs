//! Lamina's own APIs as a function reaches them: through its Runtime API listener, with
//! credentials minted for its environment.
//!
//! Every environment gets an access key, a secret and a session token of its own, in the
//! variables Lambda sets for a function's role (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), and the endpoints of the services Lamina speaks
//! (`AWS_ENDPOINT_URL_<SERVICE>`, which the AWS SDKs and the CLI read) point at its listener,
//! the one address of Lamina's it reaches. A request there that is not the Runtime API's goes
//! to the [`Gateway`] the server sets, with the environment's [`Credentials`] attached: the
//! server serves it only when it is signed with them, and acts as the function's account. The
//! credentials are good nowhere else, and end with the environment, whose listener goes with it.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest request body a function may send to Lamina's APIs: Invoke's 6 MB payload with
/// room to spare. A larger one (a `CreateFunction` with its zip inline) comes from outside. The
/// services take no more (Lambda's limit is lowered to it); the door reads up to twice as much,
/// for a service to drain what it refuses.
pub const MAX_API_BODY: usize = 8 * 1024 * 1024;
/// API requests one environment may have in flight at once, each until its response's body has
/// been sent or dropped; more are answered `429` at once.
pub const API_CALLS_AT_ONCE: usize = 8;

/// The services whose endpoints a function's SDK finds in its environment, as SDKs name their
/// variables (`AWS_ENDPOINT_URL_` and the service id, upper case, spaces as underscores).
const SERVICES: &[&str] = &[
    "LAMBDA",
    "SNS",
    "CLOUDWATCH_LOGS",
    "ECR",
    "EC2",
    "APIGATEWAYV2",
];

/// One environment's credentials for Lamina's APIs.
pub struct Credentials {
    /// `ASIA` and 16 characters, as AWS's temporary keys.
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// The account of the environment's function: the only one its requests act for.
    pub account: Arc<str>,
}

impl std::fmt::Debug for Credentials {
    /// The key's id and account; never its secret or token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Fresh credentials for an environment of `account`'s, from the kernel's random source.
    pub(crate) fn mint(account: Arc<str>) -> std::io::Result<Self> {
        use base64::Engine as _;
        let mut random = [0u8; 16 + 30 + 96];
        let mut filled = 0;
        while filled < random.len() {
            filled += rustix::rand::getrandom(
                &mut random[filled..],
                rustix::rand::GetRandomFlags::empty(),
            )?;
        }
        let (id, rest) = random.split_at(16);
        let (secret, token) = rest.split_at(30);
        const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Self {
            access_key_id: "ASIA"
                .chars()
                .chain(id.iter().map(|b| BASE32[usize::from(b % 32)] as char))
                .collect(),
            secret_access_key: b64.encode(secret),
            session_token: b64.encode(token),
            account,
        })
    }

    /// The variables a function finds them in, with the services' endpoints at `runtime_api`
    /// (`host:port`). A function's own endpoint variables are kept: they name where its SDK
    /// goes.
    pub(crate) fn set_in(
        &self,
        env: &mut std::collections::BTreeMap<String, String>,
        runtime_api: &str,
    ) {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", &self.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_access_key),
            ("AWS_SESSION_TOKEN", &self.session_token),
        ] {
            env.insert(k.to_owned(), v.clone());
        }
        // A function's own `AWS_ENDPOINT_URL` names where all its SDK's calls go.
        if env.contains_key("AWS_ENDPOINT_URL") {
            return;
        }
        for service in SERVICES {
            env.entry(format!("AWS_ENDPOINT_URL_{service}"))
                .or_insert_with(|| format!("http://{runtime_api}"));
        }
    }
}

/// How many invocations led to the one whose function made a request (see
/// [`crate::Invocation::hops`]), attached to the request beside its [`Credentials`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage(pub u32);

/// A response body of any kind the APIs answer with.
pub type ApiBody = UnsyncBoxBody<Bytes, Box<dyn Error + Send + Sync>>;

/// A request a function made to Lamina's APIs, its body bounded by [`MAX_API_BODY`].
pub type ApiRequest = hyper::Request<Limited<Incoming>>;

/// Serves a function's requests to Lamina's APIs (set by the server, see
/// [`crate::Executor::serve_apis`]).
pub trait Gateway: Send + Sync + 'static {
    /// Answers `req`, which came from the environment `from` was minted for.
    fn serve(
        &self,
        req: ApiRequest,
        from: Arc<Credentials>,
    ) -> Pin<Box<dyn Future<Output = hyper::Response<ApiBody>> + Send>>;
}

/// How an environment's requests to Lamina's APIs go out: as its credentials, a few at a time.
pub(crate) struct Door {
    creds: Arc<Credentials>,
    gateway: Option<Arc<dyn Gateway>>,
    turns: Arc<Semaphore>,
}

impl Door {
    pub(crate) fn new(creds: Arc<Credentials>, gateway: Option<Arc<dyn Gateway>>) -> Self {
        Self {
            creds,
            gateway,
            turns: Arc::new(Semaphore::new(API_CALLS_AT_ONCE)),
        }
    }

    /// Answers a request through the gateway (`404` without one; `429` when the environment
    /// has [`API_CALLS_AT_ONCE`] in flight: a request waiting would hold a connection the
    /// runtime may need). The answer closes its connection, so that an SDK's idle ones never
    /// take the runtime's places.
    pub(crate) async fn serve(
        &self,
        mut req: hyper::Request<Incoming>,
        hops: u32,
    ) -> hyper::Response<ApiBody> {
        let mut resp = match (&self.gateway, self.turns.clone().try_acquire_owned()) {
            (None, _) => plain(hyper::StatusCode::NOT_FOUND, &[], Bytes::new()),
            (Some(_), Err(_)) => plain(
                hyper::StatusCode::TOO_MANY_REQUESTS,
                &[("x-amzn-errortype", "TooManyRequestsException")],
                Bytes::from(format!(
                    r#"{{"message":"A function may have at most {API_CALLS_AT_ONCE} requests to Lamina's APIs in flight at once; retry when one has ended."}}"#
                )),
            ),
            (Some(gateway), Ok(turn)) => {
                // Read up to twice the services' limit, so that a service can drain a body it
                // refuses and answer, rather than reset the connection under the client.
                req.extensions_mut().insert(Lineage(hops));
                let req = req.map(|body| Limited::new(body, 2 * MAX_API_BODY));
                let resp = gateway.serve(req, self.creds.clone()).await;
                resp.map(|body| Turned { body, _turn: turn }.boxed_unsync())
            }
        };
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        resp
    }
}

/// An answer of the door's own.
fn plain(
    status: hyper::StatusCode,
    headers: &[(&'static str, &'static str)],
    body: Bytes,
) -> hyper::Response<ApiBody> {
    let json = !body.is_empty();
    let mut resp = hyper::Response::new(Full::new(body).map_err(Into::into).boxed_unsync());
    *resp.status_mut() = status;
    for (name, value) in headers {
        resp.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    if json {
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

/// A response's body holding its request's turn until it has been sent or dropped.
struct Turned {
    body: ApiBody,
    _turn: OwnedSemaphorePermit,
}

impl Body for Turned {
    type Data = Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_look_like_aws_temporary_ones_and_differ_each_time() {
        let a = Credentials::mint("111111111111".into()).unwrap();
        let b = Credentials::mint("111111111111".into()).unwrap();
        assert_eq!(a.access_key_id.len(), 20);
        assert!(a.access_key_id.starts_with("ASIA"));
        assert!(
            a.access_key_id
                .bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(a.secret_access_key.len(), 40);
        assert_eq!(a.session_token.len(), 128);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret_access_key, b.secret_access_key);
        assert_ne!(a.session_token, b.session_token);
        let shown = format!("{a:?}");
        assert!(!shown.contains(&a.secret_access_key) && !shown.contains(&a.session_token));
    }

    #[test]
    fn a_functions_own_endpoint_is_kept_and_its_keys_are_not() {
        let c = Credentials::mint("111111111111".into()).unwrap();
        let mut env = std::collections::BTreeMap::from([
            (
                "AWS_ENDPOINT_URL_SNS".to_owned(),
                "http://elsewhere".to_owned(),
            ),
            ("AWS_ACCESS_KEY_ID".to_owned(), "AKIDMINE".to_owned()),
        ]);
        c.set_in(&mut env, "127.0.0.1:9001");
        assert_eq!(env["AWS_ENDPOINT_URL_SNS"], "http://elsewhere");
        assert_eq!(env["AWS_ENDPOINT_URL_LAMBDA"], "http://127.0.0.1:9001");
        assert_eq!(
            env["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"],
            "http://127.0.0.1:9001"
        );
        assert_eq!(env["AWS_ACCESS_KEY_ID"], c.access_key_id);
        assert_eq!(env["AWS_SESSION_TOKEN"], c.session_token);
    }

    #[test]
    fn a_functions_own_endpoint_for_every_service_is_kept_for_every_service() {
        let c = Credentials::mint("111111111111".into()).unwrap();
        let mut env = std::collections::BTreeMap::from([(
            "AWS_ENDPOINT_URL".to_owned(),
            "http://elsewhere".to_owned(),
        )]);
        c.set_in(&mut env, "127.0.0.1:9001");
        assert!(!env.keys().any(|k| k.starts_with("AWS_ENDPOINT_URL_")));
        assert_eq!(env["AWS_ACCESS_KEY_ID"], c.access_key_id);
    }
}
