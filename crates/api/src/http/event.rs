//! The integration events an HTTP request becomes (payload formats 2.0 and 1.0) and how a
//! function's result becomes the HTTP response. Pure: no I/O, no state.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine;
use serde_json::{Map, Value, json};

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
    pub path_parameters: Option<Map<String, Value>>,
    pub stage_variables: Option<Map<String, Value>>,
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
fn body_of(inc: &Incoming<'_>) -> (Option<String>, bool) {
    if inc.body.is_empty() {
        return (None, false);
    }
    let ct = inc
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    match std::str::from_utf8(inc.body) {
        Ok(s) if is_text(ct) => (Some(s.to_owned()), false),
        _ => (
            Some(base64::engine::general_purpose::STANDARD.encode(inc.body)),
            true,
        ),
    }
}

fn header_text(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

fn user_agent(h: &HeaderMap) -> String {
    h.get("user-agent").map(header_text).unwrap_or_default()
}

fn domain_prefix(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

/// The payload format 2.0 event.
pub fn v2(inc: &Incoming<'_>, ctx: &Context<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for (name, value) in inc.headers {
        if name == "cookie" {
            cookies.extend(
                header_text(value)
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_owned())),
            );
            continue;
        }
        let v = header_text(value);
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let mut query = Map::new();
    for (k, v) in crate::query::pairs(inc.raw_query) {
        match query.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let (body, b64) = body_of(inc);
    let mut request_context = json!({
        "accountId": ctx.account_id,
        "apiId": ctx.api_id,
        "domainName": ctx.domain_name,
        "domainPrefix": domain_prefix(ctx.domain_name),
        "http": {
            "method": inc.method,
            "path": inc.path,
            "protocol": "HTTP/1.1",
            "sourceIp": inc.source_ip,
            "userAgent": user_agent(inc.headers),
        },
        "requestId": ctx.request_id,
        "routeKey": ctx.route_key,
        "stage": ctx.stage,
        "time": clf_time(ctx.time_ms),
        "timeEpoch": ctx.time_ms,
    });
    if let Some(a) = &ctx.authorizer {
        request_context["authorizer"] = a.clone();
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": ctx.route_key,
        "rawPath": inc.path,
        "rawQueryString": inc.raw_query,
        "headers": headers,
        "requestContext": request_context,
        "isBase64Encoded": b64,
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if let Some(p) = ctx.path_parameters.as_ref().filter(|p| !p.is_empty()) {
        event["pathParameters"] = Value::Object(p.clone());
    }
    if let Some(s) = ctx.stage_variables.as_ref().filter(|s| !s.is_empty()) {
        event["stageVariables"] = Value::Object(s.clone());
    }
    if let Some(b) = body {
        event["body"] = Value::String(b);
    }
    event
}

/// The payload format 1.0 event (`resource` is the route's path, `$default` for the default
/// route).
pub fn v1(inc: &Incoming<'_>, ctx: &Context<'_>, resource: &str) -> Value {
    let mut headers = Map::new();
    let mut multi_headers = Map::new();
    for (name, value) in inc.headers {
        let v = Value::String(header_text(value));
        headers.insert(name.as_str().to_owned(), v.clone());
        match multi_headers.get_mut(name.as_str()) {
            Some(Value::Array(a)) => a.push(v),
            _ => {
                multi_headers.insert(name.as_str().to_owned(), Value::Array(vec![v]));
            }
        }
    }
    let mut query = Map::new();
    let mut multi_query = Map::new();
    for (k, v) in crate::query::pairs(inc.raw_query) {
        let v = Value::String(v);
        query.insert(k.clone(), v.clone());
        match multi_query.get_mut(&k) {
            Some(Value::Array(a)) => a.push(v),
            _ => {
                multi_query.insert(k, Value::Array(vec![v]));
            }
        }
    }
    let object_or_null = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let (body, b64) = body_of(inc);
    json!({
        "version": "1.0",
        "resource": resource,
        "path": inc.path,
        "httpMethod": inc.method,
        "headers": object_or_null(headers),
        "multiValueHeaders": object_or_null(multi_headers),
        "queryStringParameters": object_or_null(query),
        "multiValueQueryStringParameters": object_or_null(multi_query),
        "requestContext": {
            "accountId": ctx.account_id,
            "apiId": ctx.api_id,
            "authorizer": ctx.authorizer.clone().unwrap_or(Value::Null),
            "domainName": ctx.domain_name,
            "domainPrefix": domain_prefix(ctx.domain_name),
            "extendedRequestId": ctx.request_id,
            "httpMethod": inc.method,
            "identity": {
                "accessKey": null, "accountId": null, "caller": null, "cognitoAmr": null,
                "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
                "cognitoIdentityId": null, "cognitoIdentityPoolId": null, "principalOrgId": null,
                "sourceIp": inc.source_ip, "user": null, "userAgent": user_agent(inc.headers),
                "userArn": null,
            },
            "path": inc.path,
            "protocol": "HTTP/1.1",
            "requestId": ctx.request_id,
            "requestTime": clf_time(ctx.time_ms),
            "requestTimeEpoch": ctx.time_ms,
            "resourceId": ctx.route_id,
            "resourcePath": resource,
            "stage": ctx.stage,
        },
        "pathParameters": ctx.path_parameters.clone().map_or(Value::Null, object_or_null),
        "stageVariables": ctx.stage_variables.clone().map_or(Value::Null, object_or_null),
        "body": body,
        "isBase64Encoded": b64,
    })
}

/// An HTTP response made from a function's result.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

fn json_reply(body: Vec<u8>) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    Reply {
        status: StatusCode::OK,
        headers,
        body,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Headers that frame the connection, which the gateway owns: a function's are dropped.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn put_header(h: &mut HeaderMap, name: &str, value: &str, append: bool) -> Result<(), ()> {
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ())?;
    if HOP_BY_HOP.contains(&n.as_str()) {
        return Ok(());
    }
    let v = HeaderValue::from_str(value).map_err(|_| ())?;
    if append {
        h.append(n, v);
    } else {
        h.insert(n, v);
    }
    Ok(())
}

/// A structured response (`statusCode` present): headers, multi-value headers, cookies, body.
fn structured(o: &Map<String, Value>) -> Result<Reply, ()> {
    let status = match &o["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u16::try_from(n).ok())
    .and_then(|n| StatusCode::from_u16(n).ok())
    .ok_or(())?;
    let mut headers = HeaderMap::new();
    if let Some(Value::Object(h)) = o.get("headers") {
        for (k, v) in h {
            put_header(&mut headers, k, &scalar_text(v).ok_or(())?, false)?;
        }
    }
    if let Some(Value::Object(h)) = o.get("multiValueHeaders") {
        for (k, vs) in h {
            let Value::Array(vs) = vs else { return Err(()) };
            for v in vs {
                let v = scalar_text(v).ok_or(())?;
                // A pair given in both `headers` and `multiValueHeaders` is sent once.
                if !headers.get_all(k.as_str()).iter().any(|e| e == v.as_str()) {
                    put_header(&mut headers, k, &v, true)?;
                }
            }
        }
    }
    if let Some(Value::Array(cookies)) = o.get("cookies") {
        for c in cookies {
            put_header(&mut headers, "set-cookie", c.as_str().ok_or(())?, true)?;
        }
    }
    let body = match o.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if o.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| ())?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Maps a payload 2.0 result: a structured response if it has `statusCode`, otherwise the
/// result itself as a `200 application/json` body (a JSON string unquoted). `Err` when the
/// result is not JSON or its structure is invalid.
pub fn reply_v2(result: &[u8]) -> Result<Reply, ()> {
    let v: Value = serde_json::from_slice(result).map_err(|_| ())?;
    match v {
        Value::Object(o) if o.contains_key("statusCode") => structured(&o),
        Value::String(s) => Ok(json_reply(s.into_bytes())),
        other => Ok(json_reply(other.to_string().into_bytes())),
    }
}

/// Maps a payload 1.0 result, which must be structured.
pub fn reply_v1(result: &[u8]) -> Result<Reply, ()> {
    match serde_json::from_slice(result).map_err(|_| ())? {
        Value::Object(o) if o.contains_key("statusCode") => structured(&o),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests;
