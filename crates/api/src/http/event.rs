//! The integration events an HTTP request becomes (payload formats 2.0 and 1.0) and how a
//! function's result becomes the HTTP response ([`reply`]). Pure: no I/O, no state.
//!
//! An event is a view of the request that serializes itself: written straight into the
//! payload, its strings borrowed from the request and the route, with no JSON tree between.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

mod reply;

pub use reply::{Reply, reply_v1, reply_v2};

/// An HTTP request as the gateway received it.
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The path the function sees (a named stage kept, a path-style prefix removed).
    pub path: &'a str,
    /// The raw query, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: &'a str,
}

/// What the gateway knows about the request beyond the request itself.
pub struct Context<'a> {
    pub account_id: &'a str,
    pub api_id: &'a str,
    pub domain_name: &'a str,
    pub stage: &'a str,
    pub route_key: &'a str,
    pub request_id: &'a str,
    pub time_ms: i64,
    /// `requestContext.authorizer`, already in the payload's shape.
    pub authorizer: Option<Value>,
    pub path_parameters: Option<&'a Map<String, Value>>,
    pub stage_variables: Option<&'a BTreeMap<String, String>>,
    /// The route's id (1.0 `resourceId`).
    pub route_id: &'a str,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `dd/Mon/yyyy:HH:mm:ss +0000`.
pub fn clf_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[t.month() as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || matches!(
            ct.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
                | "application/yaml"
        )
}

/// The body as the event carries it, and whether it is base64.
fn body_of<'a>(inc: &Incoming<'a>) -> (Option<Cow<'a, str>>, bool) {
    if inc.body.is_empty() {
        return (None, false);
    }
    let ct = inc
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    match std::str::from_utf8(inc.body) {
        Ok(s) if is_text(ct) => (Some(Cow::Borrowed(s)), false),
        _ => (
            Some(Cow::Owned(
                base64::engine::general_purpose::STANDARD.encode(inc.body),
            )),
            true,
        ),
    }
}

fn header_text(v: &HeaderValue) -> Cow<'_, str> {
    String::from_utf8_lossy(v.as_bytes())
}

fn user_agent<'a>(h: &'a HeaderMap) -> Cow<'a, str> {
    h.get("user-agent").map(header_text).unwrap_or_default()
}

fn domain_prefix(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

/// A member that may be left out, present as `null`, or present with a value.
enum Member<T> {
    Absent,
    Null,
    Is(T),
}

impl<T> Member<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
    /// Present with a value, or absent.
    fn of(v: Option<T>) -> Self {
        v.map_or(Self::Absent, Self::Is)
    }
}

impl<T: Serialize> Serialize for Member<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Is(v) => v.serialize(s),
            Self::Absent | Self::Null => s.serialize_none(),
        }
    }
}

/// The query's values grouped by name, names in their first order. A query may hold tens of
/// thousands of names, so each is found through an index, not by a search of those before it.
fn grouped_query(raw: &str) -> Arc<[(String, Vec<String>)]> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (k, v) in crate::query::pairs(raw) {
        match index.get(&k) {
            Some(&i) => out[i].1.push(v),
            None => {
                index.insert(k.clone(), out.len());
                out.push((k, vec![v]));
            }
        }
    }
    out.into()
}

/// How a name with several values appears in a map.
#[derive(Clone, Copy)]
enum Values {
    /// Joined with `,` (2.0).
    Joined,
    /// The last one (1.0 `headers`, `queryStringParameters`).
    Last,
    /// All of them, as an array (1.0 `multiValue…`).
    All,
}

fn write_values<M: SerializeMap, V: AsRef<str>>(
    m: &mut M,
    name: &str,
    values: &[V],
    how: Values,
) -> Result<(), M::Error> {
    match (how, values) {
        (_, []) => Ok(()),
        (Values::Joined | Values::Last, [one]) => m.serialize_entry(name, one.as_ref()),
        (Values::Joined, many) => {
            let joined: Vec<&str> = many.iter().map(AsRef::as_ref).collect();
            m.serialize_entry(name, &joined.join(","))
        }
        (Values::Last, [.., last]) => m.serialize_entry(name, last.as_ref()),
        (Values::All, all) => m.serialize_entry(name, &All(all)),
    }
}

struct All<'v, V>(&'v [V]);

impl<V: AsRef<str>> Serialize for All<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(v.as_ref())?;
        }
        seq.end()
    }
}

