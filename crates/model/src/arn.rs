//! Account ids and regions: the two parts of every ARN that come from the caller's credentials.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::LambdaError;

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, LambdaError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(LambdaError::invalid_parameter(format!(
                "account id '{s}' is not 12 digits"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = LambdaError;
    fn try_from(s: String) -> Result<Self, LambdaError> {
        Self::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region name such as `us-east-1` or `us-gov-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Accepts Lambda's region pattern `[a-z]{2}(-gov)?-[a-z]+-\d{1}`.
    pub fn parse(s: &str) -> Result<Self, LambdaError> {
        if is_region(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(LambdaError::invalid_parameter(format!(
                "'{s}' is not a valid region name (expected something like us-east-1)"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let (cc, rest) = match parts.split_first() {
        Some((cc, rest)) => (cc, rest),
        None => return false,
    };
    let rest = match rest {
        ["gov", rest @ ..] => rest,
        rest => rest,
    };
    let alpha = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    cc.len() == 2
        && alpha(cc)
        && matches!(rest, [name, digit] if alpha(name) && digit.len() == 1 && digit.bytes().all(|b| b.is_ascii_digit()))
}

impl TryFrom<String> for Region {
    type Error = LambdaError;
    fn try_from(s: String) -> Result<Self, LambdaError> {
        Self::parse(&s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in ["us-east-1", "eu-west-3", "us-gov-west-1", "ap-southeast-2"] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-east-1",
            "us-east-12",
            "u-east-1",
            "us-gov-1",
        ] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accounts() {
        assert!(AccountId::parse("000000000000").is_ok());
        assert!(AccountId::parse("12345678901").is_err());
        assert!(AccountId::parse("12345678901a").is_err());
    }
}
