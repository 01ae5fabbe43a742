//! Who is calling: SigV4 credentials select the account and region; verification is optional.
//!
//! Shared by every service: each reads the body (bounded, [`read_body`]), then [`identify`]
//! checks the signature when verification is on and names the [`Caller`]; failures come back
//! typed ([`AuthError`]) for the service to word in its own protocol. With verification off, any
//! access key is accepted: known keys map to their account, unknown keys and unsigned requests
//! to the default account. The web console's requests carry no signature but a session
//! ([`crate::console::session`]), which stands for the access key that signed in. A function's
//! requests from its sandbox ([`crate::from_functions`]) carry its environment's credentials,
//! which alone identify them, verification on or off.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use lamina_model::{AccountId, Region};
use time::OffsetDateTime;

use lamina_runtime_api::apis::{Credentials, Lineage};

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
    /// The web console's signed-in sessions.
    pub sessions: std::sync::Arc<crate::console::Sessions>,
}

/// The account and region a request acts in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account whose resources the request sees.
    pub account: AccountId,
    /// The region from the signature's credential scope.
    pub region: Region,
    /// For a function's request, the hops of the invocation it came from (see
    /// `lamina_runtime_api::Invocation::hops`); what it invokes or publishes carries them on.
    pub lineage: Option<u32>,
}

impl Caller {
    /// The hops of an invocation this request starts: one more than its function's
    /// invocation's, or none from outside.
    pub fn invocation_hops(&self) -> u32 {
        self.lineage.map_or(0, |h| h.saturating_add(1))
    }
}

/// Why a request was not authenticated; each service words it in its own protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header while verification is on.
    MissingToken,
    /// A malformed header, credential scope or date.
    Malformed,
    /// An access key this server does not know.
    UnknownKey,
    /// The signature does not verify, or its date is outside the allowed skew.
    BadSignature,
}

/// An authentication failure and its message.
#[derive(Debug, Clone)]
pub struct AuthError {
    /// What failed.
    pub kind: AuthFailure,
    /// The message for the client.
    pub message: String,
}

fn denied(kind: AuthFailure, msg: impl Into<String>) -> AuthError {
    AuthError {
        kind,
        message: msg.into(),
    }
}

/// Reads a request's body up to `limit` bytes; `None` if it is larger. A declared length over
/// the limit is drained (up to twice the limit) so that the client sees the answer rather than
/// a connection reset in the middle of its upload.
pub async fn read_body(
    parts: &axum::http::request::Parts,
    body: Body,
    limit: usize,
) -> Option<Bytes> {
    if let Some(len) = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > limit as u64
    {
        if len <= 2 * limit as u64 {
            use futures_util::StreamExt;
            let mut chunks = body.into_data_stream();
            while let Some(Ok(_)) = chunks.next().await {}
        }
        return None;
    }
    axum::body::to_bytes(body, limit).await.ok()
}

/// What the head of a request alone shows will be refused, verification being on (or the
/// request a function's): no
/// credentials, a malformed header, an unknown key. Checked before a large body is read, so that
/// nobody unknown makes the server hold one.
pub fn refused_by_head(auth: &AuthConfig, parts: &axum::http::request::Parts) -> Option<AuthError> {
    // A function's requests are checked whatever `verify` says (see `identify`).
    if !auth.verify && function_credentials(parts).is_none() {
        return None;
    }
    // With no body the signature cannot verify: only what fails before it counts.
    identify(auth, parts, &Bytes::new())
        .err()
        .filter(|e| e.kind != AuthFailure::BadSignature)
}

/// The credentials of the environment a function's request came from
/// ([`crate::from_functions`]); `None` for every other request.
pub(crate) fn function_credentials(parts: &axum::http::request::Parts) -> Option<&Credentials> {
    parts.extensions.get::<Arc<Credentials>>().map(Arc::as_ref)
}

