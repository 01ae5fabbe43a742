//! Lambda (REQUEST) authorizers of HTTP APIs: identity sources, the authorizer's event, its
//! simple or IAM-policy answer, and a bounded cache of answers keyed by identity values.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::{Value, json};

use super::event::{self, Context, Incoming};
use crate::AppState;
use crate::apigw::doc::Authorizer;
use crate::auth::iam_like;
use crate::lambda::from_service::{self, Principal};

/// How long an authorizer may take (HTTP API quota).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most answers kept, over all APIs.
const MAX_ENTRIES: usize = 10_000;
/// The largest answer taken (the quota API Gateway documents for its REST and WebSocket APIs'
/// authorizers): a larger one is a failure (500).
pub(crate) const MAX_ANSWER: usize = 8 << 10;
/// The bytes of answers kept, at most, over all APIs (as the authorizers wrote them; parsed,
/// they take a few times more).
const MAX_BYTES: usize = 4 << 20;

/// What an authorizer answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// `{"isAuthorized": …, "context": …}`.
    Simple { allowed: bool, context: Value },
    /// `{"principalId": …, "policyDocument": …, "context": …}`: `(allow, resources)` per
    /// statement that names `execute-api:Invoke`.
    Policy {
        principal_id: Value,
        statements: Vec<(bool, Vec<String>)>,
        context: Value,
    },
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

impl Answer {
    /// Reads an authorizer's result; `None` when it is not a valid answer.
    pub(crate) fn parse(body: &[u8], simple: bool) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let context = match v.get("context") {
            None | Some(Value::Null) => json!({}),
            Some(c @ Value::Object(_)) => c.clone(),
            Some(_) => return None,
        };
        if simple {
            let allowed = v.get("isAuthorized")?.as_bool()?;
            return Some(Self::Simple { allowed, context });
        }
        let doc = v.get("policyDocument")?;
        let statements = match &doc["Statement"] {
            s @ Value::Object(_) => vec![s.clone()],
            Value::Array(a) => a.clone(),
            _ => return None,
        };
        let statements = statements
            .iter()
            .filter(|s| {
                strings(&s["Action"])
                    .iter()
                    .any(|a| iam_like(&a.to_ascii_lowercase(), "execute-api:invoke"))
            })
            .map(|s| (s["Effect"] == "Allow", strings(&s["Resource"])))
            .collect();
        Some(Self::Policy {
            principal_id: v.get("principalId").cloned().unwrap_or(Value::Null),
            statements,
            context,
        })
    }

    /// Whether the answer lets the request for `route_arn` through: an explicit Deny wins.
    pub(crate) fn allows(&self, route_arn: &str) -> bool {
        match self {
            Self::Simple { allowed, .. } => *allowed,
            Self::Policy { statements, .. } => {
                let hit = |allow: bool| {
                    statements
                        .iter()
                        .any(|(a, rs)| *a == allow && rs.iter().any(|r| iam_like(r, route_arn)))
                };
                !hit(false) && hit(true)
            }
        }
    }

    /// The context the authorizer returned (`{}` if none).
    pub(crate) fn context(&self) -> &Value {
        match self {
            Self::Simple { context, .. } | Self::Policy { context, .. } => context,
        }
    }

    /// The principal, for IAM-policy answers.
    pub(crate) fn principal_id(&self) -> Option<&Value> {
        match self {
            Self::Policy { principal_id, .. } => Some(principal_id),
            Self::Simple { .. } => None,
        }
    }
}

/// A SHA-256 of the API, stage, authorizer and identity values (which callers choose, so an
/// entry has a fixed size, and a hit allocates nothing).
type Key = [u8; 32];

