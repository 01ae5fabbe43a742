//! Runtime identifiers: Lambda's `Runtime` enum.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::LambdaError;

/// Runtime identifiers Lambda accepts today for creating and updating functions.
pub const KNOWN_RUNTIMES: &[&str] = &[
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "java11",
    "java17",
    "java21",
    "java25",
    "dotnet8",
    "dotnet10",
    "ruby3.3",
    "ruby3.4",
    "provided.al2",
    "provided.al2023",
];

/// Runtime identifiers Lambda once had and now refuses for new code.
const DEPRECATED_RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "nodejs4.3-edge",
    "java8",
    "java8.al2",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "dotnet7",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "ruby3.2",
    "provided",
];

/// A runtime identifier from Lambda's enum, e.g. `python3.12` or `provided.al2023`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Runtime(String);

impl Runtime {
    pub fn parse(s: &str) -> Result<Self, LambdaError> {
        if KNOWN_RUNTIMES.contains(&s) {
            return Ok(Self(s.to_owned()));
        }
        if DEPRECATED_RUNTIMES.contains(&s) {
            return Err(LambdaError::invalid_parameter(format!(
                "The runtime parameter of {s} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
            )));
        }
        Err(LambdaError::invalid_parameter(format!(
            "Value {s} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] or be a valid ARN",
            KNOWN_RUNTIMES.join(", ")
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language family: `python`, `nodejs`, `provided`, ...
    pub fn family(&self) -> &str {
        let end = self
            .0
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(self.0.len());
        &self.0[..end]
    }
}

impl TryFrom<String> for Runtime {
    type Error = LambdaError;
    fn try_from(s: String) -> Result<Self, LambdaError> {
        Self::parse(&s)
    }
}

impl From<Runtime> for String {
    fn from(r: Runtime) -> String {
        r.0
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_deprecated_unknown() {
        assert_eq!(Runtime::parse("python3.12").unwrap().family(), "python");
        assert_eq!(
            Runtime::parse("provided.al2023").unwrap().family(),
            "provided"
        );
        assert_eq!(Runtime::parse("nodejs22.x").unwrap().family(), "nodejs");
        assert!(
            Runtime::parse("python2.7")
                .unwrap_err()
                .message
                .contains("no longer supported")
        );
        assert!(
            Runtime::parse("cobol")
                .unwrap_err()
                .message
                .contains("enum value set")
        );
    }
}
