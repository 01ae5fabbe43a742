//! JWT authorizers of HTTP APIs: the token from the one identity source (raw or `Bearer`),
//! its signature checked against the issuer's JWKS (`kid` must match), `iss`, `aud` or
//! `client_id`, `exp`, `nbf` and `iat`, and the route's scopes. JWKS come from a file the
//! operator names for the issuer (hosts may be offline), else from the issuer's OpenID
//! discovery document, fetched through the deliveries' egress policy and cached.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::apigw::doc::{Authorizer, Route};

/// How long a JWKS is trusted before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` fetches again at most this often per issuer.
const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// API Gateway's JWKS fetch timeout.
const FETCH_TIMEOUT: Duration = Duration::from_millis(1500);
/// The largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 64 << 10;
/// The most issuers whose keys are kept.
const MAX_ISSUERS: usize = 1000;
/// The most keys kept of one issuer.
const MAX_KEYS: usize = 20;

/// Where keys come from, and the keys fetched.
#[derive(Default)]
pub struct Jwks {
    /// JWKS files by issuer, from the server's configuration.
    files: BTreeMap<String, PathBuf>,
    fetched: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
}

impl Jwks {
    /// Keys of the issuers in `files` are read from those files (JSON Web Key Sets).
    pub fn new(files: BTreeMap<String, PathBuf>) -> Self {
        Self {
            files,
            fetched: Mutex::default(),
        }
    }

    fn cached(&self, issuer: &str, max_age: Duration) -> Option<Arc<JwkSet>> {
        let fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        fetched
            .get(issuer)
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, set)| set.clone())
    }

    fn keep(&self, issuer: &str, set: Arc<JwkSet>) {
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        if fetched.len() >= MAX_ISSUERS && !fetched.contains_key(issuer) {
            let oldest = fetched
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                fetched.remove(&k);
            }
        }
        fetched.insert(issuer.to_owned(), (Instant::now(), set));
    }
}

/// Whether keys may be fetched from `url`: `https`, or `http` to this host only (for local
/// issuers); never to a network the deliveries' deny list names.
fn fetchable(state: &AppState, url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(format!("{url}: keys are fetched over https only")),
    }
    if state.sns.settings.deny.denies_url(url) {
        return Err(format!(
            "{url} is in a network this server does not fetch from"
        ));
    }
    Ok(())
}

/// Reads at most [`MAX_DOCUMENT`] bytes of JSON from `url`.
async fn fetch_json(state: &AppState, url: &str) -> Result<Value, String> {
    fetchable(state, url)?;
    let http = &state.sns.http;
    let mut resp = http
        .get(url)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("fetching {url}: {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!("{url} is larger than {MAX_DOCUMENT} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url} is not JSON: {e}"))
}

/// The issuer's keys: from its configured file, or discovered and fetched (at most every
/// [`REFETCH_EVERY`] when `fresh` asks for a newer set than the cached one).
async fn keys(state: &Arc<AppState>, issuer: &str, fresh: bool) -> Result<Arc<JwkSet>, String> {
    let jwks = &state.http.jwks;
    if let Some(path) = jwks.files.get(issuer) {
        let text = tokio::fs::read(path)
            .await
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let set: JwkSet = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a JSON Web Key Set: {e}", path.display()))?;
        return Ok(Arc::new(set));
    }
    let max_age = if fresh { REFETCH_EVERY } else { JWKS_TTL };
    if let Some(set) = jwks.cached(issuer, max_age) {
        return Ok(set);
    }
    let set = match discover(state, issuer).await {
        Ok(set) => Arc::new(set),
        Err(e) => {
            // A failure is kept too, so that requests cannot make the server fetch from an
            // issuer more than every REFETCH_EVERY: as the keys the issuer had (an issuer down
            // for a moment does not turn its valid tokens away), or as none.
            let had = jwks
                .cached(issuer, Duration::MAX)
                .filter(|set| !set.keys.is_empty());
            let Some(had) = had else {
                jwks.keep(issuer, Arc::new(JwkSet { keys: Vec::new() }));
                return Err(e);
            };
            tracing::warn!(issuer, error = %e, "refreshing an issuer's keys failed; keeping those it had");
            had
        }
    };
    jwks.keep(issuer, set.clone());
    Ok(set)
}

/// The signing keys of an issuer's JWKS, by OpenID discovery: RSA and EC keys with a `kid`,
/// at most [`MAX_KEYS`], without certificate chains.
async fn discover(state: &AppState, issuer: &str) -> Result<JwkSet, String> {
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = fetch_json(state, &discovery).await?;
    let uri = doc["jwks_uri"]
        .as_str()
        .ok_or_else(|| format!("{discovery} has no jwks_uri"))?;
    let raw = fetch_json(state, uri).await?;
    let keys: Vec<Value> = raw["keys"]
        .as_array()
        .ok_or_else(|| format!("{uri} is not a JSON Web Key Set"))?
        .iter()
        .filter(|k| k["kid"].is_string() && matches!(k["kty"].as_str(), Some("RSA" | "EC")))
        .take(MAX_KEYS)
        .map(|k| {
            let mut k = k.clone();
            if let Some(o) = k.as_object_mut() {
                o.remove("x5c");
            }
            k
        })
        .collect();
    serde_json::from_value(json!({ "keys": keys }))
        .map_err(|e| format!("{uri} is not a JSON Web Key Set: {e}"))
}

