//! Functions over HTTP: the data plane of function URLs ([`urls`]) and HTTP APIs ([`api`]).
//! Their requests are unsigned (or signed for the function, not for a service) and are told
//! apart by host, `<url-id>.lambda-url.<region>.<domain>` and `<api-id>.execute-api.<domain>`,
//! or by a path-style prefix that needs no DNS: `/_aws/lambda-url/<url-id>/…` and
//! `/_aws/execute-api/<api-id>/…`.
//!
//! Their configuration is owned by the Lambda API (function URLs) and the API Gateway API
//! ([`crate::apigw`]); this module keeps read caches of it, dropped by those on every change.

pub(crate) mod api;
pub(crate) mod authorizer;
pub mod cors;
pub(crate) mod event;
pub mod jwt;
pub(crate) mod routes;
mod stream;
mod urls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lamina_store::FunctionUrl;

use crate::AppState;
use crate::apigw::doc::ApiDoc;

/// The largest request body a gateway reads: a synchronous invocation's payload limit (6 MB;
/// HTTP APIs' own quota, 10 MB, is above what Lambda takes).
pub const MAX_BODY: usize = crate::lambda::MAX_SYNC_PAYLOAD;

/// The gateways' share of the server state.
pub struct HttpState {
    /// `http` or `https`.
    scheme: String,
    /// The domain under which URLs are named (`localhost` for a loopback server).
    domain: String,
    /// `:<port>`, or empty for the scheme's default.
    port: String,
    /// The server's base URL, for path-style URLs.
    base: String,
    urls: ReadCache<FunctionUrl>,
    apis: ReadCache<ApiDoc>,
    pub(crate) authorizers: Mutex<authorizer::Cache>,
    /// Keys of JWT issuers.
    pub(crate) jwks: jwt::Jwks,
    /// Serialises changes to HTTP APIs (each is read, changed and written whole).
    pub(crate) writes: tokio::sync::Mutex<()>,
}