fn key_of(api: &str, stage: &str, authorizer: &str, values: &[String]) -> Key {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for v in [api, stage, authorizer]
        .into_iter()
        .chain(values.iter().map(String::as_str))
    {
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().into()
}

struct Entry {
    expires: Instant,
    answer: Arc<Answer>,
    /// The answer's size as written, counted in [`MAX_BYTES`].
    bytes: usize,
    api: String,
    stage: String,
}

/// Cached answers; the oldest go first when [`MAX_ENTRIES`] or [`MAX_BYTES`] are held.
#[derive(Default)]
pub(crate) struct Cache {
    entries: HashMap<Key, Entry>,
    /// The bytes of the answers in `entries`.
    bytes: usize,
    /// Keys in insertion order (some may be gone from `entries`).
    order: std::collections::VecDeque<Key>,
    /// Bumped by every change forgetting answers: an answer asked for before a change is not
    /// kept after it.
    generation: u64,
}

impl Cache {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn get(&mut self, key: &Key) -> Option<Arc<Answer>> {
        let e = self.entries.get(key)?;
        if e.expires > Instant::now() {
            return Some(e.answer.clone());
        }
        self.remove(key);
        None
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= e.bytes;
        }
    }

    /// Keeps `answer`, of `bytes` as its authorizer wrote it.
    fn put(
        &mut self,
        key: Key,
        (api, stage): (&str, &str),
        ttl: Duration,
        (answer, bytes): (Arc<Answer>, usize),
    ) {
        self.remove(&key);
        while self.entries.len() >= MAX_ENTRIES
            || self.bytes + bytes > MAX_BYTES
            || self.order.len() >= 2 * MAX_ENTRIES
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        let entry = Entry {
            expires: Instant::now() + ttl,
            answer,
            bytes,
            api: api.to_owned(),
            stage: stage.to_owned(),
        };
        self.bytes += bytes;
        self.entries.insert(key, entry);
        self.order.push_back(key);
    }

    /// Forgets the answers of an API (of one stage only, if given).
    pub(crate) fn forget_api(&mut self, api: &str, stage: Option<&str>) {
        self.generation += 1;
        self.entries
            .retain(|_, e| e.api != api || stage.is_some_and(|st| st != e.stage));
        self.bytes = self.entries.values().map(|e| e.bytes).sum();
        let entries = &self.entries;
        self.order.retain(|k| entries.contains_key(k));
    }
}

/// The request, as an authorizer sees it.
pub(crate) struct Request<'a> {
    pub incoming: &'a Incoming<'a>,
    pub context: &'a Context<'a>,
    pub stage_variables: &'a BTreeMap<String, String>,
    /// `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`.
    pub route_arn: &'a str,
    pub region: &'a str,
}

/// What the gateway does after its authorizer.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Let the request through, with the authorizer's answer.
    Allow(Arc<Answer>),
    /// An identity source is missing: 401, the authorizer not invoked.
    Unauthorized,
    /// The authorizer said no: 403.
    Forbidden,
    /// The authorizer could not be invoked or gave no valid answer: 500.
    Failed,
}

/// The `$context` variables an identity source may name: [`identity_value`] knows each.
pub(crate) const CONTEXT_SOURCES: [&str; 10] = [
    "accountId",
    "apiId",
    "domainName",
    "httpMethod",
    "identity.sourceIp",
    "identity.userAgent",
    "path",
    "requestId",
    "routeKey",
    "stage",
];

/// The value of one identity source, if present and not empty.
pub(crate) fn identity_value(source: &str, req: &Request<'_>) -> Option<String> {
    let inc = req.incoming;
    let v = if let Some(h) = source.strip_prefix("$request.header.") {
        let all: Vec<String> = inc
            .headers
            .get_all(h)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!all.is_empty()).then(|| all.join(","))
    } else if let Some(q) = source.strip_prefix("$request.querystring.") {
        let all: Vec<String> = crate::query::pairs(inc.raw_query)
            .into_iter()
            .filter(|(k, _)| k == q)
            .map(|(_, v)| v)
            .collect();
        (!all.is_empty()).then(|| all.join(","))
    } else if let Some(c) = source.strip_prefix("$context.") {
        let ctx = req.context;
        match c {
            "accountId" => Some(ctx.account_id.to_owned()),
            "apiId" => Some(ctx.api_id.to_owned()),
            "domainName" => Some(ctx.domain_name.to_owned()),
            "httpMethod" => Some(inc.method.to_owned()),
            "identity.sourceIp" => Some(inc.source_ip.to_owned()),
            "identity.userAgent" => inc
                .headers
                .get("user-agent")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            "path" => Some(inc.path.to_owned()),
            "requestId" => Some(ctx.request_id.to_owned()),
            "routeKey" => Some(ctx.route_key.to_owned()),
            "stage" => Some(ctx.stage.to_owned()),
            _ => None,
        }
    } else if let Some(s) = source.strip_prefix("$stageVariables.") {
        req.stage_variables.get(s).cloned()
    } else {
        None
    };
    v.filter(|v| !v.is_empty())
}

