//! Query strings: `application/x-www-form-urlencoded` pairs, repeated keys kept; and the
//! parameters of the AWS query protocols (SNS's `query`, EC2's `ec2`), where lists and maps are
//! flattened into indexed names (`Tags.member.1.Key`, `SubnetId.2`).

use std::collections::BTreeMap;

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

/// Why a query-protocol parameter was refused. Each service words these in its own errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter is absent.
    #[error("the request must contain the parameter {0}")]
    Missing(String),
    /// A boolean parameter holds something else.
    #[error("the parameter {name} must be true or false, not '{value}'")]
    NotBoolean {
        /// The parameter.
        name: String,
        /// What it held.
        value: String,
    },
    /// A list or map index that is not a whole number from 1.
    #[error(
        "The list or map parameter {key} has an invalid index '{index}': indexes are whole numbers from 1."
    )]
    BadIndex {
        /// The parameter's full name.
        key: String,
        /// Its index part.
        index: String,
    },
    /// A list member or map entry without its parts.
    #[error("{0}")]
    Malformed(String),
}

/// The decoded parameters of a query-protocol request (form body and query string).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// From decoded pairs; the first occurrence of a name wins.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// A scalar parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required scalar parameter.
    pub fn required(&self, name: &str) -> Result<&str, ParamError> {
        self.get(name)
            .ok_or_else(|| ParamError::Missing(name.to_owned()))
    }

    /// A boolean parameter (`true`/`false`, any case).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ParamError::NotBoolean {
                name: name.to_owned(),
                value: v.to_owned(),
            }),
        }
    }

    /// The parameters under `prefix.N.`, in order of N, each with the prefix stripped (a
    /// scalar `prefix.N` becomes the name `""`). Indexes must be positive integers.
    pub fn indexed(&self, prefix: &str) -> Result<Vec<Params>, ParamError> {
        let head = format!("{prefix}.");
        let mut groups: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&head) else {
                continue;
            };
            let (index, tail) = rest.split_once('.').unwrap_or((rest, ""));
            let n = index
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1 && !index.starts_with('+'))
                .ok_or_else(|| ParamError::BadIndex {
                    key: k.clone(),
                    index: index.to_owned(),
                })?;
            groups
                .entry(n)
                .or_default()
                .push((tail.to_owned(), v.clone()));
        }
        Ok(groups.into_values().map(Params).collect())
    }

    /// A list of strings flattened as `prefix.N`, in order of N.
    pub fn strings(&self, prefix: &str) -> Result<Vec<String>, ParamError> {
        self.indexed(prefix)?
            .into_iter()
            .map(|p| {
                p.get("").map(str::to_owned).ok_or_else(|| {
                    ParamError::Malformed(format!("{prefix}: malformed list member"))
                })
            })
            .collect()
    }

    /// A string list (`Name.member.N`).
    pub fn list(&self, name: &str) -> Result<Vec<String>, ParamError> {
        self.indexed(&format!("{name}.member"))?
            .into_iter()
            .map(|p| {
                p.get("")
                    .map(str::to_owned)
                    .ok_or_else(|| ParamError::Malformed(format!("{name}: malformed list member")))
            })
            .collect()
    }

    /// A list of structures (`Name.member.N.Field`).
    pub fn members(&self, name: &str) -> Result<Vec<Params>, ParamError> {
        self.indexed(&format!("{name}.member"))
    }

    /// A string map (`Name.entry.N.key`, `Name.entry.N.value`).
    pub fn map(&self, name: &str) -> Result<BTreeMap<String, String>, ParamError> {
        let mut out = BTreeMap::new();
        for entry in self.indexed(&format!("{name}.entry"))? {
            let key = entry
                .get("key")
                .ok_or_else(|| ParamError::Malformed(format!("{name}: a map entry has no key")))?;
            out.insert(key.to_owned(), entry.get("value").unwrap_or("").to_owned());
        }
        Ok(out)
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

    fn params(raw: &str) -> Params {
        Params::new(pairs(raw))
    }

    #[test]
    fn maps_lists_and_members_come_in_index_order() {
        let p = params(
            "Attributes.entry.2.key=b&Attributes.entry.2.value=2&Attributes.entry.1.key=a&Attributes.entry.1.value=%3C1%3E\
             &TagKeys.member.10=k10&TagKeys.member.2=k2&Tags.member.1.Key=x&Tags.member.1.Value=y\
             &SubnetId.2=subnet-b&SubnetId.1=subnet-a",
        );
        let m = p.map("Attributes").unwrap();
        assert_eq!(m["a"], "<1>");
        assert_eq!(m["b"], "2");
        assert_eq!(p.list("TagKeys").unwrap(), ["k2", "k10"]);
        let tags = p.members("Tags").unwrap();
        assert_eq!(
            (tags[0].get("Key"), tags[0].get("Value")),
            (Some("x"), Some("y"))
        );
        assert_eq!(p.strings("SubnetId").unwrap(), ["subnet-a", "subnet-b"]);
        assert_eq!(p.required("Nope"), Err(ParamError::Missing("Nope".into())));
    }

    #[test]
    fn malformed_indexes_are_refused() {
        for raw in [
            "TagKeys.member.0=a",
            "TagKeys.member.x=a",
            "TagKeys.member.-1=a",
            "TagKeys.member.+1=a",
            "TagKeys.member.=a",
        ] {
            let e = params(raw).list("TagKeys").unwrap_err();
            assert!(matches!(e, ParamError::BadIndex { .. }), "{raw}: {e:?}");
        }
        assert!(matches!(
            params("SubnetId.1.x=a").strings("SubnetId"),
            Err(ParamError::Malformed(_))
        ));
    }
}
