//! CloudWatch Logs over the function logs the server stores: JSON 1.1 on `POST /`,
//! `X-Amz-Target: Logs_20140328.<Op>`, SigV4 scope `logs`, so that `aws logs` and the SDKs read
//! them unchanged.
//!
//! A function's log is the group `/aws/lambda/<function>`, each execution environment a stream
//! of it; the caller's account and region select what is visible. [`groups`] describes groups
//! and streams and holds the writes (retention policies, deleting a group); [`events`] reads
//! events (`GetLogEvents`, `FilterLogEvents`) through [`pattern`], the filter pattern matcher;
//! [`livetail`] pushes new lines as an event stream (`StartLiveTail`).
//! Errors are `{"__type", "message"}` with status 400, as CloudWatch Logs answers them.

mod events;
mod groups;
pub mod livetail;
pub mod pattern;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lamina_model::FunctionName;
use lamina_store::{FunctionKey, LogGroupRow};
use serde_json::{Value, json};

use crate::auth::{AuthFailure, identify, read_body};
use crate::{AppState, Caller, blocking};

/// The `X-Amz-Target` prefix of CloudWatch Logs' operations.
pub const TARGET_PREFIX: &str = "Logs_20140328.";

/// The prefix of Lambda's log group names.
const GROUP_PREFIX: &str = "/aws/lambda/";

/// The largest request body: filter requests with a hundred stream names fit well within it.
const MAX_BODY: usize = 1 << 20;

type Result<T> = std::result::Result<T, LogsError>;

/// A CloudWatch Logs error: its type name, HTTP status and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct LogsError {
    /// The `__type`.
    pub kind: &'static str,
    /// The status code.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl LogsError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    fn no_group() -> Self {
        Self::new(
            "ResourceNotFoundException",
            "The specified log group does not exist.",
        )
    }

    fn no_stream() -> Self {
        Self::new(
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        )
    }

    fn bad_token() -> Self {
        Self::invalid("The specified nextToken is invalid.")
    }
}

impl crate::Internal for LogsError {
    fn internal() -> Self {
        Self {
            kind: "ServiceUnavailableException",
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "An internal error occurred.".into(),
        }
    }
}

impl From<lamina_store::StoreError> for LogsError {
    fn from(e: lamina_store::StoreError) -> Self {
        tracing::error!(error = %e, "logs store error");
        <Self as crate::Internal>::internal()
    }
}

impl IntoResponse for LogsError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.kind, "message": self.message });
        (
            self.status,
            [
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", self.kind),
            ],
            body.to_string(),
        )
            .into_response()
    }
}