impl HttpState {
    /// Names URLs after `public_url`, the server's base URL: a server on an IP address or
    /// `localhost` gets `*.localhost` names, which curl and browsers resolve to loopback. JWT
    /// authorizers take their issuers' keys from `jwks`.
    pub fn new(public_url: &str, jwks: jwt::Jwks) -> Self {
        let parsed = url::Url::parse(public_url).ok();
        let scheme = parsed.as_ref().map_or("http", |u| u.scheme()).to_owned();
        let domain = match parsed.as_ref().and_then(|u| u.host()) {
            Some(url::Host::Domain(d)) if d != "localhost" => d.to_owned(),
            _ => "localhost".to_owned(),
        };
        let port = parsed
            .as_ref()
            .and_then(|u| u.port())
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        Self {
            scheme,
            domain,
            port,
            base: public_url.trim_end_matches('/').to_owned(),
            urls: ReadCache::default(),
            apis: ReadCache::default(),
            authorizers: Mutex::new(authorizer::Cache::default()),
            jwks,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// The URL of a function URL configuration.
    pub fn function_url(&self, url_id: &str, region: &str) -> String {
        format!(
            "{}://{url_id}.lambda-url.{region}.{}{}/",
            self.scheme, self.domain, self.port
        )
    }

    /// The path-style form of a function URL, for hosts without `*.localhost` resolution.
    pub fn function_url_path_style(&self, url_id: &str) -> String {
        format!("{}/_aws/lambda-url/{url_id}/", self.base)
    }

    /// The endpoint of an HTTP API.
    pub fn api_endpoint(&self, api_id: &str) -> String {
        format!(
            "{}://{api_id}.execute-api.{}{}",
            self.scheme, self.domain, self.port
        )
    }

    /// The path-style form of an HTTP API's endpoint.
    pub fn api_endpoint_path_style(&self, api_id: &str) -> String {
        format!("{}/_aws/execute-api/{api_id}", self.base)
    }

    /// Drops the cached configuration of a function URL.
    pub(crate) fn forget_url(&self, url_id: &str) {
        self.urls.forget(url_id);
    }

    /// Drops every cached function URL configuration (a function or alias went away).
    pub(crate) fn forget_urls(&self) {
        self.urls.forget_all();
    }

    /// Drops the cached document of an HTTP API and its authorizers' cached results.
    pub(crate) fn forget_api(&self, api_id: &str) {
        self.apis.forget(api_id);
        self.authorizers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget_api(api_id, None);
    }
}

/// The most configurations of one kind a cache holds (then it starts over).
const MAX_CACHED: usize = 10_000;
/// The most bytes of stored configurations of one kind a cache holds, as stored (then it starts
/// over): an API's document may be megabytes.
const MAX_CACHED_BYTES: usize = 32 << 20;

/// Entries by id, each with its size as stored, and the sum of those sizes.
type Sized<T> = (HashMap<String, (Arc<T>, usize)>, usize);

/// A read cache of configurations by id, filled from the store on a miss. Every change drops
/// entries and bumps a generation, so a copy read before a change is never kept after it.
pub(crate) struct ReadCache<T> {
    map: RwLock<Sized<T>>,
    generation: AtomicU64,
}

impl<T> Default for ReadCache<T> {
    fn default() -> Self {
        Self {
            map: RwLock::default(),
            generation: AtomicU64::new(0),
        }
    }
}

impl<T: Send + Sync + 'static> ReadCache<T> {
    /// The entry for `id`, or what `load` reads from the store (off the async threads) with
    /// its size as stored; `None` if there is none (or reading failed, which is logged).
    pub(crate) async fn get(
        &self,
        id: &str,
        load: impl FnOnce() -> Result<Option<(T, usize)>, String> + Send + 'static,
    ) -> Option<Arc<T>> {
        if let Some((hit, _)) = self.map.read().unwrap_or_else(|e| e.into_inner()).0.get(id) {
            return Some(hit.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = tokio::task::spawn_blocking(load)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .inspect_err(
                |e| tracing::error!(id, error = %e, "reading a gateway configuration failed"),
            )
            .ok()??;
        let (loaded, size) = (Arc::new(loaded.0), loaded.1);
        let mut guard = self.map.write().unwrap_or_else(|e| e.into_inner());
        let (map, bytes) = &mut *guard;
        if self.generation.load(Ordering::Acquire) == generation {
            if map.len() >= MAX_CACHED || *bytes + size > MAX_CACHED_BYTES {
                map.clear();
                *bytes = 0;
            }
            *bytes += size;
            if let Some((_, old)) = map.insert(id.to_owned(), (loaded.clone(), size)) {
                *bytes -= old;
            }
        }
        Some(loaded)
    }

    /// Drops the entry for `id` (after a change is committed).
    pub(crate) fn forget(&self, id: &str) {
        let mut guard = self.map.write().unwrap_or_else(|e| e.into_inner());
        let (map, bytes) = &mut *guard;
        if let Some((_, size)) = map.remove(id) {
            *bytes -= size;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every entry.
    pub(crate) fn forget_all(&self) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Default::default();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Which gateway a request is for, and the path it asks for there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A function URL.
    Url {
        /// The URL's id.
        id: String,
        /// The path asked for.
        path: String,
    },
    /// An HTTP API.
    Api {
        /// The API's id.
        id: String,
        /// The path asked for, stage included.
        path: String,
    },
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The gateway a request is for, by its host or its path-style prefix; `None` for the AWS APIs.
pub fn target_of(parts: &axum::http::request::Parts) -> Option<Target> {
    let path = parts.uri.path();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.host())
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let mut labels = host.split('.');
    if let (Some(id), Some(kind)) = (labels.next(), labels.next())
        && is_id(id)
    {
        // Only a gateway's request allocates: this runs before every request of the port.
        if kind.eq_ignore_ascii_case("lambda-url") {
            return Some(Target::Url {
                id: id.to_ascii_lowercase(),
                path: path.to_owned(),
            });
        }
        if kind.eq_ignore_ascii_case("execute-api") {
            return Some(Target::Api {
                id: id.to_ascii_lowercase(),
                path: path.to_owned(),
            });
        }
    }
    let split = |rest: &str| {
        let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
        is_id(id).then(|| (id.to_ascii_lowercase(), format!("/{path}")))
    };
    if let Some(rest) = path.strip_prefix("/_aws/lambda-url/") {
        let (id, path) = split(rest)?;
        return Some(Target::Url { id, path });
    }
    if let Some(rest) = path.strip_prefix("/_aws/execute-api/") {
        let (id, path) = split(rest)?;
        return Some(Target::Api { id, path });
    }
    None
}

/// The peer's address, as the gateway reports it (`sourceIp`).
fn source_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "127.0.0.1".to_owned(), |c| c.0.ip().to_string())
}

/// The largest request line plus headers (HTTP APIs' quota).
const MAX_HEAD: usize = 10_240;

fn head_size(parts: &axum::http::request::Parts) -> usize {
    let uri = &parts.uri;
    let line = parts.method.as_str().len()
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
        + 10;
    parts
        .headers
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// Reads a gateway request's body, within [`MAX_BODY`].
pub(crate) async fn read_body(body: Body) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())
}

/// Serves a request for a gateway.
pub async fn serve(state: Arc<AppState>, target: Target, req: Request) -> Response {
    let ip = source_ip(&req);
    let (parts, body) = req.into_parts();
    if head_size(&parts) > MAX_HEAD {
        return message(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "message",
            "Request Header Fields Too Large",
        );
    }
    match target {
        Target::Url { id, path } => urls::serve(&state, &id, &path, parts, body, &ip).await,
        Target::Api { id, path } => api::serve(&state, &id, &path, parts, body, &ip).await,
    }
}

/// A gateway's own JSON answer: `{"<key>":"<text>"}` (`message` for HTTP APIs, `Message` for
/// function URLs).
pub(crate) fn message(status: StatusCode, key: &str, text: &str) -> Response {
    let mut resp = Response::new(Body::from(serde_json::json!({ key: text }).to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// The event as the payload of an invoke, unless it is over Lambda's limit (a body near it
/// grows when escaped or base64-encoded): then `None`, and the gateway answers [`too_large`].
pub(crate) fn payload_of(event: &impl serde::Serialize) -> Option<axum::body::Bytes> {
    let payload = serde_json::to_vec(event).ok()?;
    (payload.len() <= crate::lambda::MAX_SYNC_PAYLOAD).then(|| payload.into())
}

/// The gateway's 413.
pub(crate) fn too_large() -> Response {
    message(
        StatusCode::PAYLOAD_TOO_LARGE,
        "message",
        "Request Entity Too Large",
    )
}

/// Adds what a load balancer in front of the function would: the client's address and the
/// scheme and port it used, and a trace id.
pub(crate) fn forwarded(headers: &HeaderMap, ip: &str, scheme: &str, port: &str) -> HeaderMap {
    let mut h = headers.clone();
    let put = |h: &mut HeaderMap, name: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip.to_owned(),
    };
    put(&mut h, "x-forwarded-for", &forwarded_for);
    put(&mut h, "x-forwarded-proto", scheme);
    let port = port.trim_start_matches(':');
    let port = if port.is_empty() {
        if scheme == "https" { "443" } else { "80" }
    } else {
        port
    };
    put(&mut h, "x-forwarded-port", port);
    if !h.contains_key("x-amzn-trace-id") {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let epoch = lamina_model::now_millis() / 1000;
        put(
            &mut h,
            "x-amzn-trace-id",
            &format!("Root=1-{epoch:08x}-{}", &id[..24]),
        );
    }
    h
}

/// `2xx`, `4xx` or `5xx`.
pub(crate) fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "2xx",
    }
}

/// A mapped function reply as a response.
pub(crate) fn reply(r: event::Reply) -> Response {
    let mut resp = (r.status, r.body).into_response();
    let h = resp.headers_mut();
    h.remove("content-type");
    h.extend(r.headers);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: &str, path: &str) -> axum::http::request::Parts {
        let (parts, ()) = axum::http::Request::builder()
            .uri(path)
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn targets_by_host_and_by_path() {
        let t = target_of(&parts(
            "abcdef0123456789abcdef0123456789.lambda-url.us-east-1.localhost:9001",
            "/x/y?a=1",
        ));
        assert_eq!(
            t,
            Some(Target::Url {
                id: "abcdef0123456789abcdef0123456789".into(),
                path: "/x/y".into()
            })
        );
        let t = target_of(&parts("a1b2c3.execute-api.localhost", "/dev/pets"));
        assert_eq!(
            t,
            Some(Target::Api {
                id: "a1b2c3".into(),
                path: "/dev/pets".into()
            })
        );
        let t = target_of(&parts(
            "127.0.0.1:9001",
            "/_aws/execute-api/a1b2c3/dev/pets",
        ));
        assert_eq!(
            t,
            Some(Target::Api {
                id: "a1b2c3".into(),
                path: "/dev/pets".into()
            })
        );
        let t = target_of(&parts("127.0.0.1:9001", "/_aws/lambda-url/abc"));
        assert_eq!(
            t,
            Some(Target::Url {
                id: "abc".into(),
                path: "/".into()
            })
        );
        assert_eq!(
            target_of(&parts("127.0.0.1:9001", "/2015-03-31/functions")),
            None
        );
        assert_eq!(target_of(&parts("lambda.us-east-1.localhost", "/")), None);
    }

    #[tokio::test]
    async fn a_copy_read_before_a_change_is_not_kept() {
        let cache: Arc<ReadCache<u32>> = Arc::default();
        let c = cache.clone();
        // The change lands (and is forgotten) while the old copy is being read.
        let got = cache
            .get("a", move || {
                c.forget("a");
                Ok(Some((1, 1)))
            })
            .await;
        assert_eq!(got.as_deref(), Some(&1));
        let again = cache.get("a", || Ok(Some((2, 1)))).await;
        assert_eq!(again.as_deref(), Some(&2), "the stale copy was cached");
        // Without a change, the first read is kept.
        assert_eq!(
            cache.get("a", || Ok(Some((3, 1)))).await.as_deref(),
            Some(&2)
        );
        cache.forget_all();
        assert_eq!(cache.get("a", || Ok(None)).await, None);
    }

    #[tokio::test]
    async fn the_cache_holds_a_bounded_size_of_configurations() {
        let cache: ReadCache<u32> = ReadCache::default();
        let big = MAX_CACHED_BYTES / 4;
        for i in 0..10 {
            let id = i.to_string();
            assert_eq!(
                cache.get(&id, move || Ok(Some((i, big)))).await.as_deref(),
                Some(&i)
            );
            let (map, bytes) = &*cache.map.read().unwrap();
            assert!(*bytes <= MAX_CACHED_BYTES, "{bytes}");
            assert_eq!(*bytes, map.len() * big);
        }
        cache.forget("9");
        assert_eq!(
            cache.map.read().unwrap().1,
            cache.map.read().unwrap().0.len() * big
        );
    }

    #[test]
    fn urls_are_named_after_the_public_url() {
        let s = HttpState::new("http://127.0.0.1:9001", jwt::Jwks::default());
        assert_eq!(
            s.function_url("abc", "us-east-1"),
            "http://abc.lambda-url.us-east-1.localhost:9001/"
        );
        assert_eq!(s.api_endpoint("a1"), "http://a1.execute-api.localhost:9001");
        assert_eq!(
            s.function_url_path_style("abc"),
            "http://127.0.0.1:9001/_aws/lambda-url/abc/"
        );
        let s = HttpState::new("https://lamina.example.com", jwt::Jwks::default());
        assert_eq!(
            s.function_url("abc", "eu-west-1"),
            "https://abc.lambda-url.eu-west-1.lamina.example.com/"
        );
    }
}
