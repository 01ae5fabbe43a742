//! Resource-based policies: `AddPermission`, `GetPolicy`, `RemovePermission`
//! (`/2015-03-31/functions/{name}/policy`), with Lambda's statement construction, and their
//! evaluation: who besides the function's own account may invoke it (another account, or a
//! service such as SNS for a given source ARN).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use lamina_model::{ErrorKind, LambdaError, Qualifier};
use lamina_store::{FunctionKey, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::query::Query;
use super::{ApiResult, AppState, Caller, arn, blocking, function_not_found, json_body, resolve};

/// The largest policy document, bytes.
pub(super) const MAX_POLICY: usize = 20 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionRequest {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    event_source_token: Option<String>,
    revision_id: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    function_url_auth_type: Option<String>,
    invoked_via_function_url: Option<bool>,
}

/// Who asks to invoke a function.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Principal<'a> {
    /// A caller of another account.
    Account(&'a str),
    /// An AWS service (e.g. `sns.amazonaws.com`) acting for a resource of an account. Lamina's
    /// own services invoke as one (SNS topics deliver to functions this way).
    #[cfg_attr(not(test), allow(dead_code))]
    Service {
        service: &'a str,
        source_arn: &'a str,
        source_account: &'a str,
    },
    /// A request to a function URL: signed by an account (`AWS_IAM`), or anyone (`NONE`).
    Url {
        account: Option<&'a str>,
        auth_type: &'a str,
    },
}

pub(super) fn is_sid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_action(s: &str) -> bool {
    s == "*"
        || s == "lambda:*"
        || s.strip_prefix("lambda:")
            .is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// AddPermission's `SourceArn`, as Lambda checks it: a partition, a service, and a region and an
/// account that are literal or empty (wildcards go in the resource, the sixth part).
const SOURCE_ARN: &str =
    r"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)";

fn is_source_arn(s: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(&format!("^(?:{SOURCE_ARN})$")).expect("a valid pattern")
    });
    PATTERN.is_match(s)
}

/// The statement's `Principal`, as Lambda writes it.
fn principal_json(p: &str) -> Result<Value, LambdaError> {
    let invalid = || {
        LambdaError::invalid_parameter(
            "The provided principal was invalid. Please check the principal and try again.",
        )
    };
    if p == "*" {
        return Ok(json!("*"));
    }
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(json!({ "AWS": format!("arn:aws:iam::{p}:root") }));
    }
    if p.starts_with("arn:aws:iam::") {
        return Ok(json!({ "AWS": p }));
    }
    if p.ends_with(".amazonaws.com") && !p.contains(char::is_whitespace) {
        return Ok(json!({ "Service": p }));
    }
    Err(invalid())
}

/// The statement AddPermission builds.
fn statement(r: AddPermissionRequest, resource: String) -> Result<(String, Value), LambdaError> {
    let sid = r
        .statement_id
        .ok_or_else(|| LambdaError::missing("statementId"))?;
    if !is_sid(&sid) {
        return Err(LambdaError::validation(
            &sid,
            "statementId",
            "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
        ));
    }
    let action = r.action.ok_or_else(|| LambdaError::missing("action"))?;
    if !is_action(&action) {
        return Err(LambdaError::validation(
            &action,
            "action",
            "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
        ));
    }
    let principal = r
        .principal
        .ok_or_else(|| LambdaError::missing("principal"))?;
    let mut st = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal_json(&principal)?,
        "Action": action,
        "Resource": resource,
    });
    let mut condition = serde_json::Map::new();
    let mut equals = serde_json::Map::new();
    if let Some(account) = r.source_account {
        if !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())) {
            return Err(LambdaError::validation(
                &account,
                "sourceAccount",
                "Member must satisfy regular expression pattern: \\d{12}",
            ));
        }
        equals.insert("AWS:SourceAccount".into(), json!(account));
    }
    if let Some(org) = r.principal_org_id {
        equals.insert("aws:PrincipalOrgID".into(), json!(org));
    }
    if let Some(token) = r.event_source_token {
        equals.insert("lambda:EventSourceToken".into(), json!(token));
    }
    if let Some(auth) = r.function_url_auth_type {
        if auth != "NONE" && auth != "AWS_IAM" {
            return Err(LambdaError::validation(
                &auth,
                "functionUrlAuthType",
                "Member must satisfy enum value set: [AWS_IAM, NONE]",
            ));
        }
        equals.insert("lambda:FunctionUrlAuthType".into(), json!(auth));
    }
    if r.invoked_via_function_url == Some(true) {
        equals.insert("lambda:InvokedViaFunctionUrl".into(), json!("true"));
    }
    if !equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(equals));
    }
    if let Some(source) = r.source_arn {
        if !is_source_arn(&source) {
            return Err(LambdaError::validation(
                &source,
                "sourceArn",
                &format!("Member must satisfy regular expression pattern: {SOURCE_ARN}"),
            ));
        }
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": source }));
    }
    if !condition.is_empty() {
        st["Condition"] = Value::Object(condition);
    }
    Ok((sid, st))
}