/// The request's headers as a map; 2.0 leaves `cookie` to `cookies`.
struct Headers<'a> {
    map: &'a HeaderMap,
    how: Values,
    cookies_apart: bool,
}

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let mut values: Vec<Cow<'_, str>> = Vec::new();
        for name in self.map.keys() {
            if self.cookies_apart && name == "cookie" {
                continue;
            }
            values.clear();
            values.extend(self.map.get_all(name).iter().map(header_text));
            write_values(&mut m, name.as_str(), &values, self.how)?;
        }
        m.end()
    }
}

/// The query's parameters as a map.
struct Query {
    groups: Arc<[(String, Vec<String>)]>,
    how: Values,
}

impl Query {
    /// `None` for an empty query.
    fn of(groups: &Arc<[(String, Vec<String>)]>, how: Values) -> Option<Self> {
        (!groups.is_empty()).then(|| Self {
            groups: groups.clone(),
            how,
        })
    }
}

impl Serialize for Query {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.groups.len()))?;
        for (name, values) in self.groups.iter() {
            write_values(&mut m, name, values, self.how)?;
        }
        m.end()
    }
}

/// The payload format 2.0 event. [`V2::for_url`] gives a function URL's shape.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V2<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<Cow<'a, str>>,
    headers: Headers<'a>,
    #[serde(skip_serializing_if = "Member::is_absent")]
    query_string_parameters: Member<Query>,
    request_context: RequestContextV2<'a>,
    #[serde(skip_serializing_if = "Member::is_absent")]
    path_parameters: Member<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Member::is_absent")]
    stage_variables: Member<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Cow<'a, str>>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContextV2<'a> {
    account_id: &'a str,
    api_id: &'a str,
    #[serde(skip_serializing_if = "Member::is_absent")]
    authentication: Member<()>,
    #[serde(skip_serializing_if = "Member::is_absent")]
    authorizer: Member<&'a Value>,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: Http<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'a str,
    time: String,
    time_epoch: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Http<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: &'a str,
    user_agent: Cow<'a, str>,
}

/// The cookies of one `Cookie` header.
fn cookies_in(header: &str) -> impl Iterator<Item = &str> {
    header.split(';').map(str::trim).filter(|c| !c.is_empty())
}

/// The payload format 2.0 event of `inc`.
pub fn v2<'a>(inc: &Incoming<'a>, ctx: &'a Context<'a>) -> V2<'a> {
    let cookies = inc
        .headers
        .get_all("cookie")
        .iter()
        .flat_map(|v| match header_text(v) {
            Cow::Borrowed(s) => cookies_in(s).map(Cow::Borrowed).collect::<Vec<_>>(),
            Cow::Owned(s) => cookies_in(&s).map(|c| Cow::Owned(c.to_owned())).collect(),
        })
        .collect();
    let (body, b64) = body_of(inc);
    V2 {
        version: "2.0",
        route_key: ctx.route_key,
        raw_path: inc.path,
        raw_query_string: inc.raw_query,
        cookies,
        headers: Headers {
            map: inc.headers,
            how: Values::Joined,
            cookies_apart: true,
        },
        query_string_parameters: Member::of(Query::of(
            &grouped_query(inc.raw_query),
            Values::Joined,
        )),
        request_context: RequestContextV2 {
            account_id: ctx.account_id,
            api_id: ctx.api_id,
            authentication: Member::Absent,
            authorizer: Member::of(ctx.authorizer.as_ref()),
            domain_name: ctx.domain_name,
            domain_prefix: domain_prefix(ctx.domain_name),
            http: Http {
                method: inc.method,
                path: inc.path,
                protocol: "HTTP/1.1",
                source_ip: inc.source_ip,
                user_agent: user_agent(inc.headers),
            },
            request_id: ctx.request_id,
            route_key: ctx.route_key,
            stage: ctx.stage,
            time: clf_time(ctx.time_ms),
            time_epoch: ctx.time_ms,
        },
        path_parameters: Member::of(ctx.path_parameters.filter(|p| !p.is_empty())),
        stage_variables: Member::of(ctx.stage_variables.filter(|s| !s.is_empty())),
        body,
        is_base64_encoded: b64,
    }
}

impl V2<'_> {
    /// A function URL's event: `authentication`, `authorizer`, `pathParameters` and
    /// `stageVariables` are there, `null` when empty.
    pub fn for_url(mut self) -> Self {
        let rc = &mut self.request_context;
        rc.authentication = Member::Null;
        if rc.authorizer.is_absent() {
            rc.authorizer = Member::Null;
        }
        self.path_parameters = Member::Null;
        self.stage_variables = Member::Null;
        self
    }
}

