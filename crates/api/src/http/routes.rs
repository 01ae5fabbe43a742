//! Route keys of HTTP APIs and route selection: a full match with static segments beating
//! `{param}` ones, then the most specific greedy `{proxy+}` match, then `$default`; a route for
//! the request's method beats `ANY`. Pure.

use serde_json::{Map, Value};

/// The methods a route key may name.
pub const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// A parsed route key other than `$default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteKey {
    /// `None` for `ANY`.
    method: Option<String>,
    segments: Vec<Segment>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Parses `METHOD /path`; `Ok(None)` for `$default`. The error says what is wrong.
pub fn parse(key: &str) -> Result<Option<RouteKey>, String> {
    if key == "$default" {
        return Ok(None);
    }
    let invalid = |why: &str| format!("Invalid route key '{key}': {why}");
    let (method, path) = key
        .split_once(' ')
        .ok_or_else(|| invalid("expected '$default' or '<METHOD> /<path>'"))?;
    if !METHODS.contains(&method) {
        return Err(invalid(&format!(
            "the method must be one of {}",
            METHODS.join(", ")
        )));
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| invalid("the path must start with '/'"))?;
    let mut segments = Vec::new();
    if !rest.is_empty() {
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, s) in parts.iter().enumerate() {
            let seg = if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if let Some(name) = inner.strip_suffix('+') {
                    if i + 1 != parts.len() {
                        return Err(invalid("a greedy path variable must be the last segment"));
                    }
                    if !is_name(name) {
                        return Err(invalid("a path variable needs a name"));
                    }
                    Segment::Greedy(name.to_owned())
                } else if is_name(inner) {
                    Segment::Param(inner.to_owned())
                } else {
                    return Err(invalid("a path variable needs a name"));
                }
            } else if s.is_empty() || s.contains(['{', '}', ' ']) {
                return Err(invalid("empty segments and stray braces are not allowed"));
            } else {
                Segment::Literal((*s).to_owned())
            };
            segments.push(seg);
        }
    }
    Ok(Some(RouteKey {
        method: (method != "ANY").then(|| method.to_owned()),
        segments,
    }))
}

/// How well a route matches: greater is better.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// A full match beats a greedy one.
    full: bool,
    /// Per segment: 2 literal, 1 parameter (compared in order); for greedy routes, the more
    /// segments before the greedy one, the better.
    specificity: Vec<u8>,
    /// The request's own method beats `ANY`.
    exact_method: bool,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn matches(key: &RouteKey, method: &str, path: &[String]) -> Option<(Rank, Map<String, Value>)> {
    if key.method.as_deref().is_some_and(|m| m != method) {
        return None;
    }
    let mut params = Map::new();
    let mut specificity = Vec::with_capacity(key.segments.len());
    let mut full = true;
    for (i, seg) in key.segments.iter().enumerate() {
        match seg {
            Segment::Greedy(name) => {
                let rest = path
                    .get(i..)
                    .filter(|r| !r.is_empty() && r.iter().any(|s| !s.is_empty()))?;
                params.insert(name.clone(), Value::String(rest.join("/")));
                full = false;
                break;
            }
            Segment::Literal(l) => {
                if path.get(i)? != l {
                    return None;
                }
                specificity.push(2);
            }
            Segment::Param(name) => {
                let v = path.get(i).filter(|v| !v.is_empty())?;
                params.insert(name.clone(), Value::String(v.clone()));
                specificity.push(1);
            }
        }
    }
    if full && path.len() != key.segments.len() {
        return None;
    }
    Some((
        Rank {
            full,
            specificity,
            exact_method: key.method.is_some(),
        },
        params,
    ))
}

/// The path's segments, each percent-decoded once (`/` has none): routes are matched, and
/// route ARNs named, on decoded segments, so `/%61dmin` is `/admin`.
pub fn segments(path: &str) -> Vec<String> {
    let p = path.strip_prefix('/').unwrap_or(path);
    if p.is_empty() {
        Vec::new()
    } else {
        p.split('/').map(decode).collect()
    }
}

