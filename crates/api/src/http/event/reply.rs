//! How a function's result becomes the HTTP response (payload formats 2.0 and 1.0).
//!
//! The result is read once, without a JSON tree: the members a structured response uses are
//! borrowed as raw JSON and each read on its own; a bare result is passed on as the function
//! wrote it, without its whitespace.

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

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

/// The members of a result object that the gateway reads, each as raw JSON; others are
/// skipped. `null` counts as absent, except for `statusCode`, whose presence alone makes the
/// response structured.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Members<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    status_code: Option<&'a RawValue>,
    #[serde(default, borrow)]
    headers: Option<&'a RawValue>,
    #[serde(default, borrow)]
    multi_value_headers: Option<&'a RawValue>,
    #[serde(default, borrow)]
    cookies: Option<&'a RawValue>,
    #[serde(default, borrow)]
    body: Option<&'a RawValue>,
    #[serde(default, borrow)]
    is_base64_encoded: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A header's value: a string, number or boolean, as text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(
                    serde_json::Number::from_f64(v)
                        .map_or_else(|| v.to_string(), |n| n.to_string()),
                ))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON object's members in the order written.
struct Entries<T>(Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries<T>, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
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

/// Header fields a function's response may set, at most: beyond, it is not a valid response
/// (502), as a client could not take it either, and the server's work stays bounded.
pub(crate) const MAX_HEADER_FIELDS: usize = 1000;

fn put_header(h: &mut HeaderMap, name: &str, value: &str, append: bool) -> Result<(), ()> {
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ())?;
    if HOP_BY_HOP.contains(&n.as_str()) {
        return Ok(());
    }
    if h.len() >= MAX_HEADER_FIELDS {
        return Err(());
    }
    let v = HeaderValue::from_str(value).map_err(|_| ())?;
    if append {
        h.append(n, v);
    } else {
        h.insert(n, v);
    }
    Ok(())
}

/// Reads one member, as `T`.
fn read<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, ()> {
    serde_json::from_str(raw.get()).map_err(|_| ())
}

/// The first byte of a JSON text that is not whitespace.
fn first(raw: &str) -> Option<u8> {
    raw.bytes().find(|b| !b.is_ascii_whitespace())
}

/// A structured response (`statusCode` present): headers, multi-value headers, cookies, body.
fn structured(m: &Members<'_>) -> Result<Reply, ()> {
    let status = m.status_code.ok_or(())?;
    let status = match first(status.get()) {
        Some(b'"') => read::<Cow<'_, str>>(status)?
            .parse::<u64>()
            .map_err(|_| ())?,
        _ => read::<u64>(status)?,
    };
    // An informational status (1xx) cannot end an exchange: such a response is invalid.
    let status = u16::try_from(status)
        .ok()
        .and_then(|n| StatusCode::from_u16(n).ok())
        .filter(|s| !s.is_informational())
        .ok_or(())?;
    let mut headers = HeaderMap::new();
    if let Some(h) = m.headers.filter(|h| first(h.get()) == Some(b'{')) {
        for (k, Scalar(v)) in read::<Entries<Scalar>>(h)?.0 {
            put_header(&mut headers, &k, &v, false)?;
        }
    }
    if let Some(h) = m
        .multi_value_headers
        .filter(|h| first(h.get()) == Some(b'{'))
    {
        // A pair given in both `headers` (one value per name) and `multiValueHeaders` is sent
        // once. (`lambda_http` sends an empty `multiValueHeaders`: nothing to copy then.)
        let entries = read::<Entries<Vec<Scalar>>>(h)?.0;
        let single = if entries.is_empty() {
            HeaderMap::new()
        } else {
            headers.clone()
        };
        for (k, vs) in entries {
            for Scalar(v) in vs {
                if single.get(k.as_str()).is_none_or(|e| e != v.as_str()) {
                    put_header(&mut headers, &k, &v, true)?;
                }
            }
        }
    }
    if let Some(c) = m.cookies.filter(|c| first(c.get()) == Some(b'[')) {
        for c in read::<Vec<Cow<'_, str>>>(c)? {
            put_header(&mut headers, "set-cookie", &c, true)?;
        }
    }
    let base64 = m
        .is_base64_encoded
        .is_some_and(|b| b.get().trim() == "true");
    let body = match m.body {
        None => Vec::new(),
        Some(b) if first(b.get()) == Some(b'"') => {
            let s = read::<Cow<'_, str>>(b)?;
            if base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|_| ())?
            } else {
                s.into_owned().into_bytes()
            }
        }
        Some(other) => compact(other.get().as_bytes()),
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A valid JSON text without the whitespace between its tokens.
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        out.push(b);
    }
    out
}

/// Maps a payload 2.0 result: a structured response if it has `statusCode`, otherwise the
/// result itself as a `200 application/json` body (a JSON string unquoted). `Err` when the
/// result is not JSON or its structure is invalid.
pub fn reply_v2(result: &[u8]) -> Result<Reply, ()> {
    let text = std::str::from_utf8(result).map_err(|_| ())?;
    match first(text) {
        Some(b'{') => {
            let m: Members<'_> = serde_json::from_str(text).map_err(|_| ())?;
            if m.status_code.is_some() {
                structured(&m)
            } else {
                Ok(json_reply(compact(result)))
            }
        }
        Some(b'"') => {
            let s: Cow<'_, str> = serde_json::from_str(text).map_err(|_| ())?;
            Ok(json_reply(s.into_owned().into_bytes()))
        }
        _ => {
            serde_json::from_str::<IgnoredAny>(text).map_err(|_| ())?;
            Ok(json_reply(compact(result)))
        }
    }
}

/// Maps a payload 1.0 result, which must be structured.
pub fn reply_v1(result: &[u8]) -> Result<Reply, ()> {
    let text = std::str::from_utf8(result).map_err(|_| ())?;
    if first(text) != Some(b'{') {
        return Err(());
    }
    structured(&serde_json::from_str(text).map_err(|_| ())?)
}
