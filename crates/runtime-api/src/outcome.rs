//! What an invocation gives its caller.

use bytes::Bytes;

/// What the caller gets.
#[derive(Debug)]
pub struct Outcome {
    /// Empty for a streamed response.
    pub body: Bytes,
    pub content_type: String,
    /// `X-Amz-Function-Error: Unhandled`.
    pub function_error: bool,
    /// Set when the failure happened in INIT.
    pub init_failure: Option<Box<InitFailure>>,
    pub error_type: Option<String>,
    /// A streamed response, for a caller that asked for one: read it as it comes.
    pub stream: Option<Box<crate::ResponseStream>>,
}

/// What is known of a failed INIT.
#[derive(Debug, Clone)]
pub struct InitFailure {
    /// How long the invocation's INITs took, ms: what is billed, as the REPORT after the second
    /// gives it (its Billed Duration).
    pub ms: f64,
    /// Its log (at most the last 4 KB), for `X-Amz-Log-Type: Tail`: what the runtime wrote and
    /// the platform's `INIT_REPORT`; after the second INIT also the invocation's `START`, `END`
    /// and `REPORT`.
    pub tail: String,
}

/// The longest error type kept, in bytes. A runtime's error type goes into platform log lines
/// (`REPORT`'s `Error Type`), which a runtime could otherwise make megabytes long, past the
/// function's log budget.
pub const MAX_ERROR_TYPE: usize = 256;

/// `t` cut to [`MAX_ERROR_TYPE`] bytes, on a character boundary.
pub fn bounded_error_type(t: &str) -> &str {
    if t.len() <= MAX_ERROR_TYPE {
        return t;
    }
    let mut cut = MAX_ERROR_TYPE;
    while !t.is_char_boundary(cut) {
        cut -= 1;
    }
    &t[..cut]
}

impl Outcome {
    /// `errorType` of an error's body (`{"errorType": …, "errorMessage": …}`), read without
    /// the rest of it, at most [`MAX_ERROR_TYPE`] bytes; `None` when the body is not such an
    /// object.
    pub fn error_type_in(body: &[u8]) -> Option<String> {
        // A derived struct would also be read from an array of its members' values.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Error {
            #[serde(rename = "errorType")]
            error_type: Option<String>,
        }
        let mut t = serde_json::from_slice::<Error>(body).ok()?.error_type?;
        t.truncate(bounded_error_type(&t).len());
        Some(t)
    }

    /// The failure's error type: the one the runtime gave, else its body's.
    pub fn failure_type(&self) -> Option<String> {
        self.error_type
            .clone()
            .or_else(|| Self::error_type_in(&self.body))
    }

    /// The failure happened in INIT.
    pub fn init_failed(&self) -> bool {
        self.init_failure.is_some()
    }

    pub fn error(body: Bytes) -> Self {
        Self {
            body,
            content_type: "application/json".into(),
            function_error: true,
            init_failure: None,
            error_type: None,
            stream: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_type_is_cut_to_its_bound_on_a_character() {
        let long = format!("{{\"errorType\": \"{}\"}}", "é".repeat(1000));
        let t = Outcome::error_type_in(long.as_bytes()).unwrap();
        assert_eq!(t, "é".repeat(MAX_ERROR_TYPE / 2));
        let short = br#"{"errorType": "Runtime.ExitError", "errorMessage": "x"}"#;
        assert_eq!(
            Outcome::error_type_in(short).as_deref(),
            Some("Runtime.ExitError")
        );
        assert_eq!(bounded_error_type(&"a".repeat(257)).len(), MAX_ERROR_TYPE);
        assert_eq!(bounded_error_type(&"ab".repeat(2)), "abab");
    }
}
