//! The AWS query protocol as SNS speaks it: form-encoded parameters in, XML out.
//!
//! Parameters are flat (`Attributes.entry.1.key`, `Tags.member.2.Value`); [`Params`] reads
//! scalars, maps and member lists from them and refuses malformed indexes. Responses and errors
//! are written with `quick-xml` (which escapes), as `<{Action}Response>` with an optional
//! `<{Action}Result>` and the request id.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};

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

/// The decoded parameters of a query request.
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
    pub fn required(&self, name: &str) -> SnsResult<&str> {
        self.get(name).ok_or_else(|| SnsError::missing(name))
    }

    /// A boolean parameter (`true`/`false`).
    pub fn flag(&self, name: &str) -> SnsResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(SnsError::validation(format!(
                "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a boolean",
                lower_first(name)
            ))),
        }
    }

    /// The parameters under `prefix.N.`, in order of N, each with the prefix stripped. Indexes
    /// must be positive integers.
    pub fn indexed(&self, prefix: &str) -> SnsResult<Vec<Params>> {
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
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    SnsError::validation(format!(
                        "The list or map parameter {k} has an invalid index '{index}': indexes are whole numbers from 1."
                    ))
                })?;
            groups
                .entry(n)
                .or_default()
                .push((tail.to_owned(), v.clone()));
        }
        Ok(groups.into_values().map(Params).collect())
    }

    /// A string list (`Name.member.N`).
    pub fn list(&self, name: &str) -> SnsResult<Vec<String>> {
        self.indexed(&format!("{name}.member"))?
            .into_iter()
            .map(|p| {
                p.get("")
                    .map(str::to_owned)
                    .ok_or_else(|| SnsError::validation(format!("{name}: malformed list member")))
            })
            .collect()
    }

    /// A list of structures (`Name.member.N.Field`).
    pub fn members(&self, name: &str) -> SnsResult<Vec<Params>> {
        self.indexed(&format!("{name}.member"))
    }

    /// A string map (`Name.entry.N.key`, `Name.entry.N.value`).
    pub fn map(&self, name: &str) -> SnsResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for entry in self.indexed(&format!("{name}.entry"))? {
            let key = entry
                .get("key")
                .ok_or_else(|| SnsError::validation(format!("{name}: a map entry has no key")))?;
            out.insert(key.to_owned(), entry.get("value").unwrap_or("").to_owned());
        }
        Ok(out)
    }
}

/// One element of a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Xml {
    /// `<name>text</name>`.
    Leaf(&'static str, String),
    /// `<name>children</name>`.
    Node(&'static str, Vec<Xml>),
}

/// `<name>value</name>`.
pub fn leaf(name: &'static str, value: impl Into<String>) -> Xml {
    Xml::Leaf(name, value.into())
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

fn write(w: &mut Writer<Vec<u8>>, node: &Xml) -> std::io::Result<()> {
    match node {
        Xml::Leaf(name, text) => {
            w.write_event(Event::Start(BytesStart::new(*name)))?;
            w.write_event(Event::Text(BytesText::new(&xml_chars(text))))?;
            w.write_event(Event::End(BytesEnd::new(*name)))
        }
        Xml::Node(name, children) => {
            w.write_event(Event::Start(BytesStart::new(*name)))?;
            for c in children {
                write(w, c)?;
            }
            w.write_event(Event::End(BytesEnd::new(*name)))
        }
    }
}

/// Text with the characters XML 1.0 cannot carry (control characters other than tab and line
/// breaks, U+FFFE, U+FFFF) replaced by U+FFFD, so that every answer parses.
fn xml_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    };
    if text.chars().any(bad) {
        text.chars()
            .map(|c| if bad(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

fn document(root: &str, body: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let written = (|| {
        w.write_event(Event::Start(
            BytesStart::new(root).with_attributes([("xmlns", XMLNS)]),
        ))?;
        body(&mut w)?;
        w.write_event(Event::End(BytesEnd::new(root)))
    })();
    // Writing to a Vec cannot fail.
    debug_assert!(written.is_ok());
    w.into_inner()
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
    fn maps_lists_and_members_come_in_index_order() {
        let p = params(
            "Attributes.entry.2.key=b&Attributes.entry.2.value=2&Attributes.entry.1.key=a&Attributes.entry.1.value=%3C1%3E\
             &TagKeys.member.10=k10&TagKeys.member.2=k2&Tags.member.1.Key=x&Tags.member.1.Value=y",
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
    }

    #[test]
    fn malformed_indexes_are_refused() {
        for raw in [
            "TagKeys.member.0=a",
            "TagKeys.member.x=a",
            "TagKeys.member.-1=a",
            "TagKeys.member.=a",
        ] {
            let e = params(raw).list("TagKeys").unwrap_err();
            assert_eq!(e.code, "ValidationError", "{raw}");
        }
    }

    #[test]
    fn responses_and_errors_are_escaped_xml() {
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
        let mut w = Writer::new(Vec::new());
        write(&mut w, &leaf("Message", "a\u{1}b\tc")).unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            "<Message>a\u{FFFD}b\tc</Message>"
        );
        let e = SnsError::not_found("Topic does not exist");
        assert_eq!(e.fault(), "Sender");
        assert_eq!(SnsError::internal("x").fault(), "Receiver");
    }
}
