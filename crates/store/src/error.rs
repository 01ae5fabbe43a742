//! Store errors.

use crate::CodeError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the function does not exist")]
    NotFound,
    #[error("the function already exists")]
    AlreadyExists,
    #[error("the repository still holds images")]
    NotEmpty,
    #[error("the tag '{0}' already names another image and the repository's tags are immutable")]
    Immutable(String),
    #[error(transparent)]
    Blob(#[from] crate::images::BlobError),
    #[error("the revision id does not match the latest revision")]
    RevisionMismatch,
    #[error("code storage limit of {limit} bytes exceeded ({used} bytes in use)")]
    CodeStorageExceeded { used: u64, limit: u64 },
    /// A caller-supplied check refused the change.
    #[error(transparent)]
    Rejected(#[from] lamina_model::LambdaError),
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// An EC2 object is missing, taken or still in use.
    #[error(transparent)]
    Ec2(#[from] crate::Ec2Error),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    /// SNS's quota of subscriptions with a filter policy, per topic or per account, is reached.
    #[error("{0}")]
    FilterPolicyLimit(String),
    /// An image a manifest list of its repository names (its digest).
    #[error("the image is referenced by the manifest list {0}")]
    InIndex(String),
}