/// The function an `authorizerUri` or `integrationUri` names, with `${stageVariables.x}`
/// substituted.
pub(crate) fn function_arn(uri: &str, stage_variables: &BTreeMap<String, String>) -> String {
    let mut s = uri.to_owned();
    for (k, v) in stage_variables {
        s = s.replace(&format!("${{stageVariables.{k}}}"), v);
    }
    match s.split_once(":lambda:path/2015-03-31/functions/") {
        Some((_, rest)) => rest.trim_end_matches("/invocations").to_owned(),
        None => s,
    }
}

/// Runs `authorizer` for a request of API `api_id` (owned by `account`), through the cache.
pub(crate) async fn authorize(
    state: &Arc<AppState>,
    authorizer: &Authorizer,
    account: &str,
    req: &Request<'_>,
) -> Verdict {
    let mut values = Vec::with_capacity(authorizer.identity_source.len());
    for s in &authorizer.identity_source {
        match identity_value(s, req) {
            Some(v) => values.push(v),
            None => return Verdict::Unauthorized,
        }
    }
    let ttl = authorizer.authorizer_result_ttl_in_seconds.unwrap_or(0);
    let key = key_of(
        req.context.api_id,
        req.context.stage,
        &authorizer.authorizer_id,
        &values,
    );
    let api = req.context.api_id.to_owned();
    let mut generation = 0;
    if ttl > 0 && !values.is_empty() {
        let cached = {
            let mut cache = state
                .http
                .authorizers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            generation = cache.generation();
            cache.get(&key)
        };
        if let Some(answer) = cached {
            metrics::counter!("lamina_http_authorizer_cache_total", "api" => api, "result" => "hit")
                .increment(1);
            return verdict(answer, req.route_arn);
        }
        metrics::counter!("lamina_http_authorizer_cache_total", "api" => api, "result" => "miss")
            .increment(1);
    }
    let Some((answer, bytes)) = invoke(state, authorizer, account, req, &values).await else {
        return Verdict::Failed;
    };
    let answer = Arc::new(answer);
    if ttl > 0 && !values.is_empty() {
        let mut cache = state
            .http
            .authorizers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.generation() == generation {
            cache.put(
                key,
                (req.context.api_id, req.context.stage),
                Duration::from_secs(ttl as u64),
                (answer.clone(), bytes),
            );
        }
    }
    verdict(answer, req.route_arn)
}

fn verdict(answer: Arc<Answer>, route_arn: &str) -> Verdict {
    if answer.allows(route_arn) {
        Verdict::Allow(answer)
    } else {
        Verdict::Forbidden
    }
}

/// An event as a tree, to add an authorizer's members to.
fn to_value(event: impl serde::Serialize) -> Value {
    serde_json::to_value(event).unwrap_or_default()
}

