//! The web console at `/console`: a page and its scripts, embedded in the binary, that read and
//! drive the account through the same APIs every client uses (Lambda's, and the server's metric
//! history, bill and logs), plus the sign-in that lets a browser make those calls without
//! signing them ([`session`]).
//!
//! The assets are plain HTML, CSS and JavaScript modules: nothing to build, nothing fetched from
//! elsewhere. They are served with a strict content security policy (scripts of this origin
//! only, no inline code, no framing) and an `ETag`, so a reload costs a 304.

pub mod session;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lamina_model::Region;
use serde_json::json;

use crate::AppState;
pub use session::Sessions;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// `/console/<file>`, from `assets/<file>`.
macro_rules! asset {
    ($file:literal, $content_type:expr) => {
        Asset {
            path: concat!("/console/", $file),
            content_type: $content_type,
            body: include_str!(concat!("assets/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("ui.js", JS),
    asset!("function.js", JS),
    asset!("chart.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

const INDEX: &str = include_str!("assets/index.html");
const INDEX_PAGE: Asset = Asset {
    path: "/console",
    content_type: "text/html; charset=utf-8",
    body: INDEX,
};

/// What the browser may do with the console's pages.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The ETag of every asset: one hash of them all, as they change together.
static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    let mut all = String::from(INDEX);
    for a in ASSETS {
        all.push_str(a.body);
    }
    HeaderValue::from_str(&format!(
        "\"{}\"",
        &crate::sigv4::sha256_hex(all.as_bytes())[..32]
    ))
    .expect("hex is a valid header value")
});

/// The console's routes; `lambda` is the Lambda API's router, which `/console/maybe/` reads.
pub fn router(state: Arc<AppState>, lambda: Router) -> Router {
    let mut r = Router::new()
        .route(
            "/console/maybe/{*path}",
            get(move |req: Request| maybe(lambda.clone(), req)),
        )
        .route(
            "/console",
            get(|h: HeaderMap| async move { asset(&INDEX_PAGE, &h) }),
        )
        .route(
            "/console/",
            get(|h: HeaderMap| async move { asset(&INDEX_PAGE, &h) }),
        )
        .route(
            "/console/session",
            get(whoami).post(sign_in).delete(sign_out),
        );
    for a in ASSETS {
        r = r.route(a.path, get(move |h: HeaderMap| async move { asset(a, &h) }));
    }
    r.with_state(state)
}

fn secure(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    resp.headers_mut().insert(header::ETAG, ETAG.clone());
    secure(&mut resp);
    resp
}

fn asset(a: &'static Asset, headers: &HeaderMap) -> Response {
    if headers.get(header::IF_NONE_MATCH) == Some(&*ETAG) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(header::ETAG, ETAG.clone());
        return resp;
    }
    page(a.body, a.content_type)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn cookie(token: &str, max_age_s: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}",
        session::COOKIE
    ))
    .expect("tokens are hex")
}

/// `GET /console/maybe/{path}`: the Lambda API's `GET /{path}`, with "no such resource"
/// answered as a 200 `null`. For reads where absence is the common case (a function's resource
/// policy), which the browser would otherwise report as a failed load.
async fn maybe(lambda: Router, req: Request) -> Response {
    use tower::ServiceExt;
    let (mut parts, body) = req.into_parts();
    let Some(rest) = parts
        .uri
        .path_and_query()
        .and_then(|p| p.as_str().strip_prefix("/console/maybe"))
    else {
        return answer(StatusCode::NOT_FOUND, json!({"message": "No such path."}));
    };
    let Ok(uri) = rest.parse() else {
        return answer(StatusCode::BAD_REQUEST, json!({"message": "Not a path."}));
    };
    parts.uri = uri;
    // This route's own path parameters must not reach the Lambda router's extractors.
    parts.extensions = axum::http::Extensions::new();
    let resp = lambda
        .oneshot(Request::from_parts(parts, body))
        .await
        .into_response();
    let missing = resp.status() == StatusCode::NOT_FOUND
        && resp
            .headers()
            .get("x-amzn-errortype")
            .is_some_and(|t| t.as_bytes().starts_with(b"ResourceNotFoundException"));
    if missing {
        return answer(StatusCode::OK, serde_json::Value::Null);
    }
    resp
}

/// `GET /console/session`: whom the console acts for, and whether it must sign in first.
async fn whoami(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let auth = &state.auth;
    let body = match auth.sessions.presented(&parts) {
        session::Presented::Valid(s) => json!({
            "signedIn": true,
            "verify": auth.verify,
            "account": s.account.as_str(),
            "region": s.region.as_str(),
            "accessKeyId": s.access_key_id,
        }),
        _ => json!({
            "signedIn": !auth.verify,
            "verify": auth.verify,
            "account": if auth.verify { None } else { Some(auth.default_account.as_str()) },
            "region": auth.default_region.as_str(),
        }),
    };
    answer(StatusCode::OK, body)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignIn {
    access_key_id: String,
    secret_access_key: String,
    region: Option<String>,
}

/// `POST /console/session`: signs in with an access key and its secret.
async fn sign_in(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.headers.get(session::HEADER).is_none() {
        return answer(
            StatusCode::FORBIDDEN,
            json!({"message": format!("Sign-in requests carry the {} header.", session::HEADER)}),
        );
    }
    let Some(bytes) = crate::auth::read_body(&parts, Body::new(body), 4096).await else {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"message": "The sign-in request is too large."}),
        );
    };
    let Ok(form) = serde_json::from_slice::<SignIn>(&bytes) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"message": "Give accessKeyId and secretAccessKey as JSON."}),
        );
    };
    let auth = &state.auth;
    let region = match form.region.as_deref().filter(|r| !r.is_empty()) {
        None => auth.default_region.clone(),
        Some(r) => match Region::parse(r) {
            Ok(r) => r,
            Err(e) => return answer(StatusCode::BAD_REQUEST, json!({"message": e.message})),
        },
    };
    let key = auth
        .keys
        .get(&form.access_key_id)
        .filter(|k| crate::sigv4::signatures_match(&k.secret_access_key, &form.secret_access_key));
    let Some(key) = key else {
        // Never the whole field: it may be a secret typed into the wrong box.
        let shown: String = form.access_key_id.chars().take(4).collect();
        tracing::info!(access_key_id_starts = %shown, "console sign-in refused");
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "The access key or its secret is not right."}),
        );
    };
    // A session the browser had is replaced, not left to run out.
    for old in Sessions::tokens_of(&parts) {
        auth.sessions.close(old);
    }
    let (token, csrf) = auth
        .sessions
        .open(key.account.clone(), region.clone(), form.access_key_id);
    let mut resp = answer(
        StatusCode::OK,
        json!({"signedIn": true, "verify": auth.verify, "account": key.account.as_str(), "region": region.as_str(), "csrf": csrf}),
    );
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&token, session::LIFETIME.as_secs()),
    );
    resp
}

/// `DELETE /console/session`: signs out.
async fn sign_out(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if let session::Presented::Valid(_) = state.auth.sessions.presented(&parts) {
        for token in Sessions::tokens_of(&parts) {
            state.auth.sessions.close(token);
        }
    }
    let mut resp = answer(StatusCode::OK, json!({"signedIn": false}));
    resp.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    resp
}
