//! The Lambda error vocabulary: an error type name as Lambda puts it on the wire plus a message.
//!
//! Only `api` knows how a kind becomes an HTTP status; everything below it speaks in kinds.

use std::fmt;

/// The error types Lambda's API returns, named exactly as on the wire (`x-amzn-ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidParameterValue,
    Validation,
    ResourceNotFound,
    ResourceConflict,
    PreconditionFailed,
    RequestEntityTooLarge,
    TooManyRequests,
    AccessDenied,
    InvalidSignature,
    UnrecognizedClient,
    MissingAuthenticationToken,
    CodeStorageExceeded,
    PolicyLengthExceeded,
    UnsupportedMediaType,
    InvalidRequestContent,
    Serialization,
    UnknownOperation,
    /// Invoke: a subnet of the function's `VpcConfig` is gone (502).
    InvalidSubnetId,
    /// Invoke: a security group of the function's `VpcConfig` is gone (502).
    InvalidSecurityGroupId,
    Service,
}

impl ErrorKind {
    /// The error type as it appears in `x-amzn-ErrorType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidParameterValue => "InvalidParameterValueException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceConflict => "ResourceConflictException",
            ErrorKind::PreconditionFailed => "PreconditionFailedException",
            ErrorKind::RequestEntityTooLarge => "RequestEntityTooLargeException",
            ErrorKind::TooManyRequests => "TooManyRequestsException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
            ErrorKind::UnrecognizedClient => "UnrecognizedClientException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::CodeStorageExceeded => "CodeStorageExceededException",
            ErrorKind::PolicyLengthExceeded => "PolicyLengthExceededException",
            ErrorKind::UnsupportedMediaType => "UnsupportedMediaTypeException",
            ErrorKind::InvalidRequestContent => "InvalidRequestContentException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::InvalidSubnetId => "InvalidSubnetIDException",
            ErrorKind::InvalidSecurityGroupId => "InvalidSecurityGroupIDException",
            ErrorKind::Service => "ServiceException",
        }
    }
}

/// A Lambda API error: what kind, and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaError {
    pub kind: ErrorKind,
    pub message: String,
}

impl LambdaError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameterValue, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceConflict, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RequestEntityTooLarge, message)
    }
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Service, message)
    }

    /// A constraint violation in the form Lambda's front end reports them:
    /// `1 validation error detected: Value 'X' at 'member' failed to satisfy constraint: ...`.
    pub fn validation(value: impl fmt::Display, member: &str, constraint: &str) -> Self {
        Self::new(
            ErrorKind::Validation,
            format!(
                "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
            ),
        )
    }
}

impl LambdaError {
    /// A required member that is missing: `Value null at 'member' failed to satisfy constraint: Member must not be null`.
    pub fn missing(member: &str) -> Self {
        Self::new(
            ErrorKind::Validation,
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    }
}

impl fmt::Display for LambdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for LambdaError {}
