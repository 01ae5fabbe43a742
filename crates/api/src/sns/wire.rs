//! The AWS query protocol as SNS speaks it: form-encoded parameters in, XML out.
//!
//! Parameters are flat (`Attributes.entry.1.key`, `Tags.member.2.Value`); the shared
//! [`Params`] reads scalars, maps and member lists from them and refuses malformed indexes, and
//! its [`ParamError`]s become SNS's `ValidationError`s here. Responses and errors are written
//! with the shared [`crate::xml`], as `<{Action}Response>` with an optional `<{Action}Result>`
//! and the request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, Event};

pub use crate::query::{ParamError, Params};
use crate::xml::write;
pub use crate::xml::{Xml, leaf};

/// SNS's XML namespace.
const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// An SNS error: its code, message and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsError {
    /// The `<Code>`, e.g. `InvalidParameter`.
    pub code: &'static str,
    /// The `<Message>`.
    pub message: String,
    /// The HTTP status.
    pub status: StatusCode,
}

/// The result of an SNS operation.
pub type SnsResult<T> = Result<T, SnsError>;

impl SnsError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }
    /// `InvalidParameter` (400), with SNS's `Invalid parameter: ` prefix added.
    pub fn invalid_parameter(what: impl std::fmt::Display) -> Self {
        Self::new(
            "InvalidParameter",
            StatusCode::BAD_REQUEST,
            format!("Invalid parameter: {what}"),
        )
    }
    /// `ParameterValueInvalid` (400).
    pub fn parameter_value_invalid(message: impl Into<String>) -> Self {
        Self::new("ParameterValueInvalid", StatusCode::BAD_REQUEST, message)
    }
    /// `NotFound` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("NotFound", StatusCode::NOT_FOUND, message)
    }
    /// `ValidationError` (400).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationError", StatusCode::BAD_REQUEST, message)
    }
    /// `ValidationError` for a missing required parameter, in AWS's words.
    pub fn missing(member: &str) -> Self {
        Self::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(member)
        ))
    }
    /// `AuthorizationError` (403).
    pub fn authorization(message: impl Into<String>) -> Self {
        Self::new("AuthorizationError", StatusCode::FORBIDDEN, message)
    }
    /// `Throttled` (429).
    pub fn throttled(message: impl Into<String>) -> Self {
        Self::new("Throttled", StatusCode::TOO_MANY_REQUESTS, message)
    }
    /// `InternalError` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalError", StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// `InvalidAction` (400): an action SNS does not have.
    pub fn invalid_action(action: &str) -> Self {
        Self::new(
            "InvalidAction",
            StatusCode::BAD_REQUEST,
            format!("The action {action} is not valid for this web service."),
        )
    }
    /// `MissingAction` (400).
    pub fn missing_action() -> Self {
        Self::new(
            "MissingAction",
            StatusCode::BAD_REQUEST,
            "The request must contain the parameter Action.",
        )
    }
    /// A batch error code (400).
    pub fn batch(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, StatusCode::BAD_REQUEST, message)
    }
    /// An authentication error code (`InvalidClientTokenId`, `SignatureDoesNotMatch`, ...).
    pub fn auth(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(code, status, message)
    }
    /// `Sender` for client errors, `Receiver` for the server's own.
    fn fault(&self) -> &'static str {
        if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

impl crate::Internal for SnsError {
    fn internal() -> Self {
        Self::internal("An internal error occurred.")
    }
}

impl From<lamina_store::StoreError> for SnsError {
    fn from(e: lamina_store::StoreError) -> Self {
        match e {
            lamina_store::StoreError::NotFound => Self::not_found("Resource does not exist"),
            lamina_store::StoreError::FilterPolicyLimit(message) => {
                Self::new("FilterPolicyLimitExceeded", StatusCode::FORBIDDEN, message)
            }
            e => {
                tracing::error!(error = %e, "SNS store operation failed");
                Self::internal("An internal error occurred. The server log has the details.")
            }
        }
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

impl From<ParamError> for SnsError {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::Missing(name) => Self::missing(&name),
            ParamError::NotBoolean { name, value } => Self::validation(format!(
                "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must be a boolean",
                lower_first(&name)
            )),
            e @ (ParamError::BadIndex { .. } | ParamError::Malformed(_)) => {
                Self::validation(e.to_string())
            }
        }
    }
}

/// `<name><entry><key>k</key><value>v</value></entry>...</name>`.
pub fn map<'a>(name: &'static str, entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Xml {
    Xml::Node(
        name,
        entries
            .into_iter()
            .map(|(k, v)| Xml::Node("entry", vec![leaf("key", k), leaf("value", v)]))
            .collect(),
    )
}

/// `<name><member>...</member>...</name>`.
pub fn members(name: &'static str, items: impl IntoIterator<Item = Vec<Xml>>) -> Xml {
    Xml::Node(
        name,
        items
            .into_iter()
            .map(|children| Xml::Node("member", children))
            .collect(),
    )
}

fn document(root: &str, body: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>) -> Vec<u8> {
    crate::xml::document(root, XMLNS, body)
}

fn xml_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response {
    let mut resp = (status, [("content-type", "text/xml")], body).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// `<{action}Response>` with `<{action}Result>` (when `result` is given) and the request id.
pub fn respond(action: &str, result: Option<Vec<Xml>>, request_id: &str) -> Response {
    let body = document(&format!("{action}Response"), |w| {
        if let Some(children) = &result {
            let name = format!("{action}Result");
            w.write_event(Event::Start(BytesStart::new(name.as_str())))?;
            for c in children {
                write(w, c)?;
            }
            w.write_event(Event::End(BytesEnd::new(name.as_str())))?;
        }
        write(
            w,
            &Xml::Node("ResponseMetadata", vec![leaf("RequestId", request_id)]),
        )
    });
    xml_response(StatusCode::OK, body, request_id)
}

/// `<ErrorResponse>` for an error.
pub fn error_response(e: &SnsError, request_id: &str) -> Response {
    let body = document("ErrorResponse", |w| {
        write(
            w,
            &Xml::Node(
                "Error",
                vec![
                    leaf("Type", e.fault()),
                    leaf("Code", e.code),
                    leaf("Message", e.message.as_str()),
                ],
            ),
        )?;
        write(w, &leaf("RequestId", request_id))
    });
    xml_response(e.status, body, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> Params {
        Params::new(crate::query::pairs(raw))
    }

    #[test]
    fn parameter_errors_are_validation_errors_in_sns_words() {
        let e = SnsError::from(params("TagKeys.member.0=a").list("TagKeys").unwrap_err());
        assert_eq!(e.code, "ValidationError");
        let e = SnsError::from(params("").required("TopicArn").unwrap_err());
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'topicArn' failed to satisfy constraint: Member must not be null"
        );
        let e = SnsError::from(params("Flag=yes").flag("Flag").unwrap_err());
        assert!(e.message.contains("Value 'yes' at 'flag'"), "{}", e.message);
    }

    #[test]
    fn responses_and_errors_are_namespaced_xml() {
        let r = document("XResponse", |w| {
            write(w, &map("Attributes", [("k", "a<b&c")]))
        });
        let text = String::from_utf8(r).unwrap();
        assert_eq!(
            text,
            format!(
                "<XResponse xmlns=\"{XMLNS}\"><Attributes><entry><key>k</key><value>a&lt;b&amp;c</value></entry></Attributes></XResponse>"
            )
        );
        let e = SnsError::not_found("Topic does not exist");
        assert_eq!(e.fault(), "Sender");
        assert_eq!(SnsError::internal("x").fault(), "Receiver");
    }
}
