//! Layer version permissions: AddLayerVersionPermission, GetLayerVersionPolicy and
//! RemoveLayerVersionPermission (`/2018-10-31/layers/{name}/versions/{version}/policy`).
//!
//! Statements are checked as Lambda's model checks them, and the policy is bounded as function
//! policies are (20 KB). Each change gives the policy a new revision id; a request's `RevisionId`
//! must be the current one.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lamina_model::{ErrorKind, LambdaError};
use lamina_store::{LayerVersion, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::query::Query;
use super::super::{ApiError, ApiResult, AppState, Caller, blocking, json_body};
use super::{Layer, not_found, version_number};

/// The largest policy document, bytes: Lambda's limit for resource-based policies, as for
/// function policies.
use crate::lambda::policy::{MAX_POLICY, is_sid};

/// `Principal` as Lambda's model has it.
const PRINCIPAL: &str = r"\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PermissionRequest {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    organization_id: Option<String>,
}

/// Checks a `StatementId`: `([a-zA-Z0-9-_]+)`, 1 to 100 characters.
fn check_sid(sid: &str) -> Result<(), LambdaError> {
    if is_sid(sid) {
        return Ok(());
    }
    let constraint = if sid.len() > 100 {
        "Member must have length less than or equal to 100"
    } else {
        "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)"
    };
    Err(LambdaError::validation(sid, "statementId", constraint))
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The statement's `Principal` for a request's: everyone (`*`), or an account given by its id
/// or its root's ARN (in any partition), written as Lambda writes it.
fn principal_json(p: &str) -> Result<Value, LambdaError> {
    if p == "*" {
        return Ok(json!("*"));
    }
    let account = if is_account(p) {
        Some(p)
    } else {
        p.strip_prefix("arn:")
            .and_then(|rest| rest.split_once(":iam::"))
            .filter(|(partition, _)| {
                partition.starts_with("aws")
                    && partition
                        .bytes()
                        .all(|b| b.is_ascii_alphabetic() || b == b'-')
            })
            .and_then(|(_, rest)| rest.strip_suffix(":root"))
            .filter(|a| is_account(a))
    };
    match account {
        Some(a) => Ok(json!({ "AWS": format!("arn:aws:iam::{a}:root") })),
        None => Err(LambdaError::validation(
            p,
            "principal",
            &format!("Member must satisfy regular expression pattern: {PRINCIPAL}"),
        )),
    }
}

/// Checks an `OrganizationId`: `o-[a-z0-9]{10,32}`.
fn check_org(org: &str) -> Result<(), LambdaError> {
    let ok = org.strip_prefix("o-").is_some_and(|id| {
        (10..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if ok {
        return Ok(());
    }
    Err(LambdaError::validation(
        org,
        "organizationId",
        "Member must satisfy regular expression pattern: o-[a-z0-9]{10,32}",
    ))
}

/// The statement AddLayerVersionPermission adds to the version `resource`: its id and itself.
fn statement(req: PermissionRequest, resource: String) -> Result<(String, Value), LambdaError> {
    let sid = req
        .statement_id
        .ok_or_else(|| LambdaError::missing("statementId"))?;
    check_sid(&sid)?;
    let action = req.action.ok_or_else(|| LambdaError::missing("action"))?;
    if action != "lambda:GetLayerVersion" {
        return Err(LambdaError::validation(
            &action,
            "action",
            "Member must satisfy regular expression pattern: lambda:GetLayerVersion",
        ));
    }
    let principal = req
        .principal
        .ok_or_else(|| LambdaError::missing("principal"))?;
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal_json(&principal)?,
        "Action": action,
        "Resource": resource,
    });
    if let Some(org) = req.organization_id {
        check_org(&org)?;
        statement["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
    }
    Ok((sid, statement))
}

fn policy_document(statements: &[Value]) -> String {
    json!({ "Version": "2012-10-17", "Id": "default", "Statement": statements }).to_string()
}

/// Changes the policy of `layer`'s `version` (see `Store::change_layer_policy`); returns what
/// `change` returned and the new revision id.
async fn change<T: Send + 'static>(
    state: &AppState,
    layer: Layer,
    version: u64,
    revision: Option<String>,
    change: impl FnOnce(&mut Vec<Value>) -> Result<T, LambdaError> + Send + 'static,
) -> ApiResult<(T, String)> {
    let store = state.store.clone();
    blocking(move || {
        let at = (
            layer.account.as_str(),
            layer.region.as_str(),
            layer.name.as_str(),
            version,
        );
        store
            .change_layer_policy(at, revision.as_deref(), change)
            .map_err(|e| match e {
                StoreError::NotFound => not_found(),
                e => ApiError::from(e),
            })
    })
    .await
}

/// `POST /2018-10-31/layers/{name}/versions/{version}/policy[?RevisionId=]`.
pub async fn add_permission(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let layer = Layer::parse(&caller, &name)?;
    let version = version_number(&version)?;
    let req: PermissionRequest = json_body(&body)?;
    let (sid, statement) = statement(req, format!("{}:{version}", layer.arn()))?;
    let layer = layer.owned(&caller, "AddLayerVersionPermission", Some(version))?;
    let revision = Query::parse(raw.as_deref())
        .get("RevisionId")
        .map(str::to_owned);
    let added = statement.clone();
    let ((), revision) = change(&state, layer, version, revision, move |policy| {
        if policy.iter().any(|s| s["Sid"] == sid.as_str()) {
            return Err(LambdaError::conflict(format!(
                "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
            )));
        }
        policy.push(added);
        if policy_document(policy).len() > MAX_POLICY {
            return Err(LambdaError::new(
                ErrorKind::PolicyLengthExceeded,
                format!("The final policy size is bigger than the limit ({MAX_POLICY})."),
            ));
        }
        Ok(())
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Statement": statement.to_string(), "RevisionId": revision })),
    )
        .into_response())
}

/// `GET /2018-10-31/layers/{name}/versions/{version}/policy`.
pub async fn get_policy(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let layer = Layer::parse(&caller, &name)?;
    let version = version_number(&version)?;
    let layer = layer.owned(&caller, "GetLayerVersionPolicy", Some(version))?;
    let store = state.store.clone();
    let v: LayerVersion = blocking(move || {
        Ok(store.layer_version(&layer.account, &layer.region, &layer.name, version, false)?)
    })
    .await?
    .ok_or_else(not_found)?;
    if v.policy.is_empty() {
        return Err(not_found());
    }
    Ok(Json(json!({
        "Policy": policy_document(&v.policy),
        "RevisionId": v.policy_revision,
    })))
}

/// `DELETE /2018-10-31/layers/{name}/versions/{version}/policy/{sid}[?RevisionId=]`.
pub async fn remove_permission(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version, sid)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let layer = Layer::parse(&caller, &name)?;
    let version = version_number(&version)?;
    check_sid(&sid)?;
    let layer = layer.owned(&caller, "RemoveLayerVersionPermission", Some(version))?;
    let revision = Query::parse(raw.as_deref())
        .get("RevisionId")
        .map(str::to_owned);
    change(&state, layer, version, revision, move |policy| {
        let before = policy.len();
        policy.retain(|s| s["Sid"] != sid.as_str());
        if policy.len() == before {
            return Err(LambdaError::not_found(
                "The resource you requested does not exist.",
            ));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_accounts_or_everyone() {
        let root = json!({ "AWS": "arn:aws:iam::222222222222:root" });
        assert_eq!(principal_json("222222222222").unwrap(), root);
        assert_eq!(
            principal_json("arn:aws:iam::222222222222:root").unwrap(),
            root
        );
        assert_eq!(
            principal_json("arn:aws-cn:iam::222222222222:root").unwrap(),
            root
        );
        assert_eq!(principal_json("*").unwrap(), json!("*"));
        for bad in [
            "",
            "2222",
            "2222222222222",
            "arn:aws:iam::222222222222:role/r",
            "arn:aws:iam::arn:aws:iam::222222222222:root:root",
            "arn:aws:iam::22222222222x:root",
            "arn::iam::222222222222:root",
            "s3.amazonaws.com",
        ] {
            let e = principal_json(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation, "{bad}");
            assert!(e.message.contains("at 'principal'"), "{}", e.message);
        }
    }

    #[test]
    fn statement_ids_and_organizations_follow_the_model() {
        for ok in ["a", "A-b_9", &"s".repeat(100)] {
            check_sid(ok).unwrap();
        }
        for bad in ["", "a b", "a:b", &"s".repeat(101)] {
            assert_eq!(check_sid(bad).unwrap_err().kind, ErrorKind::Validation);
        }
        check_org("o-abcdefghij").unwrap();
        check_org(&format!("o-{}", "a".repeat(32))).unwrap();
        for bad in [
            "o-short",
            "o-ABCDEFGHIJ",
            "abcdefghijkl",
            &format!("o-{}", "a".repeat(33)),
        ] {
            assert!(check_org(bad).is_err(), "{bad}");
        }
    }
}
