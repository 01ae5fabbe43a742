//! Code downloads: the `Code.Location` URL of GetFunction.
//!
//! Like the presigned S3 URL Lambda returns, the URL carries an expiry and an HMAC over the
//! package hash and expiry, so it needs no credentials and is useless once expired or altered.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use lamina_model::{ErrorKind, LambdaError};
use sha2::Sha256;

use super::query::Query;
use super::{ApiError, AppState};

/// How long a download URL stays valid, seconds (Lambda's are valid for 10 minutes).
const VALID_S: i64 = 600;

fn mac(key: &[u8; 32], sha256_hex: &str, expires: i64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(format!("{sha256_hex}:{expires}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A signed download URL for a package, on the host the client used.
pub fn location(state: &AppState, host: &str, sha256_hex: &str) -> String {
    let expires = lamina_model::now_millis() / 1000 + VALID_S;
    let sig = mac(&state.url_key, sha256_hex, expires);
    format!("http://{host}/_lamina/code/{sha256_hex}.zip?expires={expires}&signature={sig}")
}

fn forbidden() -> ApiError {
    LambdaError::new(
        ErrorKind::AccessDenied,
        "The download URL is invalid or has expired. Call GetFunction for a new one.",
    )
    .into()
}

/// `GET /_lamina/code/<sha256>.zip?expires=..&signature=..`.
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let sha = file.strip_suffix(".zip").ok_or_else(forbidden)?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(forbidden());
    }
    let expires: i64 = q
        .get("expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(forbidden)?;
    let given = q.get("signature").ok_or_else(forbidden)?;
    if !super::sigv4::signatures_match(&mac(&state.url_key, sha, expires), given)
        || expires < lamina_model::now_millis() / 1000
    {
        return Err(forbidden());
    }
    let path = state.store.code().zip_path(sha);
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        ApiError::from(LambdaError::not_found("The code package no longer exists."))
    })?;
    let mut resp = Body::from(bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    Ok(resp)
}