/// Picks the route for `method` and `path` among `(id, key)` pairs, with its path parameters;
/// `$default` when nothing else matches.
pub fn select<'a>(
    routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    method: &str,
    path: &str,
) -> Option<(&'a str, Map<String, Value>)> {
    let segs = segments(path);
    let mut best: Option<(Rank, &'a str, Map<String, Value>)> = None;
    let mut default = None;
    for (id, key) in routes {
        match parse(key) {
            Ok(None) => default = Some(id),
            Ok(Some(k)) => {
                if let Some((rank, params)) = matches(&k, method, &segs)
                    && best.as_ref().is_none_or(|(b, _, _)| rank > *b)
                {
                    best = Some((rank, id, params));
                }
            }
            Err(_) => {}
        }
    }
    best.map(|(_, id, p)| (id, p))
        .or_else(|| default.map(|id| (id, Map::new())))
}

/// The path part of a route key (`$default` for the default route).
pub fn resource(key: &str) -> &str {
    key.split_once(' ').map_or(key, |(_, p)| p)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ROUTES: &[(&str, &str)] = &[
        ("r1", "GET /pets/dog/1"),
        ("r2", "GET /pets/dog/{id}"),
        ("r3", "GET /pets/{proxy+}"),
        ("r4", "ANY /{proxy+}"),
        ("r5", "$default"),
        ("r6", "POST /pets"),
        ("r7", "ANY /pets"),
    ];

    fn pick(method: &str, path: &str) -> (String, Map<String, Value>) {
        let (id, p) = select(ROUTES.iter().copied(), method, path).unwrap();
        (id.to_owned(), p)
    }

    #[test]
    fn the_documented_examples() {
        assert_eq!(pick("GET", "/pets/dog/1").0, "r1");
        let (id, p) = pick("GET", "/pets/dog/2");
        assert_eq!((id.as_str(), p["id"].as_str()), ("r2", Some("2")));
        let (id, p) = pick("GET", "/pets/cat/1");
        assert_eq!((id.as_str(), p["proxy"].as_str()), ("r3", Some("cat/1")));
        assert_eq!(pick("POST", "/test/5").0, "r4");
        assert_eq!(pick("POST", "/pets").0, "r6");
        assert_eq!(pick("DELETE", "/pets").0, "r7");
        assert_eq!(pick("GET", "/").0, "r5");
    }

    #[test]
    fn segments_are_decoded_once_before_matching() {
        assert_eq!(pick("GET", "/pets/%64og/1").0, "r1");
        let (id, p) = pick("GET", "/pets/dog/a%2520b");
        assert_eq!((id.as_str(), p["id"].as_str()), ("r2", Some("a%20b")));
        let (id, p) = pick("GET", "/pets/%252e%252e/x");
        assert_eq!((id.as_str(), p["proxy"].as_str()), ("r3", Some("%2e%2e/x")));
    }

    #[test]
    fn no_match_without_default_is_none() {
        assert!(select([("a", "GET /a")], "GET", "/b").is_none());
        assert!(select([("a", "GET /a/{x}")], "GET", "/a").is_none());
        assert!(select([("a", "GET /a/{x+}")], "GET", "/a").is_none());
    }

    #[test]
    fn keys_are_validated() {
        assert!(parse("GET /a/{b}/c").is_ok());
        assert!(parse("$default").unwrap().is_none());
        assert!(parse("GET /").unwrap().is_some());
        for bad in [
            "GET",
            "FETCH /a",
            "GET a",
            "GET /a//b",
            "GET /{x+}/b",
            "GET /{}",
            "get /a",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// A literal route for the exact path always wins, whatever else is defined.
        #[test]
        fn an_exact_route_always_wins(segs in proptest::collection::vec("[a-z]{1,4}", 1..5)) {
            let path = format!("/{}", segs.join("/"));
            let exact = format!("GET {path}");
            let mut with_params: Vec<String> = segs.clone();
            with_params[0] = "{p}".into();
            let param = format!("GET /{}", with_params.join("/"));
            let routes = [("g", "ANY /{proxy+}"), ("p", param.as_str()), ("e", exact.as_str()), ("d", "$default")];
            let (id, _) = select(routes, "GET", &path).unwrap();
            prop_assert_eq!(id, "e");
            // Without the exact route, the parameter route beats the greedy one.
            let (id, p) = select([routes[0], routes[1], routes[3]], "GET", &path).unwrap();
            prop_assert_eq!(id, "p");
            prop_assert_eq!(p["p"].as_str(), Some(segs[0].as_str()));
        }
    }
}
