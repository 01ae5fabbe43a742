//! Function names, qualifiers, and the many ways a `FunctionName` parameter can name a function.
//!
//! Lambda's `FunctionName` accepts a bare name, `name:qualifier`, a partial ARN
//! (`123456789012:function:name[:qualifier]`) or a full ARN
//! (`arn:aws:lambda:us-east-1:123456789012:function:name[:qualifier]`). [`FunctionRef::parse`]
//! turns all of them into one typed value.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::arn::is_region;
use crate::{AccountId, LambdaError, Region};

const NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A bare function name: `[a-zA-Z0-9-_]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionName(String);

impl FunctionName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, LambdaError> {
        if s.is_empty() || !s.bytes().all(is_name_char) {
            return Err(LambdaError::validation(
                s,
                "functionName",
                &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"),
            ));
        }
        if s.len() > Self::MAX_LEN {
            return Err(LambdaError::invalid_parameter(format!(
                "Function name '{s}' is {} characters long; names can be at most {} characters",
                s.len(),
                Self::MAX_LEN
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FunctionName {
    type Error = LambdaError;
    fn try_from(s: String) -> Result<Self, LambdaError> {
        Self::parse(&s)
    }
}

impl From<FunctionName> for String {
    fn from(n: FunctionName) -> String {
        n.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which version of a function a request is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Qualifier {
    /// `$LATEST`, the mutable head.
    Latest,
    /// A published version number.
    Version(u64),
    /// An alias name (never all digits).
    Alias(String),
}

impl Qualifier {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, LambdaError> {
        let err = || {
            LambdaError::validation(
                s,
                "qualifier",
                "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
            )
        };
        if s == "$LATEST" {
            return Ok(Qualifier::Latest);
        }
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.bytes().all(is_name_char) {
            return Err(err());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Qualifier::Version).map_err(|_| err());
        }
        Ok(Qualifier::Alias(s.to_owned()))
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Latest => f.write_str("$LATEST"),
            Qualifier::Version(n) => write!(f, "{n}"),
            Qualifier::Alias(a) => f.write_str(a),
        }
    }
}

/// A function as named by a `FunctionName` parameter.
///
/// `account` and `region` are present only when the caller wrote an ARN; the API checks them
/// against the caller's own account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub region: Option<Region>,
    pub account: Option<AccountId>,
    pub name: FunctionName,
    pub qualifier: Option<Qualifier>,
}

impl FunctionRef {
    /// Longest `FunctionName` accepted by read and invoke operations.
    pub const MAX_LEN: usize = 256;

    /// Parses any accepted form of the `FunctionName` parameter.
    pub fn parse(s: &str) -> Result<Self, LambdaError> {
        let invalid = || {
            LambdaError::validation(
                s,
                "functionName",
                &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"),
            )
        };
        if s.is_empty() {
            return Err(LambdaError::validation(
                s,
                "functionName",
                "Member must have length greater than or equal to 1",
            ));
        }
        if s.len() > Self::MAX_LEN {
            return Err(LambdaError::validation(
                s,
                "functionName",
                &format!(
                    "Member must have length less than or equal to {}",
                    Self::MAX_LEN
                ),
            ));
        }
        let parts: Vec<&str> = s.split(':').collect();
        let (region, account, name, qualifier) = match parts.as_slice() {
            [name] => (None, None, *name, None),
            [name, q] => (None, None, *name, Some(*q)),
            [acct, "function", name] => (None, Some(*acct), *name, None),
            [acct, "function", name, q] => (None, Some(*acct), *name, Some(*q)),
            [
                "arn",
                partition,
                "lambda",
                region,
                acct,
                "function",
                name,
                rest @ ..,
            ] if partition.starts_with("aws") && rest.len() <= 1 => {
                if !is_region(region) {
                    return Err(invalid());
                }
                (Some(*region), Some(*acct), *name, rest.first().copied())
            }
            _ => return Err(invalid()),
        };
        if name.is_empty() || !name.bytes().all(is_name_char) {
            return Err(invalid());
        }
        let account = match account {
            Some(a) => Some(AccountId::parse(a).map_err(|_| invalid())?),
            None => None,
        };
        let region = match region {
            Some(r) => Some(Region::parse(r).map_err(|_| invalid())?),
            None => None,
        };
        let name = FunctionName::parse(name)?;
        let qualifier = match qualifier {
            Some(q) => Some(Qualifier::parse(q).map_err(|_| invalid())?),
            None => None,
        };
        Ok(Self {
            region,
            account,
            name,
            qualifier,
        })
    }

    /// Merges a `Qualifier` query parameter with a qualifier written into the name, as Lambda does.
    pub fn with_qualifier(mut self, query: Option<&str>) -> Result<Self, LambdaError> {
        let Some(q) = query else { return Ok(self) };
        let q = Qualifier::parse(q)?;
        match &self.qualifier {
            Some(existing) if *existing != q => Err(LambdaError::invalid_parameter(
                "The derived qualifier from the function name does not match the specified qualifier.",
            )),
            _ => {
                self.qualifier = Some(q);
                Ok(self)
            }
        }
    }
}

/// The unqualified ARN of a function.
pub fn function_arn(region: &Region, account: &AccountId, name: &FunctionName) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_form() {
        let r = FunctionRef::parse("my-fn").unwrap();
        assert_eq!(r.name.as_str(), "my-fn");
        assert_eq!(r.qualifier, None);

        let r = FunctionRef::parse("my-fn:$LATEST").unwrap();
        assert_eq!(r.qualifier, Some(Qualifier::Latest));

        let r = FunctionRef::parse("123456789012:function:my_fn:7").unwrap();
        assert_eq!(r.account.unwrap().as_str(), "123456789012");
        assert_eq!(r.qualifier, Some(Qualifier::Version(7)));

        let r =
            FunctionRef::parse("arn:aws:lambda:eu-west-1:123456789012:function:f:live").unwrap();
        assert_eq!(r.region.unwrap().as_str(), "eu-west-1");
        assert_eq!(r.qualifier, Some(Qualifier::Alias("live".into())));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "a b",
            "arn:aws:lambda:us-east-1:123:function:f",
            "arn:aws:s3:us-east-1:123456789012:function:f",
            "f:a:b",
            "f:",
            ":f",
            "123456789012:function:",
            "arn:aws:lambda:useast1:123456789012:function:f",
        ] {
            assert!(
                FunctionRef::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        let long = "a".repeat(65);
        let e = FunctionRef::parse(&long).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidParameterValue);
    }

    #[test]
    fn qualifier_query_must_agree() {
        let r = FunctionRef::parse("f:1").unwrap();
        assert!(r.clone().with_qualifier(Some("1")).is_ok());
        let e = r.with_qualifier(Some("2")).unwrap_err();
        assert!(e.message.contains("derived qualifier"));
        let r = FunctionRef::parse("f")
            .unwrap()
            .with_qualifier(Some("$LATEST"))
            .unwrap();
        assert_eq!(r.qualifier, Some(Qualifier::Latest));
    }

    #[test]
    fn qualifiers() {
        assert_eq!(Qualifier::parse("42").unwrap(), Qualifier::Version(42));
        assert!(Qualifier::parse("").is_err());
        assert!(Qualifier::parse("a.b").is_err());
        assert!(Qualifier::parse("99999999999999999999999").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = FunctionRef::parse(&s);
            let _ = Qualifier::parse(&s);
            let _ = FunctionName::parse(&s);
        }

        #[test]
        fn arn_roundtrip(name in "[a-zA-Z0-9_-]{1,64}", acct in "[0-9]{12}", q in proptest::option::of("[a-z][a-z0-9_-]{0,20}")) {
            let mut s = format!("arn:aws:lambda:us-east-1:{acct}:function:{name}");
            if let Some(q) = &q { s.push(':'); s.push_str(q); }
            let r = FunctionRef::parse(&s).unwrap();
            prop_assert_eq!(r.name.as_str(), name.as_str());
            prop_assert_eq!(r.account.map(|a| a.to_string()), Some(acct));
            prop_assert_eq!(r.qualifier.map(|q| q.to_string()), q);
        }
    }
}