/// The policy qualifier of a request: `""` for the function, else a version or alias that must
/// exist. `$LATEST` is refused, as Lambda does.
async fn policy_qualifier(
    state: &AppState,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
) -> ApiResult<String> {
    match qualifier {
        None => Ok(String::new()),
        Some(Qualifier::Latest) => Err(LambdaError::invalid_parameter(
            "We currently do not support adding policies for $LATEST.",
        )
        .into()),
        Some(q) => {
            super::versions::version_for(state, key, Some(q)).await?;
            Ok(q.to_string())
        }
    }
}

fn document(statements: &[Value]) -> String {
    json!({ "Version": "2012-10-17", "Id": "default", "Statement": statements }).to_string()
}

fn parse_statements(stored: &str) -> Result<Vec<Value>, StoreError> {
    serde_json::from_str(stored).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `POST /2015-03-31/functions/{name}/policy`.
pub async fn add(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let q = Query::parse(raw.as_deref());
    let (key, qualifier) = resolve(&caller, &name, q.get("Qualifier"), "AddPermission")?;
    let req: AddPermissionRequest = json_body(&body)?;
    exists(&state, &key).await?;
    let pq = policy_qualifier(&state, &key, qualifier.as_ref()).await?;
    let revision = req.revision_id.clone();
    let (sid, st) = statement(req, arn(&key, qualifier.as_ref()))?;
    let text = st.to_string();
    let store = state.store.clone();
    let k = key.clone();
    blocking(move || {
        store
            .update_policy(&k, &pq, revision.as_deref(), |current| {
                let mut statements = match current {
                    Some(c) => parse_statements(&c.statements)?,
                    None => Vec::new(),
                };
                if statements.iter().any(|s| s["Sid"] == sid.as_str()) {
                    return Err(StoreError::Rejected(LambdaError::conflict(format!(
                        "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
                    ))));
                }
                statements.push(st);
                if document(&statements).len() > MAX_POLICY {
                    return Err(StoreError::Rejected(LambdaError::new(
                        ErrorKind::PolicyLengthExceeded,
                        format!("The final policy size is bigger than the limit ({MAX_POLICY})."),
                    )));
                }
                serde_json::to_string(&statements).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .map_err(|e| match e {
                StoreError::NotFound => function_not_found(&k, None),
                e => e.into(),
            })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "Statement": text }))))
}

/// `GET /2015-03-31/functions/{name}/policy`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    let (key, qualifier) = resolve(&caller, &name, q.get("Qualifier"), "GetPolicy")?;
    let pq = match &qualifier {
        None | Some(Qualifier::Latest) => String::new(),
        Some(q) => q.to_string(),
    };
    let store = state.store.clone();
    let found = blocking(move || Ok(store.policy(&key, &pq)?)).await?;
    let policy = found
        .ok_or_else(|| LambdaError::not_found("The resource you requested does not exist."))?;
    let statements = parse_statements(&policy.statements).map_err(super::ApiError::from)?;
    Ok(Json(json!({
        "Policy": document(&statements),
        "RevisionId": policy.revision_id,
    })))
}

