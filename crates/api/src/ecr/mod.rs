//! ECR: the image registry built into the server. Two faces on the one port:
//! - the ECR API (JSON 1.1, `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`, SigV4
//!   scope `ecr`) that `aws ecr` and the SDKs call ([`api`]);
//! - the OCI distribution API under `/v2/` that docker, podman and skopeo push to and pull from
//!   ([`registry`]), authenticated like ECR: user `AWS`, the password `GetAuthorizationToken`
//!   gives ([`token`]).
//!
//! [`resolve`] turns a function's `ImageUri` into the layers its root is built from, from this
//! registry or, where the operator allows it, pulled from another ([`pull`]).

pub mod api;
mod blobs;
pub mod pull;
pub mod registry;
pub mod resolve;
pub mod token;

use std::path::Path;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lamina_model::{AccountId, Region};

/// Lambda's image size limit: every layer uncompressed.
pub const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// Entries across an image's layers.
pub const MAX_IMAGE_ENTRIES: usize = 2_000_000;
/// A manifest or image configuration (the distribution spec's recommended cap).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The registry's settings and its token key.
pub struct EcrState {
    key: [u8; 32],
    /// `host:port` this registry is named by (from the public URL).
    pub(crate) host: String,
    pub(crate) pulls: pull::PullSettings,
    /// Turns to pull from other registries, each pull a process of its own with its memory.
    pub(crate) turns: pull::Turns,
}

impl EcrState {
    /// Loads (creating it at first start) the key that signs registry passwords, in `dir`.
    pub fn open(dir: &Path, public_url: &str, pulls: pull::PullSettings) -> std::io::Result<Self> {
        let key = token::load_key(&dir.join("registry.key"))?;
        let host = url::Url::parse(public_url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| "127.0.0.1".into());
        Ok(Self {
            key,
            host,
            pulls,
            turns: pull::Turns::default(),
        })
    }
}

/// An ECR API error: its type name, HTTP status and message.
#[derive(Debug, Clone)]
pub struct EcrError {
    /// The `__type`.
    pub kind: &'static str,
    /// The status code.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl EcrError {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    pub(crate) fn repository_not_found(name: &str, account: &AccountId) -> Self {
        Self::new(
            "RepositoryNotFoundException",
            format!(
                "The repository with name '{name}' does not exist in the registry with id '{account}'"
            ),
        )
    }
}

impl crate::Internal for EcrError {
    fn internal() -> Self {
        Self {
            kind: "ServerException",
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "An internal error occurred.".into(),
        }
    }
}

impl From<lamina_store::StoreError> for EcrError {
    fn from(e: lamina_store::StoreError) -> Self {
        tracing::error!(error = %e, "registry store error");
        <Self as crate::Internal>::internal()
    }
}

impl IntoResponse for EcrError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.kind, "message": self.message });
        (
            self.status,
            [("content-type", "application/x-amz-json-1.1")],
            body.to_string(),
        )
            .into_response()
    }
}

/// Whether `name` is a repository name ECR accepts: 2–256 characters, lowercase path
/// components of letters and digits joined by `.`, `_`, `__` or dashes.
pub fn valid_repository_name(name: &str) -> bool {
    if !(2..=256).contains(&name.len()) {
        return false;
    }
    name.split('/').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
            && !part.contains("..")
            && !part.contains("._")
            && !part.contains("_.")
            && !part.contains("___")
    })
}

/// The repository key upload sessions belong to.
pub(crate) fn owner(account: &AccountId, region: &Region, name: &str) -> String {
    format!("{account}/{region}/{name}")
}

#[cfg(test)]
mod tests {
    use super::valid_repository_name as ok;

    #[test]
    fn repository_names_follow_ecr() {
        for good in ["fn", "team/fn", "a.b_c-d", "a__b", "a--b/c"] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "a", "Fn", "/fn", "fn/", "a//b", "-a", "a..b", "a___b", "a:b",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
