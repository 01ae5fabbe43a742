//! Layers (2018-10-31): PublishLayerVersion, GetLayerVersion, GetLayerVersionByArn, ListLayers,
//! ListLayerVersions, DeleteLayerVersion, and layer version permissions; plus resolving the
//! layers a function names.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lamina_model::{FunctionSpec, LambdaError, LayerCode, format_timestamp};
use lamina_store::{LayerVersion, NewLayerVersion, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::query::Query;
use super::{ApiError, ApiResult, AppState, Caller, blocking, json_body};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Content {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishRequest {
    content: Option<Content>,
    description: Option<String>,
    compatible_runtimes: Option<Vec<String>>,
    compatible_architectures: Option<Vec<String>>,
    license_info: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PermissionRequest {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    organization_id: Option<String>,
}

fn layer_arn(caller_region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{caller_region}:{account}:layer:{name}")
}

fn not_found() -> ApiError {
    LambdaError::not_found("The resource you requested does not exist.").into()
}

fn check_name(name: &str) -> Result<(), LambdaError> {
    if name.is_empty()
        || name.len() > 140
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(LambdaError::validation(
            name,
            "layerName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+",
        ));
    }
    Ok(())
}

fn version_number(v: &str) -> Result<u64, LambdaError> {
    match v.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n as u64),
        Ok(_) => Err(LambdaError::invalid_parameter(
            "Layer Version Cannot be less than 1",
        )),
        Err(_) => Err(LambdaError::validation(
            v,
            "versionNumber",
            "Member must be a number",
        )),
    }
}

fn render(state: &AppState, host: &str, v: &LayerVersion) -> Value {
    let arn = layer_arn(&v.region, &v.account, &v.name);
    let mut out = json!({
        "Content": {
            "Location": super::code::location(state, host, &v.code.sha256_hex),
            "CodeSha256": v.code.sha256_base64(),
            "CodeSize": v.code.size,
        },
        "LayerArn": arn,
        "LayerVersionArn": format!("{arn}:{}", v.version),
        "Description": v.description,
        "CreatedDate": format_timestamp(v.created_ms),
        "Version": v.version,
        "CompatibleRuntimes": v.runtimes,
        "CompatibleArchitectures": v.architectures,
    });
    if let Some(l) = &v.license {
        out["LicenseInfo"] = l.clone().into();
    }
    out
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:9001")
        .to_owned()
}

/// `POST /2018-10-31/layers/{name}/versions`.
pub async fn publish(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_name(&name)?;
    let req: PublishRequest = json_body(&body)?;
    let content = req.content.ok_or_else(|| LambdaError::missing("content"))?;
    if content.s3_bucket.is_some() {
        return Err(LambdaError::invalid_parameter(
            "This server keeps code itself: upload the layer as Content.ZipFile.",
        )
        .into());
    }
    let b64 = content
        .zip_file
        .ok_or_else(|| LambdaError::invalid_parameter("Content.ZipFile is required."))?;
    let zip = super::functions::decode_zip(&state, &b64)?;
    let runtimes = req.compatible_runtimes.unwrap_or_default();
    if runtimes.len() > 15 {
        return Err(LambdaError::validation(
            runtimes.len(),
            "compatibleRuntimes",
            "Member must have length less than or equal to 15",
        )
        .into());
    }
    for r in &runtimes {
        lamina_model::Runtime::parse(r)?;
    }
    let architectures = req.compatible_architectures.unwrap_or_default();
    if architectures.len() > 2
        || architectures
            .iter()
            .any(|a| lamina_model::Architecture::parse(a).is_none())
    {
        return Err(LambdaError::validation(
            format!("{architectures:?}"),
            "compatibleArchitectures",
            "Member must satisfy enum value set: [x86_64, arm64] with at most 2 items",
        )
        .into());
    }
    let description = req.description.unwrap_or_default();
    lamina_model::limits::check_description(&description)?;
    if req
        .license_info
        .as_ref()
        .is_some_and(|l| l.chars().count() > 512)
    {
        return Err(LambdaError::validation(
            "...",
            "licenseInfo",
            "Member must have length less than or equal to 512",
        )
        .into());
    }
    let store = state.store.clone();
    let limits = state.extract_limits();
    let storage_max = state.limits.code_storage_max_bytes;
    let new_account = caller.account.to_string();
    let new_region = caller.region.to_string();
    let v = blocking(move || {
        Ok(store.publish_layer(
            NewLayerVersion {
                account: new_account,
                region: new_region,
                name,
                description,
                license: req.license_info,
                runtimes,
                architectures,
                zip: &zip,
            },
            limits,
            storage_max,
        )?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(render(&state, &host(&headers), &v)),
    )
        .into_response())
}

/// `GET /2018-10-31/layers/{name}/versions/{version}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    check_name(&name)?;
    let version = version_number(&version)?;
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    let v = blocking(move || Ok(store.layer_version(&a, &r, &name, version, false)?))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(render(&state, &host(&headers), &v)))
}