/// The payload format 1.0 event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1<'a> {
    version: &'static str,
    resource: &'a str,
    path: &'a str,
    http_method: &'a str,
    headers: Option<Headers<'a>>,
    multi_value_headers: Option<Headers<'a>>,
    query_string_parameters: Option<Query>,
    multi_value_query_string_parameters: Option<Query>,
    request_context: RequestContextV1<'a>,
    path_parameters: Option<&'a Map<String, Value>>,
    stage_variables: Option<&'a BTreeMap<String, String>>,
    body: Option<Cow<'a, str>>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContextV1<'a> {
    account_id: &'a str,
    api_id: &'a str,
    authorizer: Option<&'a Value>,
    domain_name: &'a str,
    domain_prefix: &'a str,
    extended_request_id: &'a str,
    http_method: &'a str,
    identity: Identity<'a>,
    path: &'a str,
    protocol: &'static str,
    request_id: &'a str,
    request_time: String,
    request_time_epoch: i64,
    resource_id: &'a str,
    resource_path: &'a str,
    stage: &'a str,
}

/// 1.0's caller identity: only the address and the user agent are known; the rest is `null`.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    access_key: Option<&'a str>,
    account_id: Option<&'a str>,
    caller: Option<&'a str>,
    cognito_amr: (),
    cognito_authentication_provider: (),
    cognito_authentication_type: (),
    cognito_identity_id: (),
    cognito_identity_pool_id: (),
    principal_org_id: (),
    source_ip: &'a str,
    user: Option<&'a str>,
    user_agent: Cow<'a, str>,
    user_arn: Option<&'a str>,
}

impl<'a> Identity<'a> {
    /// The caller's identity as payload 1.0 gives it: an `AWS_IAM` route's signer (from the
    /// context's `iam` authorizer entry) in `accessKey`, `accountId`, `caller`, `user` and
    /// `userArn`; all of them `null` for other routes.
    fn of(inc: &Incoming<'a>, authorizer: Option<&'a Value>) -> Self {
        let iam = authorizer.and_then(|a| a.get("iam"));
        let field = |k| iam.and_then(|i| i.get(k)).and_then(Value::as_str);
        Identity {
            access_key: field("accessKey"),
            account_id: field("accountId"),
            caller: field("callerId"),
            user: field("userId"),
            user_arn: field("userArn"),
            source_ip: inc.source_ip,
            user_agent: user_agent(inc.headers),
            ..Identity::default()
        }
    }
}

/// The payload format 1.0 event of `inc` (`resource` is the route's path, `$default` for the
/// default route).
pub fn v1<'a>(inc: &Incoming<'a>, ctx: &'a Context<'a>, resource: &'a str) -> V1<'a> {
    let headers = |how| {
        (!inc.headers.is_empty()).then_some(Headers {
            map: inc.headers,
            how,
            cookies_apart: false,
        })
    };
    let query = grouped_query(inc.raw_query);
    let params = |how| Query::of(&query, how);
    let (body, b64) = body_of(inc);
    V1 {
        version: "1.0",
        resource,
        path: inc.path,
        http_method: inc.method,
        headers: headers(Values::Last),
        multi_value_headers: headers(Values::All),
        query_string_parameters: params(Values::Last),
        multi_value_query_string_parameters: params(Values::All),
        request_context: RequestContextV1 {
            account_id: ctx.account_id,
            api_id: ctx.api_id,
            authorizer: ctx.authorizer.as_ref(),
            domain_name: ctx.domain_name,
            domain_prefix: domain_prefix(ctx.domain_name),
            extended_request_id: ctx.request_id,
            http_method: inc.method,
            identity: Identity::of(inc, ctx.authorizer.as_ref()),
            path: inc.path,
            protocol: "HTTP/1.1",
            request_id: ctx.request_id,
            request_time: clf_time(ctx.time_ms),
            request_time_epoch: ctx.time_ms,
            resource_id: ctx.route_id,
            resource_path: resource,
            stage: ctx.stage,
        },
        path_parameters: ctx.path_parameters.filter(|p| !p.is_empty()),
        stage_variables: ctx.stage_variables.filter(|s| !s.is_empty()),
        body,
        is_base64_encoded: b64,
    }
}

#[cfg(test)]
mod tests;