/// `DELETE /2015-03-31/functions/{name}/policy/{sid}`.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, sid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let q = Query::parse(raw.as_deref());
    let (key, qualifier) = resolve(&caller, &name, q.get("Qualifier"), "RemovePermission")?;
    let revision = q.get("RevisionId").map(str::to_owned);
    let pq = match &qualifier {
        None | Some(Qualifier::Latest) => String::new(),
        Some(q) => q.to_string(),
    };
    let store = state.store.clone();
    let k = key.clone();
    let fn_arn = arn(&key, qualifier.as_ref());
    blocking(move || {
        store
            .update_policy(&k, &pq, revision.as_deref(), |current| {
                let Some(current) = current else {
                    return Err(StoreError::Rejected(LambdaError::not_found(
                        "No policy is associated with the given resource.",
                    )));
                };
                let mut statements = parse_statements(&current.statements)?;
                let before = statements.len();
                statements.retain(|s| s["Sid"] != sid.as_str());
                if statements.len() == before {
                    return Err(StoreError::Rejected(LambdaError::not_found(format!(
                        "Statement {sid} is not found in resource policy."
                    ))));
                }
                serde_json::to_string(&statements).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .map_err(|e| match e {
                StoreError::NotFound => {
                    LambdaError::not_found(format!("No policy found for: {fn_arn}")).into()
                }
                e => e.into(),
            })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn exists(state: &AppState, key: &FunctionKey) -> ApiResult<()> {
    let store = state.store.clone();
    let k = key.clone();
    let found = blocking(move || Ok(store.get_function(&k)?)).await?;
    found
        .map(|_| ())
        .ok_or_else(|| function_not_found(key, None))
}

/// Whether the policy of exactly what is invoked lets `who` perform `action` (e.g.
/// `lambda:InvokeFunction`). As on Lambda, the function's own policy covers the unqualified
/// function and `$LATEST`; a version or alias is covered only by its own.
pub(crate) async fn allows(
    state: &AppState,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
    action: &str,
    who: Principal<'_>,
) -> ApiResult<bool> {
    let store = state.store.clone();
    let k = key.clone();
    let pq = match qualifier {
        None | Some(Qualifier::Latest) => String::new(),
        Some(q) => q.to_string(),
    };
    let policies = blocking(move || match store.policy(&k, &pq)? {
        Some(p) => Ok(parse_statements(&p.statements)?),
        None => Ok(Vec::new()),
    })
    .await?;
    Ok(policies.iter().any(|s| statement_allows(s, action, &who)))
}

fn statement_allows(s: &Value, action: &str, who: &Principal<'_>) -> bool {
    if s["Effect"] != "Allow" {
        return false;
    }
    let a = s["Action"].as_str().unwrap_or_default();
    if !(a == "*" || a == "lambda:*" || a == action) {
        return false;
    }
    let principal_ok = match (&s["Principal"], who) {
        (Value::String(p), _) => p == "*",
        (p, Principal::Account(account)) => p["AWS"]
            .as_str()
            .is_some_and(|arn| arn == format!("arn:aws:iam::{account}:root") || arn == *account),
        (p, Principal::Service { service, .. }) => p["Service"] == *service,
        (p, Principal::Url { account, .. }) => account.is_some_and(|account| {
            p["AWS"]
                .as_str()
                .is_some_and(|arn| arn == format!("arn:aws:iam::{account}:root") || arn == account)
        }),
    };
    if !principal_ok {
        return false;
    }
    let condition = &s["Condition"];
    let (source_arn, source_account) = match who {
        Principal::Service {
            source_arn,
            source_account,
            ..
        } => (Some(*source_arn), Some(*source_account)),
        Principal::Account(_) | Principal::Url { .. } => (None, None),
    };
    if let Some(pattern) = condition["ArnLike"]["AWS:SourceArn"].as_str()
        && !source_arn.is_some_and(|arn| crate::auth::arn_like(pattern, arn))
    {
        return false;
    }
    if let Some(want) = condition["StringEquals"]["AWS:SourceAccount"].as_str()
        && source_account != Some(want)
    {
        return false;
    }
    if let Principal::Url { auth_type, .. } = who {
        // A function URL request: its auth type, and that it came through a URL, hold.
        return condition["StringEquals"].as_object().is_none_or(|m| {
            m.iter().all(|(k, v)| match k.as_str() {
                "lambda:FunctionUrlAuthType" => v == *auth_type,
                "lambda:InvokedViaFunctionUrl" => v == "true",
                _ => false,
            })
        }) && condition.get("ArnLike").is_none();
    }
    // Conditions on function URLs, organisations or event source tokens never hold for a plain
    // invoke.
    let other = condition["StringEquals"]
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k != "AWS:SourceAccount"));
    !other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(principal: &str, source_arn: Option<&str>) -> Value {
        statement(
            AddPermissionRequest {
                statement_id: Some("s1".into()),
                action: Some("lambda:InvokeFunction".into()),
                principal: Some(principal.into()),
                source_arn: source_arn.map(Into::into),
                ..Default::default()
            },
            "arn:aws:lambda:us-east-1:111111111111:function:f".into(),
        )
        .unwrap()
        .1
    }

    #[test]
    fn statements_are_built_as_lambda_builds_them() {
        assert_eq!(
            add("222222222222", None)["Principal"],
            json!({"AWS": "arn:aws:iam::222222222222:root"})
        );
        let s = add(
            "sns.amazonaws.com",
            Some("arn:aws:sns:us-east-1:111111111111:t"),
        );
        assert_eq!(s["Principal"], json!({"Service": "sns.amazonaws.com"}));
        assert_eq!(
            s["Condition"],
            json!({"ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:111111111111:t"}})
        );
        assert_eq!(add("*", None)["Principal"], "*");
        assert!(principal_json("not a principal").is_err());
        // A source's region and account are literal or empty, as Lambda requires.
        for ok in [
            "arn:aws:execute-api:us-east-1:111111111111:abc/*/GET/x",
            "arn:aws:s3:::bucket",
            "arn:aws-us-gov:sns:us-gov-west-1:111111111111:t",
        ] {
            assert!(is_source_arn(ok), "{ok}");
        }
        for bad in [
            "arn:aws:execute-api:*:111111111111:*",
            "arn:aws:execute-api:us-east-1:*:abc/*",
            "arn:aws:sns:us-east-1:*",
            "*",
        ] {
            assert!(!is_source_arn(bad), "{bad}");
        }
    }

    #[test]
    fn evaluation_follows_principal_action_and_source() {
        let s = add("222222222222", None);
        assert!(statement_allows(
            &s,
            "lambda:InvokeFunction",
            &Principal::Account("222222222222")
        ));
        assert!(!statement_allows(
            &s,
            "lambda:InvokeFunction",
            &Principal::Account("333333333333")
        ));
        assert!(!statement_allows(
            &s,
            "lambda:GetFunction",
            &Principal::Account("222222222222")
        ));
        let s = add(
            "sns.amazonaws.com",
            Some("arn:aws:sns:us-east-1:111111111111:*"),
        );
        let sns = |arn| Principal::Service {
            service: "sns.amazonaws.com",
            source_arn: arn,
            source_account: "111111111111",
        };
        assert!(statement_allows(
            &s,
            "lambda:InvokeFunction",
            &sns("arn:aws:sns:us-east-1:111111111111:topic")
        ));
        assert!(!statement_allows(
            &s,
            "lambda:InvokeFunction",
            &sns("arn:aws:sns:us-east-1:999999999999:topic")
        ));
    }
}