/// What a JWT authorizer decided.
#[derive(Debug)]
pub(crate) enum JwtVerdict {
    /// Valid: the claims (values as strings, as API Gateway passes them) and scopes.
    Allow {
        claims: Map<String, Value>,
        scopes: Option<Vec<String>>,
    },
    /// No token, or an invalid one: 401.
    Unauthorized(String),
    /// Valid, without a scope the route needs: 403.
    Forbidden,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The token's scopes: `scope` (space-separated) or `scp` (a list or a string).
fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    if let Some(Value::String(s)) = claims.get("scope") {
        return s.split_whitespace().map(str::to_owned).collect();
    }
    match claims.get("scp") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(v) => strings(v),
        None => Vec::new(),
    }
}

/// Checks `token` (the identity source's value) for `authorizer` on `route`.
pub(crate) async fn authorize(
    state: &Arc<AppState>,
    authorizer: &Authorizer,
    route: &Route,
    token: Option<String>,
) -> JwtVerdict {
    let Some(raw) = token else {
        return JwtVerdict::Unauthorized("no token".into());
    };
    let token = match raw.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim().to_owned(),
        _ => raw,
    };
    if token.len() > 8192 {
        return JwtVerdict::Unauthorized("the token is too long".into());
    }
    let config = authorizer.jwt_configuration.clone().unwrap_or_default();
    let Some(issuer) = config.issuer.as_deref() else {
        return JwtVerdict::Unauthorized("the authorizer has no issuer".into());
    };
    match verify(state, issuer, &config.audience, &token).await {
        Err(why) => JwtVerdict::Unauthorized(why),
        Ok(claims) => {
            let scopes = scopes_of(&claims);
            let needed = route.authorization_scopes.as_deref().unwrap_or_default();
            if !needed.is_empty() && !needed.iter().any(|n| scopes.contains(n)) {
                return JwtVerdict::Forbidden;
            }
            let claims = claims
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, Value::String(s)),
                    other => (k, Value::String(other.to_string())),
                })
                .collect();
            JwtVerdict::Allow {
                claims,
                scopes: (!scopes.is_empty()).then_some(scopes),
            }
        }
    }
}

/// The token's claims, if its signature, issuer, audience and times hold.
async fn verify(
    state: &Arc<AppState>,
    issuer: &str,
    audience: &[String],
    token: &str,
) -> Result<Map<String, Value>, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("bad token: {e}"))?;
    let alg = header.alg;
    if !matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
    ) {
        return Err(format!("algorithm {alg:?} is not accepted"));
    }
    let kid = header.kid.ok_or("the token has no kid")?;
    let mut set = keys(state, issuer, false).await?;
    if set.find(&kid).is_none() {
        set = keys(state, issuer, true).await?;
    }
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("no key {kid} in the issuer's JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| format!("invalid token: {e}"))?;
    let claims = data.claims;
    // `aud`, or `client_id` when the token has no `aud`.
    let presented = match claims.get("aud") {
        Some(aud) => strings(aud),
        None => claims.get("client_id").map(strings).unwrap_or_default(),
    };
    if !presented.iter().any(|a| audience.contains(a)) {
        return Err("the token's audience is not the authorizer's".into());
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
        && iat > lamina_model::now_millis() / 1000
    {
        return Err("the token was issued in the future".into());
    }
    Ok(claims)
}

/// The authorizer member of the integration event for a valid token.
pub(crate) fn context(claims: Map<String, Value>, scopes: Option<Vec<String>>, v2: bool) -> Value {
    if v2 {
        json!({ "jwt": { "claims": claims, "scopes": scopes } })
    } else {
        json!({ "claims": claims, "scopes": scopes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_scope_or_scp() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(scopes_of(&m(json!({"scope": "a b"}))), ["a", "b"]);
        assert_eq!(scopes_of(&m(json!({"scp": ["a", "c"]}))), ["a", "c"]);
        assert_eq!(scopes_of(&m(json!({"scp": "x"}))), ["x"]);
        assert!(scopes_of(&m(json!({}))).is_empty());
    }

    #[test]
    fn the_issuer_cache_is_bounded() {
        let j = Jwks::default();
        for i in 0..MAX_ISSUERS + 10 {
            j.keep(&format!("https://i{i}"), Arc::new(JwkSet { keys: vec![] }));
        }
        assert_eq!(j.fetched.lock().unwrap().len(), MAX_ISSUERS);
        assert!(j.cached("https://i0", JWKS_TTL).is_none());
        assert!(
            j.cached(&format!("https://i{}", MAX_ISSUERS + 9), JWKS_TTL)
                .is_some()
        );
    }
}
