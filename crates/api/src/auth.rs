//! Who is calling: SigV4 credentials select the account and region; verification is optional.
//!
//! The middleware buffers the body (bounded), checks the signature when verification is on, and
//! attaches a [`Caller`] to the request. With verification off, any access key is accepted: known
//! keys map to their account, unknown keys and unsigned requests to the default account.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lamina_model::{AccountId, ErrorKind, LambdaError, Region};
use time::OffsetDateTime;

use crate::AppState;
use crate::error::ApiError;
use crate::sigv4::{self, Authorization, SignedRequest};

/// One access key and the account it belongs to.
#[derive(Debug, Clone)]
pub struct AccessKey {
    /// The secret that signs requests.
    pub secret_access_key: String,
    /// The account this key acts for.
    pub account: AccountId,
}

/// How callers are identified.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Reject requests whose signature does not verify.
    pub verify: bool,
    /// Known access keys by id.
    pub keys: HashMap<String, AccessKey>,
    /// The account of unsigned requests and, without verification, of unknown keys.
    pub default_account: AccountId,
    /// The region of unsigned requests.
    pub default_region: Region,
    /// Allowed clock skew, seconds.
    pub max_skew_s: i64,
}

/// The account and region a request acts in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account whose resources the request sees.
    pub account: AccountId,
    /// The region from the signature's credential scope.
    pub region: Region,
}

fn denied(kind: ErrorKind, msg: impl Into<String>) -> ApiError {
    LambdaError::new(kind, msg).into()
}

/// Buffers the body, authenticates, and passes `Caller` and the body on.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let limit = state.limits.request_max_bytes as usize;
    if let Some(len) = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > limit as u64
    {
        // Read and discard what the client is still sending (up to twice the limit), so that it
        // sees the 413 rather than a connection reset in the middle of its upload.
        if len <= 2 * limit as u64 {
            use futures_util::StreamExt;
            let mut chunks = body.into_data_stream();
            while let Some(Ok(_)) = chunks.next().await {}
        }
        return too_large(limit, &parts).into_response();
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large(limit, &parts).into_response(),
    };
    let caller = match identify(&state.auth, &parts, &bytes) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(limit: usize, parts: &axum::http::request::Parts) -> ApiError {
    let path = parts.uri.path();
    let op = if path.ends_with("/invocations") {
        "InvokeFunction"
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

fn identify(
    auth: &AuthConfig,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        if auth.verify {
            return Err(denied(
                ErrorKind::MissingAuthenticationToken,
                "Missing Authentication Token",
            ));
        }
        return Ok(Caller {
            account: auth.default_account.clone(),
            region: auth.default_region.clone(),
        });
    };
    let Some(sig) = Authorization::parse(header) else {
        return Err(denied(
            ErrorKind::InvalidSignature,
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters in AWS4-HMAC-SHA256 form.",
        ));
    };
    let region =
        Region::parse(&sig.region).map_err(|e| denied(ErrorKind::InvalidSignature, e.message))?;
    let key = auth.keys.get(&sig.access_key_id);
    if !auth.verify {
        let account = key.map_or_else(|| auth.default_account.clone(), |k| k.account.clone());
        return Ok(Caller { account, region });
    }
    let Some(key) = key else {
        return Err(denied(
            ErrorKind::UnrecognizedClient,
            "The security token included in the request is invalid.",
        ));
    };
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            denied(
                ErrorKind::InvalidSignature,
                "The request must contain an X-Amz-Date header.",
            )
        })?;
    check_skew(amz_date, auth.max_skew_s)?;
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let payload_hash = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "UNSIGNED-PAYLOAD")
        .map(str::to_owned)
        .unwrap_or_else(|| sigv4::sha256_hex(body));
    let req = SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let canonical = sigv4::canonical_request(&req, &sig.signed_headers);
    let expected = sigv4::signature(
        &key.secret_access_key,
        amz_date,
        &sig.date,
        &sig.region,
        &sig.service,
        &canonical,
    );
    if !sigv4::signatures_match(&expected, &sig.signature) {
        return Err(denied(
            ErrorKind::InvalidSignature,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(Caller {
        account: key.account.clone(),
        region,
    })
}

fn check_skew(amz_date: &str, max_skew_s: i64) -> Result<(), ApiError> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(amz_date, &fmt)
        .map_err(|_| {
            denied(
                ErrorKind::InvalidSignature,
                format!("X-Amz-Date '{amz_date}' is not in yyyyMMddTHHmmssZ form."),
            )
        })?
        .assume_utc();
    let now = OffsetDateTime::now_utc();
    if (now - t).whole_seconds().abs() > max_skew_s {
        return Err(denied(
            ErrorKind::InvalidSignature,
            format!(
                "Signature expired: {amz_date} is outside the allowed clock skew of {max_skew_s} s from the server time. Check the client's clock."
            ),
        ));
    }
    Ok(())
}