/// Serves one CloudWatch Logs request.
pub async fn serve(state: Arc<AppState>, req: Request<Body>) -> Response {
    match handle(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn json_reply(v: Value) -> Response {
    (
        [("content-type", "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response()
}

async fn handle(state: &Arc<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let body = read_body(&parts, body, MAX_BODY)
        .await
        .ok_or_else(|| LogsError::invalid("The request is too large."))?;
    let caller = identify(&state.auth, &parts, &body).map_err(|e| {
        let kind = match e.kind {
            AuthFailure::MissingToken => "MissingAuthenticationTokenException",
            AuthFailure::Malformed => "IncompleteSignatureException",
            AuthFailure::UnknownKey => "UnrecognizedClientException",
            AuthFailure::BadSignature => "InvalidSignatureException",
        };
        LogsError {
            kind,
            status: StatusCode::FORBIDDEN,
            message: e.message,
        }
    })?;
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let op = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            LogsError::new(
                "SerializationException",
                format!("The body is not JSON: {e}"),
            )
        })?
    };
    if !input.is_object() {
        return Err(LogsError::new(
            "SerializationException",
            "The body is not a JSON object.",
        ));
    }
    let ctx = Ctx {
        state,
        caller: &caller,
        input: &input,
    };
    let reply = match op {
        "StartLiveTail" => return livetail::start_live_tail(&ctx).await,
        "DescribeLogGroups" => groups::describe_log_groups(&ctx).await,
        "DescribeLogStreams" => groups::describe_log_streams(&ctx).await,
        "PutRetentionPolicy" => groups::put_retention_policy(&ctx).await,
        "DeleteRetentionPolicy" => groups::delete_retention_policy(&ctx).await,
        "DeleteLogGroup" => groups::delete_log_group(&ctx).await,
        "GetLogEvents" => events::get_log_events(&ctx).await,
        "FilterLogEvents" => events::filter_log_events(&ctx).await,
        other => Err(LogsError::new(
            "UnknownOperationException",
            format!(
                "Unknown operation '{other}'; this server implements DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents, StartLiveTail, PutRetentionPolicy, DeleteRetentionPolicy and DeleteLogGroup."
            ),
        )),
    };
    reply.map(json_reply)
}

/// One request: the state, who calls and the JSON input.
struct Ctx<'a> {
    state: &'a Arc<AppState>,
    caller: &'a Caller,
    input: &'a Value,
}

impl Ctx<'_> {
    /// A string member; a member of another type is a serialization error.
    fn str(&self, name: &str) -> Result<Option<&str>> {
        match self.input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(LogsError::new(
                "SerializationException",
                format!("'{name}' must be a string."),
            )),
        }
    }

    /// An integer member.
    fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                LogsError::new(
                    "SerializationException",
                    format!("'{name}' must be an integer."),
                )
            }),
        }
    }

    /// A boolean member.
    fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(LogsError::new(
                "SerializationException",
                format!("'{name}' must be a boolean."),
            )),
        }
    }

    /// A list of strings.
    fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| {
                    LogsError::new(
                        "SerializationException",
                        format!("'{name}' must be a list of strings."),
                    )
                }),
            Some(_) => Err(LogsError::new(
                "SerializationException",
                format!("'{name}' must be a list."),
            )),
        }
    }

    /// `limit` within `1..=max`, or `default`.
    fn limit(&self, max: i64, default: i64) -> Result<usize> {
        match self.int("limit")? {
            None => Ok(default as usize),
            Some(n) if n < 1 => Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
            ))),
            Some(n) if n > max => Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to {max}"
            ))),
            Some(n) => Ok(n as usize),
        }
    }

    /// The group a request names (`logGroupName`, or `logGroupIdentifier`: a name or an ARN of
    /// the caller's account and region), as its name.
    fn group_param(&self) -> Result<String> {
        let name = self.str("logGroupName")?;
        let ident = self.str("logGroupIdentifier")?;
        match (name, ident) {
            (Some(_), Some(_)) => Err(LogsError::new(
                "ValidationException",
                "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
            )),
            (Some(n), None) => Ok(n.to_owned()),
            (None, Some(i)) if i.starts_with("arn:") => {
                let prefix = self.group_arn("");
                let rest = i.strip_prefix(&prefix).ok_or_else(LogsError::no_group)?;
                Ok(rest.strip_suffix(":*").unwrap_or(rest).to_owned())
            }
            (None, Some(i)) => Ok(i.to_owned()),
            (None, None) => Err(LogsError::invalid(
                "Either logGroupName or logGroupIdentifier must be specified.",
            )),
        }
    }

    /// The function whose log a group name is: the function whose `LoggingConfig.LogGroup`
    /// names it, or `<name>` for `/aws/lambda/<name>` unless that function logs to a group of
    /// its own. `None` when no function's log has that name.
    pub(crate) async fn key_of(&self, group: &str) -> Result<Option<FunctionKey>> {
        let groups = self.groups().await?;
        Ok(groups.function_of(group).and_then(|name| {
            Some(FunctionKey {
                account: self.caller.account.clone(),
                region: self.caller.region.clone(),
                name: FunctionName::parse(&name).ok()?,
            })
        }))
    }

    /// The names of the caller's groups.
    pub(crate) async fn groups(&self) -> Result<GroupNames> {
        let store = self.state.store.clone();
        let c = self.caller.clone();
        let custom = blocking::<_, LogsError>(move || {
            Ok(store.custom_log_groups(c.account.as_str(), c.region.as_str())?)
        })
        .await?;
        Ok(GroupNames { custom })
    }

    /// The group a request names, which must exist: its name, its function and its row.
    async fn group(&self) -> Result<(String, FunctionKey, LogGroupRow)> {
        let group = self.group_param()?;
        let key = self.key_of(&group).await?.ok_or_else(LogsError::no_group)?;
        let store = self.state.store.clone();
        let k = key.clone();
        let row = blocking::<_, LogsError>(move || Ok(store.log_group(&k)?))
            .await?
            .ok_or_else(LogsError::no_group)?;
        Ok((group, key, row))
    }

    /// `arn:aws:logs:<region>:<account>:log-group:<name>`.
    fn group_arn(&self, group: &str) -> String {
        format!(
            "arn:aws:logs:{}:{}:log-group:{group}",
            self.caller.region, self.caller.account
        )
    }
}

/// How an account's functions name their log groups.
pub(crate) struct GroupNames {
    /// `(function, group)` for the functions with a `LoggingConfig.LogGroup`.
    custom: Vec<(String, String)>,
}

impl GroupNames {
    /// The group name of a function's log.
    pub(crate) fn name_of(&self, function: &str) -> String {
        match self.custom.iter().find(|(f, _)| f == function) {
            Some((_, g)) => g.clone(),
            None => format!("{GROUP_PREFIX}{function}"),
        }
    }

    /// The function whose log `group` is.
    fn function_of(&self, group: &str) -> Option<String> {
        if let Some((f, _)) = self.custom.iter().find(|(_, g)| g == group) {
            return Some(f.clone());
        }
        let name = group.strip_prefix(GROUP_PREFIX)?;
        (!self.custom.iter().any(|(f, _)| f == name)).then(|| name.to_owned())
    }
}

/// Opaque page tokens: a kind letter and fields, hex-encoded so that names of any characters
/// round-trip and a client is not tempted to build one.
mod token {
    /// Encodes `kind` and `fields`.
    pub fn encode(kind: char, fields: &[&str]) -> String {
        format!("{kind}{}", hex::encode(fields.join("\n")))
    }

    /// Decodes a token of `kind` into its fields.
    pub fn decode(kind: char, token: &str) -> Option<Vec<String>> {
        let rest = token.strip_prefix(kind)?;
        let text = String::from_utf8(hex::decode(rest).ok()?).ok()?;
        Some(text.split('\n').map(str::to_owned).collect())
    }
}
