//! CORS for function URLs and HTTP APIs: preflight requests are answered by Lamina, and the
//! configured headers are put on every response in place of any the function set.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

/// A CORS configuration, in Lambda's casing (`Cors` of a function URL). HTTP APIs use the
/// same members in lower camel case, converted at their edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Cors {
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Whether credentials (cookies, authorization headers) may be sent.
    pub allow_credentials: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Request headers allowed.
    pub allow_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Methods allowed (`*` for all).
    pub allow_methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Origins allowed (`*` for all).
    pub allow_origins: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Response headers a page may read.
    pub expose_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// How long (seconds) a browser may cache a preflight answer.
    pub max_age: Option<i64>,
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

impl Cors {
    /// Lambda's limits on a function URL's configuration; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.check(6, 0)
    }

    /// API Gateway's limits on an HTTP API's configuration (`maxAge` may be -1).
    pub fn validate_api(&self) -> Result<(), String> {
        self.check(100, -1)
    }

    fn check(&self, max_methods: usize, min_age: i64) -> Result<(), String> {
        let check = |name: &str, v: &Option<Vec<String>>, max: usize| {
            let v = list(v);
            if v.len() > max {
                return Err(format!("{name} can have at most {max} entries."));
            }
            if v.iter().any(|s| s.is_empty() || s.len() > 253) {
                return Err(format!("Each entry of {name} must be 1 to 253 characters."));
            }
            Ok(())
        };
        check("AllowHeaders", &self.allow_headers, 100)?;
        check("AllowMethods", &self.allow_methods, max_methods)?;
        check("AllowOrigins", &self.allow_origins, 100)?;
        check("ExposeHeaders", &self.expose_headers, 100)?;
        const METHODS: [&str; 8] = [
            "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*",
        ];
        if let Some(m) = list(&self.allow_methods)
            .iter()
            .find(|m| !METHODS.contains(&m.to_ascii_uppercase().as_str()))
        {
            return Err(format!("AllowMethods contains an invalid method: {m}."));
        }
        if let Some(age) = self.max_age
            && !(min_age..=86400).contains(&age)
        {
            return Err(format!("MaxAge must be between {min_age} and 86400."));
        }
        Ok(())
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    fn allow_origin(&self, origin: &str) -> Option<HeaderValue> {
        let origins = list(&self.allow_origins);
        if origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        origins
            .iter()
            .find(|o| o.eq_ignore_ascii_case(origin))
            .and_then(|o| HeaderValue::from_str(o).ok())
    }

    /// The answer to a preflight request, if `method`/`headers` are one: `None` when the
    /// request is not a preflight (it goes to the function).
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<HeaderMap> {
        if method != Method::OPTIONS {
            return None;
        }
        let origin = headers.get("origin")?.to_str().ok()?;
        let wanted = headers
            .get("access-control-request-method")?
            .to_str()
            .ok()?;
        let mut out = HeaderMap::new();
        let Some(allow) = self.allow_origin(origin) else {
            return Some(out);
        };
        let methods = list(&self.allow_methods);
        if !methods
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(wanted))
        {
            return Some(out);
        }
        out.insert("access-control-allow-origin", allow);
        set_list(&mut out, "access-control-allow-methods", methods);
        set_list(
            &mut out,
            "access-control-allow-headers",
            list(&self.allow_headers),
        );
        set_list(
            &mut out,
            "access-control-expose-headers",
            list(&self.expose_headers),
        );
        if let Some(age) = self.max_age {
            out.insert("access-control-max-age", HeaderValue::from(age));
        }
        if self.allow_credentials == Some(true) {
            out.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
        }
        Some(out)
    }

    /// Puts the configured headers on a response to a request from `origin`, removing any
    /// `Access-Control-*` header the function set.
    pub fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        let stale: Vec<HeaderName> = response
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for k in stale {
            response.remove(k);
        }
        let Some(origin) = request.get("origin").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let Some(allow) = self.allow_origin(origin) else {
            return;
        };
        response.insert("access-control-allow-origin", allow);
        set_list(
            response,
            "access-control-expose-headers",
            list(&self.expose_headers),
        );
        if self.allow_credentials == Some(true) {
            response.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
        }
        if !list(&self.allow_origins).iter().any(|o| o == "*") {
            response.append("vary", HeaderValue::from_static("Origin"));
        }
    }
}

fn set_list(h: &mut HeaderMap, name: &'static str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&values.join(",")) {
        h.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors {
            allow_origins: Some(vec!["https://app.example".into()]),
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            allow_headers: Some(vec!["x-token".into()]),
            max_age: Some(300),
            ..Cors::default()
        }
    }

    fn request(origin: &str, method: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("origin", origin.parse().unwrap());
        h.insert("access-control-request-method", method.parse().unwrap());
        h
    }

    #[test]
    fn preflight_from_an_allowed_origin_gets_the_configured_headers() {
        let out = cors()
            .preflight(&Method::OPTIONS, &request("https://app.example", "POST"))
            .unwrap();
        assert_eq!(out["access-control-allow-origin"], "https://app.example");
        assert_eq!(out["access-control-allow-methods"], "GET,POST");
        assert_eq!(out["access-control-allow-headers"], "x-token");
        assert_eq!(out["access-control-max-age"], "300");
    }

    #[test]
    fn preflight_from_another_origin_or_for_another_method_gets_none() {
        let c = cors();
        let out = c
            .preflight(&Method::OPTIONS, &request("https://evil.example", "GET"))
            .unwrap();
        assert!(out.is_empty());
        let out = c
            .preflight(&Method::OPTIONS, &request("https://app.example", "DELETE"))
            .unwrap();
        assert!(out.is_empty());
        assert!(
            c.preflight(&Method::GET, &request("https://app.example", "GET"))
                .is_none()
        );
    }

    #[test]
    fn configured_headers_replace_the_functions() {
        let mut resp = HeaderMap::new();
        resp.insert("access-control-allow-origin", "*".parse().unwrap());
        cors().decorate(&request("https://app.example", "GET"), &mut resp);
        assert_eq!(resp["access-control-allow-origin"], "https://app.example");
        let mut resp = HeaderMap::new();
        resp.insert("access-control-allow-origin", "*".parse().unwrap());
        cors().decorate(&request("https://evil.example", "GET"), &mut resp);
        assert!(resp.get("access-control-allow-origin").is_none());
    }

    #[test]
    fn limits_are_checked() {
        let mut c = cors();
        c.max_age = Some(86401);
        assert!(c.validate().is_err());
        let mut c = cors();
        c.allow_methods = Some(vec!["FETCH".into()]);
        assert!(c.validate().is_err());
        assert!(cors().validate().is_ok());
    }
}