/// `GET /2018-10-31/layers/{name}/versions`.
pub async fn list_versions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    check_name(&name)?;
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    let all = blocking(move || Ok(store.layer_versions(&a, &r, &name)?)).await?;
    let h = host(&headers);
    let versions: Vec<Value> = all
        .iter()
        .map(|v| {
            let mut j = render(&state, &h, v);
            if let Some(o) = j.as_object_mut() {
                o.remove("Content");
                o.remove("LayerArn");
            }
            j
        })
        .collect();
    Ok(Json(json!({ "LayerVersions": versions })))
}

/// `GET /2018-10-31/layers` (ListLayers) and `?find=LayerVersion&Arn=` (GetLayerVersionByArn).
pub async fn list_or_find(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    if q.get("find") == Some("LayerVersion") {
        let arn = q
            .get("Arn")
            .ok_or_else(|| LambdaError::missing("arn"))?
            .to_owned();
        let (account, region, name, version) = parse_version_arn(&arn)?;
        let store = state.store.clone();
        let v =
            blocking(move || Ok(store.layer_version(&account, &region, &name, version, false)?))
                .await?
                .ok_or_else(not_found)?;
        if v.account != caller.account.as_str() && !allows(&v, caller.account.as_str()) {
            return Err(not_found());
        }
        return Ok(Json(render(&state, &host(&headers), &v)));
    }
    let runtime = q.get("CompatibleRuntime").map(str::to_owned);
    let arch = q.get("CompatibleArchitecture").map(str::to_owned);
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    let all = blocking(move || Ok(store.latest_layers(&a, &r)?)).await?;
    let h = host(&headers);
    let layers: Vec<Value> = all
        .iter()
        .filter(|v| runtime.as_ref().is_none_or(|rt| v.runtimes.contains(rt)))
        .filter(|v| arch.as_ref().is_none_or(|ar| v.architectures.contains(ar)))
        .map(|v| {
            let mut latest = render(&state, &h, v);
            if let Some(o) = latest.as_object_mut() {
                o.remove("Content");
                o.remove("LayerArn");
            }
            json!({ "LayerName": v.name, "LayerArn": layer_arn(&v.region, &v.account, &v.name), "LatestMatchingVersion": latest })
        })
        .collect();
    Ok(Json(json!({ "Layers": layers })))
}

/// `DELETE /2018-10-31/layers/{name}/versions/{version}` (idempotent).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    check_name(&name)?;
    let version = version_number(&version)?;
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    blocking(move || Ok(store.delete_layer_version(&a, &r, &name, version)?)).await?;
    // Its code goes unless a function version still uses it.
    super::collect_code(&state);
    Ok(StatusCode::NO_CONTENT)
}

fn policy_document(v: &LayerVersion) -> String {
    json!({ "Version": "2012-10-17", "Id": "default", "Statement": v.policy }).to_string()
}

/// `POST /2018-10-31/layers/{name}/versions/{version}/policy`.
pub async fn add_permission(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    check_name(&name)?;
    let version = version_number(&version)?;
    let req: PermissionRequest = json_body(&body)?;
    let sid = req
        .statement_id
        .ok_or_else(|| LambdaError::missing("statementId"))?;
    let action = req.action.ok_or_else(|| LambdaError::missing("action"))?;
    let principal = req
        .principal
        .ok_or_else(|| LambdaError::missing("principal"))?;
    if action != "lambda:GetLayerVersion" {
        return Err(LambdaError::validation(
            &action,
            "action",
            "Member must satisfy regular expression pattern: lambda:GetLayerVersion",
        )
        .into());
    }
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    let statement = blocking(move || {
        let at = (a.as_str(), r.as_str(), name.as_str(), version);
        let added = store.change_layer_policy(at, |policy| {
        if policy.iter().any(|s| s["Sid"] == sid.as_str()) {
            return Err(LambdaError::conflict(format!("The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement.")));
        }
        let mut statement = json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": if principal == "*" { json!("*") } else { json!({ "AWS": format!("arn:aws:iam::{principal}:root") }) },
            "Action": action,
            "Resource": format!("{}:{version}", layer_arn(&r, &a, &name)),
        });
        if let Some(org) = req.organization_id {
            statement["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
        }
        policy.push(statement.clone());
        Ok(statement)
        });
        added.map_err(|e| match e {
            StoreError::NotFound => not_found(),
            e => e.into(),
        })
    })
    .await?;
    let revision = uuid::Uuid::new_v4().to_string();
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
    check_name(&name)?;
    let version = version_number(&version)?;
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    let v = blocking(move || Ok(store.layer_version(&a, &r, &name, version, false)?))
        .await?
        .ok_or_else(not_found)?;
    if v.policy.is_empty() {
        return Err(not_found());
    }
    Ok(Json(
        json!({ "Policy": policy_document(&v), "RevisionId": uuid::Uuid::new_v4().to_string() }),
    ))
}

