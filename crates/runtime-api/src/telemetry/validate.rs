//! A subscription request's body, checked as Lambda checks it: `400` with a message that says
//! what is wrong.

use std::time::Duration;

use serde::Deserialize;

use super::records::{EXTENSION, FUNCTION, PLATFORM};
use super::{Api, Buffering, Destination, RESERVED_PORT, Subscription};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    schema_version: Option<String>,
    types: Option<Vec<String>>,
    #[serde(default)]
    buffering: Limits,
    destination: Option<Target>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Limits {
    max_items: Option<i64>,
    max_bytes: Option<i64>,
    timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Target {
    protocol: Option<String>,
    #[serde(rename = "URI")]
    uri: Option<String>,
    port: Option<i64>,
}

/// `maxItems`, `maxBytes` and `timeoutMs`: least, most and default.
const ITEMS: (i64, i64, i64) = (1_000, 10_000, 10_000);
const BYTES: (i64, i64, i64) = (262_144, 1_048_576, 262_144);
const TIMEOUT_MS: (i64, i64, i64) = (25, 30_000, 1_000);

/// The subscription `body` asks for, through the Logs API if `logs`, or why it is refused.
pub(super) fn parse(body: &[u8], logs: bool) -> Result<Subscription, String> {
    let b: Body = serde_json::from_slice(body).map_err(|e| format!("failed to parse JSON: {e}"))?;
    let api = match (logs, b.schema_version.as_deref()) {
        (false, Some("2022-07-01" | "2022-12-13" | "2025-01-29")) => Api::Telemetry,
        (false, Some(v)) => {
            return Err(format!(
                "schemaVersion {v:?} is not supported; use \"2022-12-13\" or \"2022-07-01\""
            ));
        }
        (false, None) => return Err("schemaVersion is required".into()),
        (true, None | Some("2020-08-15")) => Api::Logs {
            runtime_done: false,
        },
        (true, Some("2021-03-18")) => Api::Logs { runtime_done: true },
        (true, Some(v)) => {
            return Err(format!(
                "schemaVersion {v:?} is not supported; use \"2021-03-18\" or \"2020-08-15\""
            ));
        }
    };
    let mut types = 0;
    for t in b.types.unwrap_or_default() {
        types |= match t.as_str() {
            "platform" => PLATFORM,
            "function" => FUNCTION,
            "extension" => EXTENSION,
            other => {
                return Err(format!(
                    "types: {other:?} is not one of \"platform\", \"function\", \"extension\""
                ));
            }
        };
    }
    if types == 0 {
        return Err("types should not be empty".into());
    }
    let within = |name: &str, v: Option<i64>, (least, most, default): (i64, i64, i64)| match v {
        None => Ok(default),
        Some(v) if (least..=most).contains(&v) => Ok(v),
        Some(v) => Err(format!(
            "buffering.{name} is {v}; it must be between {least} and {most}"
        )),
    };
    let buffering = Buffering {
        max_items: within("maxItems", b.buffering.max_items, ITEMS)? as usize,
        max_bytes: within("maxBytes", b.buffering.max_bytes, BYTES)? as usize,
        timeout: Duration::from_millis(
            within("timeoutMs", b.buffering.timeout_ms, TIMEOUT_MS)? as u64
        ),
    };
    let target = b.destination.ok_or("destination is required")?;
    let destination = match target.protocol.as_deref() {
        Some("HTTP") => http(target.uri.as_deref().ok_or("destination.URI is required")?)?,
        Some("TCP") => Destination::Tcp {
            port: match (target.port, target.uri.as_deref()) {
                (Some(p), _) => port(p)?,
                (None, Some(uri)) => tcp_port(uri)?,
                (None, None) => return Err("destination.port is required".into()),
            },
        },
        Some(p) => {
            return Err(format!(
                "destination.protocol {p:?} is not one of \"HTTP\", \"TCP\""
            ));
        }
        None => return Err("destination.protocol is required".into()),
    };
    Ok(Subscription {
        api,
        types,
        buffering,
        destination,
    })
}

/// `http://sandbox.localdomain:PORT[/PATH]` (or `sandbox`): Lambda sends records only inside
/// the execution environment.
fn http(uri: &str) -> Result<Destination, String> {
    let u: hyper::Uri = uri
        .parse()
        .map_err(|e| format!("Invalid destination: destination.URI {uri:?}: {e}"))?;
    if u.scheme_str() != Some("http") {
        return Err("Invalid destination: destination.URI must be http://".into());
    }
    let host = u.host().unwrap_or_default().to_ascii_lowercase();
    if host != "sandbox.localdomain" && host != "sandbox" {
        return Err("Invalid destination: destination.URI host must be sandbox.localdomain".into());
    }
    let p = u.port_u16().ok_or("URI port is not provided")?;
    let port = port(p as i64)?;
    let path = u.path_and_query().map_or("/", |p| p.as_str());
    Ok(Destination::Http {
        port,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
        host: format!("{host}:{port}"),
    })
}

fn tcp_port(uri: &str) -> Result<u16, String> {
    let u: hyper::Uri = uri
        .parse()
        .map_err(|e| format!("Invalid destination: destination.URI {uri:?}: {e}"))?;
    port(u.port_u16().ok_or("URI port is not provided")? as i64)
}

fn port(p: i64) -> Result<u16, String> {
    match u16::try_from(p) {
        Ok(p) if p != 0 && p != RESERVED_PORT => Ok(p),
        _ => Err(format!(
            "Invalid destination: port {p} is not a port an extension may listen on"
        )),
    }
}
