//! Asynchronous invokes by Lamina's own services (SNS), as AWS services invoke functions: an
//! `Event` invoke on behalf of a source resource, allowed by the function's resource-based
//! policy for the service's principal with that source ARN.

use std::sync::Arc;

use axum::body::Bytes;
use lamina_model::{ErrorKind, FunctionRef};
use lamina_store::FunctionKey;

use super::policy;
pub(crate) use super::policy::Principal;
use crate::AppState;

/// Who invokes: a service acting for one of its resources.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The service principal, e.g. `sns.amazonaws.com`.
    pub service: &'a str,
    /// The resource it acts for, e.g. a topic ARN.
    pub arn: &'a str,
    /// The account that owns the resource.
    pub account: &'a str,
}

/// Why a service's invoke was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The function (or its version or alias) does not exist, or the ARN is not a function's.
    NotFound(String),
    /// No policy statement lets the source invoke the function.
    Denied(String),
    /// The event queue is full: try again later.
    Throttled(String),
    /// Anything else; also worth another try.
    Internal(String),
}

impl Refusal {
    /// Whether another attempt later could succeed (the service's retry policy applies).
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::Internal(_))
    }
    /// The reason, for logs and metrics.
    pub fn message(&self) -> &str {
        match self {
            Self::NotFound(m) | Self::Denied(m) | Self::Throttled(m) | Self::Internal(m) => m,
        }
    }
}

/// The function a service delivers to, from its ARN (which must name region and account).
pub fn function_of(arn: &str) -> Result<(FunctionKey, Option<lamina_model::Qualifier>), Refusal> {
    let bad = || Refusal::NotFound(format!("{arn} is not a function ARN"));
    let r = FunctionRef::parse(arn).map_err(|_| bad())?;
    let (Some(region), Some(account)) = (r.region, r.account) else {
        return Err(bad());
    };
    Ok((
        FunctionKey {
            account,
            region,
            name: r.name,
        },
        r.qualifier,
    ))
}

/// Queues `payload` as an `Event` invoke of the function `arn` names, for `source`, once the
/// function's policy allows it (always checked when signatures are verified, or when the
/// function belongs to another account than the source). Returns the request id.
pub async fn invoke_async(
    state: &Arc<AppState>,
    arn: &str,
    payload: Vec<u8>,
    hops: u32,
    source: Source<'_>,
) -> Result<String, Refusal> {
    let (key, qualifier) = function_of(arn)?;
    if state.auth.verify || key.account.as_str() != source.account {
        let allowed = policy::allows(
            state,
            &key,
            qualifier.as_ref(),
            "lambda:InvokeFunction",
            Principal::Service {
                service: source.service,
                source_arn: source.arn,
                source_account: source.account,
            },
        )
        .await
        .map_err(|e| Refusal::Internal(e.error.message))?;
        if !allowed {
            return Err(Refusal::Denied(format!(
                "{} is not authorized to invoke {arn}: the function's resource-based policy has no statement for {} with the source ARN {}",
                source.service, source.service, source.arn
            )));
        }
    }
    super::hot::record(state, &key, qualifier.as_ref(), false)
        .await
        .map_err(|e| match e.error.kind {
            ErrorKind::ResourceNotFound => Refusal::NotFound(e.error.message),
            _ => Refusal::Internal(e.error.message),
        })?;
    let request_id = super::invoke::new_request_id();
    state
        .queue
        .accept(lamina_store::NewEvent {
            request_id: request_id.clone(),
            function: key,
            qualifier: qualifier.as_ref().map(ToString::to_string),
            payload,
            received_ms: lamina_model::now_millis(),
            hops,
        })
        .await
        .map_err(|e| match e.error.kind {
            ErrorKind::TooManyRequests => Refusal::Throttled(e.error.message),
            ErrorKind::ResourceNotFound => Refusal::NotFound(e.error.message),
            _ => Refusal::Internal(e.error.message),
        })?;
    Ok(request_id)
}

/// A synchronous invoke's result, for a gateway to map.
#[derive(Debug)]
pub struct Answer {
    /// The function's result (or error document).
    pub body: Bytes,
    /// The function failed (`X-Amz-Function-Error`).
    pub function_error: bool,
    /// The error type, when the function failed (`Sandbox.Timedout` for a timeout).
    pub error_type: Option<String>,
}

/// Whether a service's principal may invoke a function: its policy must allow `who` to perform
/// `action` on exactly what is invoked.
pub(crate) async fn allowed(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&lamina_model::Qualifier>,
    action: &str,
    who: Principal<'_>,
) -> Result<bool, Refusal> {
    policy::allows(state, key, qualifier, action, who)
        .await
        .map_err(|e| Refusal::Internal(e.error.message))
}

/// Invokes a function synchronously for a gateway (function URLs, HTTP APIs), billing it like
/// any invoke. Permission checks are the caller's.
pub async fn invoke_sync(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&lamina_model::Qualifier>,
    payload: Bytes,
) -> Result<Answer, Refusal> {
    let outcome = invoke_outcome(state, key, qualifier, payload, false).await?;
    Ok(Answer {
        function_error: outcome.function_error,
        error_type: outcome.error_type.clone(),
        body: outcome.body,
    })
}

/// As [`invoke_sync`], with the whole outcome; with `stream`, a streamed response comes as it is
/// streamed (`Outcome::stream`).
pub async fn invoke_outcome(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&lamina_model::Qualifier>,
    payload: Bytes,
    stream: bool,
) -> Result<lamina_runtime_api::Outcome, Refusal> {
    use lamina_runtime_api::Failure;
    let request_id = super::invoke::new_request_id();
    let call = super::invoke::Call {
        usage_key: request_id.clone(),
        request_id,
        payload,
        client_context: None,
        asynchronous: false,
        await_end: false,
        stream,
        // Gateways' and authorizers' requests come from outside.
        hops: 0,
    };
    let ran = super::invoke::run(state, key, qualifier, call)
        .await
        .map_err(|e| match e.error.kind {
            ErrorKind::ResourceNotFound => Refusal::NotFound(e.error.message),
            ErrorKind::TooManyRequests => Refusal::Throttled(e.error.message),
            _ => Refusal::Internal(e.error.message),
        })?;
    let outcome = match ran.result {
        Ok(done) => done.outcome,
        Err(Failure::Function(outcome)) => outcome,
        Err(Failure::Throttled(t)) => return Err(Refusal::Throttled(t.reason().to_owned())),
        Err(Failure::Gone) => return Err(Refusal::NotFound(format!("{key:?} is gone"))),
        Err(Failure::Unavailable(why)) => return Err(Refusal::Internal(why.to_string())),
        Err(Failure::Internal(why)) => return Err(Refusal::Internal(why.to_string())),
        Err(e @ Failure::Interrupted) => return Err(Refusal::Internal(e.to_string())),
    };
    Ok(outcome)
}