/// Identifies the caller of a request whose body has been read.
pub fn identify(
    auth: &AuthConfig,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<Caller, AuthError> {
    let own = function_credentials(parts);
    let header = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        // A function's requests count only signed with its credentials.
        if own.is_none() {
            match auth.sessions.presented(parts) {
                crate::console::session::Presented::Valid(s) => {
                    return Ok(Caller {
                        account: s.account,
                        region: s.region,
                        lineage: None,
                    });
                }
                crate::console::session::Presented::Invalid if auth.verify => {
                    return Err(denied(
                        AuthFailure::MissingToken,
                        "The console session has ended; sign in again.",
                    ));
                }
                _ => {}
            }
            if !auth.verify {
                return Ok(Caller {
                    account: auth.default_account.clone(),
                    region: auth.default_region.clone(),
                    lineage: None,
                });
            }
        }
        return Err(denied(
            AuthFailure::MissingToken,
            "Missing Authentication Token",
        ));
    };
    let Some(sig) = Authorization::parse(header) else {
        return Err(denied(
            AuthFailure::Malformed,
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters in AWS4-HMAC-SHA256 form.",
        ));
    };
    let region =
        Region::parse(&sig.region).map_err(|e| denied(AuthFailure::Malformed, e.message))?;
    if let Some(own) = own {
        return identify_function(own, &sig, region, auth.max_skew_s, parts, body);
    }
    let key = auth.keys.get(&sig.access_key_id);
    if !auth.verify {
        let account = key.map_or_else(|| auth.default_account.clone(), |k| k.account.clone());
        return Ok(Caller {
            account,
            region,
            lineage: None,
        });
    }
    let Some(key) = key else {
        return Err(denied(
            AuthFailure::UnknownKey,
            "The security token included in the request is invalid.",
        ));
    };
    verify_signature(&key.secret_access_key, &sig, auth.max_skew_s, parts, body)?;
    Ok(Caller {
        account: key.account.clone(),
        region,
        lineage: None,
    })
}