/// `DELETE /2018-10-31/layers/{name}/versions/{version}/policy/{sid}`.
pub async fn remove_permission(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version, sid)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    check_name(&name)?;
    let version = version_number(&version)?;
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    blocking(move || {
        let at = (a.as_str(), r.as_str(), name.as_str(), version);
        let removed = store.change_layer_policy(at, |policy| {
            let before = policy.len();
            policy.retain(|s| s["Sid"] != sid.as_str());
            if policy.len() == before {
                return Err(LambdaError::not_found(
                    "The resource you requested does not exist.",
                ));
            }
            Ok(())
        });
        removed.map_err(|e| match e {
            StoreError::NotFound => not_found(),
            e => e.into(),
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `arn:aws:lambda:R:A:layer:NAME:N` → parts.
fn parse_version_arn(arn: &str) -> Result<(String, String, String, u64), LambdaError> {
    let bad = || {
        LambdaError::validation(
            arn,
            "layers",
            "Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+",
        )
    };
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", p, "lambda", region, account, "layer", name, version] if p.starts_with("aws") => {
            lamina_model::Region::parse(region).map_err(|_| bad())?;
            lamina_model::AccountId::parse(account).map_err(|_| bad())?;
            check_name(name).map_err(|_| bad())?;
            let v: u64 = version.parse().map_err(|_| bad())?;
            Ok((account.to_string(), region.to_string(), name.to_string(), v))
        }
        _ => Err(bad()),
    }
}

/// Whether the layer version's policy lets `account` use it. A statement with a condition (an
/// organization's) grants nothing: no account belongs to an organization here.
fn allows(v: &LayerVersion, account: &str) -> bool {
    v.policy.iter().any(|s| {
        s.get("Condition").is_none()
            && (s["Principal"] == "*"
                || s["Principal"]["AWS"] == format!("arn:aws:iam::{account}:root").as_str())
    })
}

/// Resolves `spec.layers` (ARNs) into `spec.layer_code`, checking that each exists and may be
/// used by `caller`. Returns the layers' total unzipped size.
pub(crate) async fn attach(
    state: &AppState,
    caller: &Caller,
    spec: &mut FunctionSpec,
) -> ApiResult<u64> {
    if spec.layers.len() > 5 {
        return Err(LambdaError::invalid_parameter("Cannot reference more than 5 layers.").into());
    }
    let mut resolved = Vec::new();
    for arn in &spec.layers {
        let (account, region, name, version) = parse_version_arn(arn)?;
        let store = state.store.clone();
        let v =
            blocking(move || Ok(store.layer_version(&account, &region, &name, version, false)?))
                .await?;
        let missing = || {
            ApiError::from(LambdaError::not_found(format!(
                "Layer version {arn} does not exist."
            )))
        };
        let v = v.ok_or_else(missing)?;
        if v.account != caller.account.as_str() && !allows(&v, caller.account.as_str()) {
            return Err(missing());
        }
        resolved.push(LayerCode {
            arn: arn.clone(),
            sha256_hex: v.code.sha256_hex.clone(),
            size: v.code.size,
            unzipped_size: v.code.unzipped_size,
        });
    }
    let total = resolved.iter().map(|l| l.unzipped_size).sum();
    spec.layer_code = resolved;
    Ok(total)
}

/// The error for function code plus layers over the unzipped limit.
pub(crate) fn too_big(limit: u64, layers: u64, function: Option<u64>) -> LambdaError {
    let function = function.map_or_else(
        || "the function's code is larger than what remains".to_owned(),
        |f| format!("the function's code takes {f} bytes"),
    );
    LambdaError::invalid_parameter(format!(
        "Function code combined with layers exceeds the maximum allowed size of {limit} bytes: the layers take {layers} bytes and {function}."
    ))
}
