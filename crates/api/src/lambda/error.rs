//! The one place where errors become HTTP responses.
//!
//! Lambda's wire format: status from the error type, header `x-amzn-ErrorType`, body
//! `{"Type":"User"|"Service","message":"..."}`. Both `message` and `Message` are sent because the
//! model uses either casing depending on the error, and clients read both.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lamina_model::{ErrorKind, LambdaError};
use lamina_store::{ArchiveError, CodeError, StoreError};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong.
    pub error: LambdaError,
    /// Extra body fields, e.g. `Reason` on throttles.
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// The HTTP status for this error type.
    pub fn status(&self) -> StatusCode {
        match self.error.kind {
            ErrorKind::InvalidParameterValue
            | ErrorKind::Validation
            | ErrorKind::CodeStorageExceeded
            | ErrorKind::PolicyLengthExceeded
            | ErrorKind::InvalidRequestContent
            | ErrorKind::Serialization => StatusCode::BAD_REQUEST,
            ErrorKind::AccessDenied
            | ErrorKind::InvalidSignature
            | ErrorKind::UnrecognizedClient
            | ErrorKind::MissingAuthenticationToken => StatusCode::FORBIDDEN,
            ErrorKind::ResourceNotFound | ErrorKind::UnknownOperation => StatusCode::NOT_FOUND,
            ErrorKind::ResourceConflict => StatusCode::CONFLICT,
            ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorKind::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::InvalidSubnetId | ErrorKind::InvalidSecurityGroupId => {
                StatusCode::BAD_GATEWAY
            }
            ErrorKind::Service => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<LambdaError> for ApiError {
    fn from(error: LambdaError) -> Self {
        Self {
            error,
            reason: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let error = match e {
            StoreError::NotFound => {
                LambdaError::not_found("The resource you requested does not exist.")
            }
            StoreError::AlreadyExists => LambdaError::conflict("The resource already exists."),
            StoreError::RevisionMismatch => LambdaError::new(
                ErrorKind::PreconditionFailed,
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            ),
            StoreError::CodeStorageExceeded { used, limit } => LambdaError::new(
                ErrorKind::CodeStorageExceeded,
                format!(
                    "Code storage limit exceeded: {used} of {limit} bytes are in use. Delete unused functions or raise code_storage_max_bytes."
                ),
            ),
            StoreError::Rejected(e) => e,
            StoreError::Ec2(e) => super::vpc::lambda_error(e),
            StoreError::Blob(lamina_store::BlobError::Layer(e)) => {
                LambdaError::invalid_parameter(format!("The image's layers cannot be used: {e}."))
            }
            StoreError::Code(CodeError::Archive(ArchiveError::TooLarge { limit })) => {
                LambdaError::invalid_parameter(format!(
                    "Unzipped size must be smaller than {limit} bytes"
                ))
            }
            StoreError::Code(CodeError::Archive(ArchiveError::TooManyEntries { limit })) => {
                LambdaError::invalid_parameter(format!(
                    "Could not unzip uploaded file. Please check your file, then try to upload again. (the archive has more than {limit} entries)"
                ))
            }
            StoreError::Code(CodeError::Archive(ArchiveError::Io(e))) => {
                tracing::error!(error = %e, "extracting an upload failed");
                LambdaError::service("An internal error occurred while storing the code.")
            }
            StoreError::Code(CodeError::Archive(e)) => LambdaError::invalid_parameter(format!(
                "Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"
            )),
            e @ (StoreError::Code(_)
            | StoreError::Sqlite(_)
            | StoreError::Corrupt(_)
            | StoreError::Blob(_)
            | StoreError::NotEmpty
            | StoreError::InIndex(_)
            | StoreError::FilterPolicyLimit(_)
            | StoreError::Immutable(_)) => {
                tracing::error!(error = ?e, "store failure");
                LambdaError::service("An internal error occurred. The server log has the details.")
            }
        };
        Self {
            error,
            reason: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let kind = if status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        let mut body = serde_json::json!({
            "Type": kind,
            "message": self.error.message,
            "Message": self.error.message,
        });
        if let Some(reason) = self.reason {
            body["Reason"] = reason.into();
        }
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static(self.error.kind.as_str()),
        );
        resp
    }
}

/// Handler results.
pub type ApiResult<T> = Result<T, ApiError>;
