//! Query strings: `application/x-www-form-urlencoded` pairs, repeated keys kept.

use percent_encoding::percent_decode_str;

/// Decodes a raw query string into (name, value) pairs, in order.
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_decode_str(&s).decode_utf8_lossy().into_owned()
}

/// A parsed query string.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string, if any.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(raw.map(pairs).unwrap_or_default())
    }
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_keeps_repeats() {
        let q = Query::parse(Some("Qualifier=%24LATEST&tagKeys=a&tagKeys=b%20c&x"));
        assert_eq!(q.get("Qualifier"), Some("$LATEST"));
        assert_eq!(q.all("tagKeys"), ["a", "b c"]);
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("y"), None);
    }
}