/// Identifies a request a function made from its environment ([`lamina_runtime_api::apis`]),
/// whatever `auth.verify` says: it must be signed with the environment's own credentials, and
/// acts for the function's account alone. Console sessions and other keys count for nothing.
fn identify_function(
    own: &Credentials,
    sig: &Authorization,
    region: Region,
    max_skew_s: i64,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<Caller, AuthError> {
    let invalid = || {
        denied(
            AuthFailure::UnknownKey,
            "The security token included in the request is invalid.",
        )
    };
    let token = parts
        .headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sig.access_key_id != own.access_key_id || !sigv4::signatures_match(token, &own.session_token)
    {
        return Err(invalid());
    }
    verify_signature(&own.secret_access_key, sig, max_skew_s, parts, body)?;
    let account = AccountId::parse(&own.account).map_err(|_| invalid())?;
    let lineage = parts.extensions.get::<Lineage>().map_or(0, |l| l.0);
    Ok(Caller {
        account,
        region,
        lineage: Some(lineage),
    })
}

/// Checks a request's SigV4 signature (its date, scope and body hash too) against `secret`.
fn verify_signature(
    secret: &str,
    sig: &Authorization,
    max_skew_s: i64,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<(), AuthError> {
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            denied(
                AuthFailure::Malformed,
                "The request must contain an X-Amz-Date header.",
            )
        })?;
    check_skew(amz_date, max_skew_s)?;
    // The signing key is derived for the scope's day: it signs requests of that day only.
    if amz_date.get(..8) != Some(sig.date.as_str()) {
        return Err(denied(
            AuthFailure::BadSignature,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                sig.date,
                amz_date.get(..8).unwrap_or(amz_date)
            ),
        ));
    }
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
    // The signature covers the body's hash: a hash the client states must be the body's.
    let payload_hash = sigv4::sha256_hex(body);
    if let Some(stated) = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "UNSIGNED-PAYLOAD")
        && !stated.eq_ignore_ascii_case(&payload_hash)
    {
        return Err(denied(
            AuthFailure::BadSignature,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    let payload_hash = match parts.headers.get("x-amz-content-sha256") {
        Some(v) if v == "UNSIGNED-PAYLOAD" => "UNSIGNED-PAYLOAD".to_owned(),
        _ => payload_hash,
    };
    let req = SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let canonical = sigv4::canonical_request(&req, &sig.signed_headers);
    let expected = sigv4::signature(
        secret,
        amz_date,
        &sig.date,
        &sig.region,
        &sig.service,
        &canonical,
    );
    if !sigv4::signatures_match(&expected, &sig.signature) {
        return Err(denied(
            AuthFailure::BadSignature,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(())
}

fn check_skew(amz_date: &str, max_skew_s: i64) -> Result<(), AuthError> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(amz_date, &fmt)
        .map_err(|_| {
            denied(
                AuthFailure::Malformed,
                format!("X-Amz-Date '{amz_date}' is not in yyyyMMddTHHmmssZ form."),
            )
        })?
        .assume_utc();
    let now = OffsetDateTime::now_utc();
    if (now - t).whole_seconds().abs() > max_skew_s {
        return Err(denied(
            AuthFailure::BadSignature,
            format!(
                "Signature expired: {amz_date} is outside the allowed clock skew of {max_skew_s} s from the server time. Check the client's clock."
            ),
        ));
    }
    Ok(())
}

/// IAM's wildcards (`StringLike`, policy resources; `ArnLike` part by part through [`arn_like`]): `*` matches any run of
/// characters, `?` any one. Iterative, linear in practice (the last `*` is the only
/// backtracking point).
pub(crate) fn iam_like(pattern: &str, arn: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), arn.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == b'*')
}

/// IAM's `ArnLike`: each of the six colon-separated parts of an ARN matched on its own by
/// [`iam_like`], so that a wildcard never reaches across a colon into the next part (the sixth,
/// the resource, keeps any colons of its own). A pattern of stars alone matches any ARN.
pub(crate) fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern.bytes().all(|c| c == b'*') {
        return !pattern.is_empty();
    }
    let (mut p, mut a) = (pattern.splitn(6, ':'), arn.splitn(6, ':'));
    for _ in 0..6 {
        match (p.next(), a.next()) {
            (Some(p), Some(a)) if iam_like(p, a) => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_like_matches_each_part_on_its_own() {
        let own = "arn:aws:execute-api:*:111111111111:*";
        assert!(arn_like(
            own,
            "arn:aws:execute-api:us-east-1:111111111111:api/$default/GET/x"
        ));
        // Another account's route whose path spells this account: on AWS the account part is
        // 222222222222, which the pattern's does not match.
        let forged = "arn:aws:execute-api:us-east-1:222222222222:api/$default/GET/x:111111111111:y";
        assert!(iam_like(own, forged));
        assert!(!arn_like(own, forged));
        assert!(!arn_like(
            "arn:aws:execute-api:us-east-1:*:abc/*",
            "arn:aws:execute-api:us-east-1:2:x/GET/y:1:abc/z"
        ));
        // The resource keeps its colons, and its wildcards reach across them.
        let alias = "arn:aws:lambda:us-east-1:111111111111:function:f:live";
        assert!(arn_like("arn:aws:lambda:*:111111111111:function:*", alias));
        assert!(arn_like("*", alias));
        assert!(!arn_like("arn:aws:lambda:*:111111111111", alias));
        assert!(!arn_like("", alias));
    }

    #[test]
    fn iam_like_globs_without_backtracking_blowups() {
        assert!(iam_like(
            "arn:aws:sns:*:111:*",
            "arn:aws:sns:us-east-1:111:t"
        ));
        assert!(iam_like("a?c", "abc"));
        assert!(!iam_like("a?c", "abbc"));
        assert!(iam_like("*", ""));
        let hostile = "*a".repeat(200) + "b";
        let text = "a".repeat(5000);
        let started = std::time::Instant::now();
        assert!(!iam_like(&hostile, &text));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_signing_key_of_another_day_signs_nothing_today() {
        let auth = AuthConfig {
            verify: true,
            keys: HashMap::from([(
                "AKID".to_owned(),
                AccessKey {
                    secret_access_key: "secret".into(),
                    account: AccountId::parse("111111111111").unwrap(),
                },
            )]),
            default_account: AccountId::parse("000000000000").unwrap(),
            default_region: Region::parse("us-east-1").unwrap(),
            max_skew_s: 900,
            sessions: Default::default(),
        };
        let now = time::OffsetDateTime::now_utc();
        let amz_date = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        // Signed with the key derived for `scope_date`, the request dated now.
        let signed = |scope_date: &str| {
            let headers = vec![
                ("host".to_owned(), "lambda".to_owned()),
                ("x-amz-date".to_owned(), amz_date.clone()),
            ];
            let names = vec!["host".to_owned(), "x-amz-date".to_owned()];
            let req = SignedRequest {
                method: "GET",
                raw_path: "/2015-03-31/functions",
                raw_query: "",
                headers: &headers,
                payload_hash: &sigv4::sha256_hex(b""),
            };
            let canonical = sigv4::canonical_request(&req, &names);
            let sig = sigv4::signature(
                "secret",
                &amz_date,
                scope_date,
                "us-east-1",
                "lambda",
                &canonical,
            );
            let auth_header = format!(
                "AWS4-HMAC-SHA256 Credential=AKID/{scope_date}/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
            );
            axum::http::Request::get("/2015-03-31/functions")
                .header("host", "lambda")
                .header("x-amz-date", &amz_date)
                .header("authorization", auth_header)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let today = &amz_date[..8];
        let caller = identify(&auth, &signed(today), &Bytes::new()).unwrap();
        assert_eq!(caller.account.as_str(), "111111111111");
        let e = identify(&auth, &signed("20200101"), &Bytes::new()).unwrap_err();
        assert_eq!(e.kind, AuthFailure::BadSignature);
        assert!(e.message.contains("Credential scope"), "{}", e.message);
    }
}