/// Invokes the authorizer function: its answer and the answer's size, or `None` on any failure
/// (logged).
async fn invoke(
    state: &Arc<AppState>,
    authorizer: &Authorizer,
    account: &str,
    req: &Request<'_>,
    values: &[String],
) -> Option<(Answer, usize)> {
    let inc = Incoming {
        body: &[],
        ..*req.incoming
    };
    let v2 = authorizer.authorizer_payload_format_version.as_deref() == Some("2.0");
    let mut ev = if v2 {
        let mut e = to_value(event::v2(&inc, req.context));
        e["type"] = json!("REQUEST");
        e["routeArn"] = json!(req.route_arn);
        e["identitySource"] = json!(values);
        e
    } else {
        let mut e = to_value(event::v1(
            &inc,
            req.context,
            super::routes::resource(req.context.route_key),
        ));
        e["type"] = json!("REQUEST");
        e["methodArn"] = json!(req.route_arn);
        e["identitySource"] = json!(values.join(","));
        e["authorizationToken"] = json!(values.join(","));
        e
    };
    if let Some(o) = ev.as_object_mut() {
        o.remove("body");
    }
    let uri = authorizer.authorizer_uri.as_deref().unwrap_or_default();
    let arn = function_arn(uri, req.stage_variables);
    let fail = |why: &str| {
        tracing::warn!(authorizer = %authorizer.authorizer_id, api = req.context.api_id, function = %arn, "authorizer failed: {why}");
        None
    };
    let (key, qualifier) = match from_service::function_of(&arn) {
        Ok(k) => k,
        Err(e) => return fail(e.message()),
    };
    if state.auth.verify || key.account.as_str() != account {
        let source_arn = format!(
            "arn:aws:execute-api:{}:{account}:{}/authorizers/{}",
            req.region, req.context.api_id, authorizer.authorizer_id
        );
        let who = Principal::Service {
            service: "apigateway.amazonaws.com",
            source_arn: &source_arn,
            source_account: account,
        };
        match from_service::allowed(
            state,
            &key,
            qualifier.as_ref(),
            "lambda:InvokeFunction",
            who,
        )
        .await
        {
            Ok(true) => {}
            _ => {
                return fail(
                    "the function's resource-based policy does not let apigateway.amazonaws.com invoke it for this authorizer",
                );
            }
        }
    }
    let payload = Bytes::from(ev.to_string());
    let state2 = state.clone();
    let call = tokio::spawn(async move {
        from_service::invoke_sync(&state2, &key, qualifier.as_ref(), payload).await
    });
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(Ok(a))) if a.body.len() > MAX_ANSWER && !a.function_error => {
            fail("its response is larger than 8 KB")
        }
        Ok(Ok(Ok(a))) if !a.function_error => match Answer::parse(
            &a.body,
            v2 && authorizer.enable_simple_responses == Some(true),
        ) {
            Some(answer) => Some((answer, a.body.len())),
            None => fail("its response is not a valid authorizer response"),
        },
        Ok(Ok(Ok(_))) => fail("the function returned an error"),
        Ok(Ok(Err(e))) => fail(e.message()),
        Ok(Err(_)) => fail("the invocation task failed"),
        Err(_) => fail("it did not answer within 10 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:abc/$default/GET/pets";

    #[test]
    fn simple_answers() {
        let a = Answer::parse(
            br#"{"isAuthorized":true,"context":{"user":"u1","n":1}}"#,
            true,
        )
        .unwrap();
        assert!(a.allows(ARN));
        assert_eq!(a.context()["n"], 1);
        let a = Answer::parse(br#"{"isAuthorized":false}"#, true).unwrap();
        assert!(!a.allows(ARN));
        assert!(Answer::parse(br#"{"context":{}}"#, true).is_none());
        assert!(Answer::parse(br#"{"isAuthorized":true,"context":"x"}"#, true).is_none());
    }

    #[test]
    fn policies_with_wildcards_and_deny_winning() {
        let allow_all = br#"{"principalId":"u","policyDocument":{"Version":"2012-10-17","Statement":[
            {"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:us-east-1:000000000000:abc/*/*"}]}}"#;
        let a = Answer::parse(allow_all, false).unwrap();
        assert!(a.allows(ARN));
        assert_eq!(a.principal_id(), Some(&json!("u")));
        let with_deny = br#"{"principalId":"u","policyDocument":{"Statement":[
            {"Action":["execute-api:Invoke"],"Effect":"Allow","Resource":["*"]},
            {"Action":"execute-api:*","Effect":"Deny","Resource":"arn:aws:execute-api:*:*:abc/*/GET/pet?"}]}}"#;
        let a = Answer::parse(with_deny, false).unwrap();
        assert!(!a.allows(ARN));
        assert!(a.allows("arn:aws:execute-api:us-east-1:000000000000:abc/$default/GET/cats"));
        let other_action = br#"{"principalId":"u","policyDocument":{"Statement":[
            {"Action":"s3:GetObject","Effect":"Allow","Resource":"*"}]}}"#;
        assert!(!Answer::parse(other_action, false).unwrap().allows(ARN));
        assert!(Answer::parse(br#"{"principalId":"u"}"#, false).is_none());
    }

    #[test]
    fn the_cache_expires_and_forgets_by_api_and_stage() {
        let mut c = Cache::default();
        let answer = Arc::new(Answer::Simple {
            allowed: true,
            context: json!({}),
        });
        let key = |api: &str, stage: &str| key_of(api, stage, "a", &["t".to_owned()]);
        let put = |c: &mut Cache, api: &str, stage: &str, ttl: u64, a: &Arc<Answer>| {
            c.put(
                key(api, stage),
                (api, stage),
                Duration::from_secs(ttl),
                (a.clone(), 10),
            );
        };
        put(&mut c, "x", "s1", 60, &answer);
        put(&mut c, "x", "s2", 60, &answer);
        put(&mut c, "y", "s1", 0, &answer);
        assert!(c.get(&key("x", "s1")).is_some());
        assert!(c.get(&key("y", "s1")).is_none());
        c.forget_api("x", Some("s1"));
        assert!(c.get(&key("x", "s1")).is_none());
        assert!(c.get(&key("x", "s2")).is_some());
        c.forget_api("x", None);
        assert!(c.get(&key("x", "s2")).is_none());
    }

    #[test]
    fn the_cache_is_bounded_oldest_first() {
        let mut c = Cache::default();
        let answer = Arc::new(Answer::Simple {
            allowed: true,
            context: json!({}),
        });
        let key = |i: usize| key_of("x", "s", "a", &[i.to_string()]);
        for i in 0..MAX_ENTRIES + 5 {
            let a = (answer.clone(), 10);
            c.put(key(i), ("x", "s"), Duration::from_secs(60), a);
        }
        assert_eq!(c.entries.len(), MAX_ENTRIES);
        assert!(c.get(&key(0)).is_none());
        assert!(c.get(&key(MAX_ENTRIES + 4)).is_some());
        // And by the bytes of the answers: the largest take the room of fewer.
        let mut c = Cache::default();
        for i in 0..MAX_ENTRIES {
            let a = (answer.clone(), MAX_ANSWER);
            c.put(key(i), ("x", "s"), Duration::from_secs(60), a);
        }
        assert_eq!(c.entries.len(), MAX_BYTES / MAX_ANSWER);
        assert_eq!(c.bytes, MAX_BYTES);
        assert!(c.get(&key(MAX_ENTRIES - 1)).is_some());
        c.forget_api("x", None);
        assert_eq!(c.bytes, 0);
        // Identity values of any size take one digest.
        assert_ne!(
            key_of("x", "s", "a", &["a".into(), "b".into()]),
            key_of("x", "s", "a", &["ab".into()])
        );
    }

    #[test]
    fn every_context_variable_taken_as_an_identity_source_has_a_value() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("user-agent", "curl/8".parse().unwrap());
        let incoming = Incoming {
            method: "GET",
            path: "/pets",
            raw_query: "",
            headers: &headers,
            body: &[],
            source_ip: "127.0.0.1",
        };
        let context = Context {
            account_id: "123456789012",
            api_id: "abc",
            domain_name: "abc.execute-api.localhost",
            stage: "$default",
            route_key: "GET /pets",
            request_id: "rid",
            time_ms: 0,
            authorizer: None,
            path_parameters: None,
            stage_variables: None,
            route_id: "r1",
        };
        let stage_variables = BTreeMap::new();
        let req = Request {
            incoming: &incoming,
            context: &context,
            stage_variables: &stage_variables,
            route_arn: ARN,
            region: "us-east-1",
        };
        for name in CONTEXT_SOURCES {
            let value = identity_value(&format!("$context.{name}"), &req);
            assert!(value.is_some(), "$context.{name}");
        }
        assert_eq!(
            identity_value("$context.identity.userAgent", &req).as_deref(),
            Some("curl/8")
        );
        assert_eq!(identity_value("$context.nothing", &req), None);
    }

    #[test]
    fn function_arns_from_uris() {
        let vars: BTreeMap<String, String> = [("fn".to_owned(), "f2".to_owned())].into();
        assert_eq!(
            function_arn(
                "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:auth/invocations",
                &vars
            ),
            "arn:aws:lambda:us-east-1:000000000000:function:auth"
        );
        assert_eq!(
            function_arn(
                "arn:aws:lambda:us-east-1:000000000000:function:${stageVariables.fn}",
                &vars
            ),
            "arn:aws:lambda:us-east-1:000000000000:function:f2"
        );
    }
}
