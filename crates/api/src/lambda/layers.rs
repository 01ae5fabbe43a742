//! Layers (2018-10-31): PublishLayerVersion, GetLayerVersion, GetLayerVersionByArn, ListLayers,
//! ListLayerVersions, DeleteLayerVersion, and layer version permissions (in [`permissions`]);
//! plus resolving the layers a function names.
//!
//! A request names a layer by name (the caller's) or by ARN. A layer is used only in its own
//! region; only its account changes it, lists its versions or reads its policy, and another
//! account reads a version (GetLayerVersion, GetLayerVersionByArn, a function's `Layers`) when
//! the version's policy lets it.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lamina_model::{ErrorKind, FunctionSpec, LambdaError, LayerCode, format_timestamp};
use lamina_store::{LayerVersion, NewLayerVersion};
use serde::Deserialize;
use serde_json::{Value, json};

use super::query::Query;
use super::{ApiError, ApiResult, AppState, Caller, blocking, json_body};

mod permissions;
#[cfg(test)]
mod tests;

pub use permissions::{add_permission, get_policy, remove_permission};

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

fn layer_arn(caller_region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{caller_region}:{account}:layer:{name}")
}

fn not_found() -> ApiError {
    LambdaError::not_found("The resource you requested does not exist.").into()
}

/// `LayerName` as botocore's model has it: a layer's ARN or its name.
const LAYER_NAME: &str =
    r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+";

/// Whether `name` is a layer's name: `[a-zA-Z0-9-_]{1,140}`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 140
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A layer a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layer {
    account: String,
    region: String,
    name: String,
}

impl Layer {
    /// The layer `raw` (a `LayerName`: a name of the caller's, or an ARN) names. A layer of
    /// another region is refused, as Lambda refuses it.
    fn parse(caller: &Caller, raw: &str) -> ApiResult<Self> {
        let bad = || {
            LambdaError::validation(
                raw,
                "layerName",
                &format!("Member must satisfy regular expression pattern: {LAYER_NAME}"),
            )
        };
        let layer = if is_name(raw) {
            Self {
                account: caller.account.to_string(),
                region: caller.region.to_string(),
                name: raw.to_owned(),
            }
        } else {
            match raw.split(':').collect::<Vec<_>>().as_slice() {
                ["arn", p, "lambda", region, account, "layer", name]
                    if p.starts_with("aws") && is_name(name) =>
                {
                    lamina_model::Region::parse(region).map_err(|_| bad())?;
                    lamina_model::AccountId::parse(account).map_err(|_| bad())?;
                    Self {
                        account: account.to_string(),
                        region: region.to_string(),
                        name: name.to_string(),
                    }
                }
                _ => return Err(bad().into()),
            }
        };
        same_region(caller, &layer.region, "request")?;
        Ok(layer)
    }

    /// The layer, for an operation only its own account may perform on it (or on its
    /// `version`): another account's is refused as Lambda refuses it, for want of a statement
    /// that could allow it.
    fn owned(self, caller: &Caller, operation: &str, version: Option<u64>) -> ApiResult<Self> {
        if self.account == caller.account.as_str() {
            return Ok(self);
        }
        let mut resource = self.arn();
        if let Some(v) = version {
            resource = format!("{resource}:{v}");
        }
        Err(LambdaError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: arn:aws:iam::{}:root is not authorized to perform: lambda:{operation} on resource: {resource} because no resource-based policy allows the lambda:{operation} action",
                caller.account
            ),
        )
        .into())
    }

    fn arn(&self) -> String {
        layer_arn(&self.region, &self.account, &self.name)
    }
}

/// Refuses a layer of `region` unless the caller's: Lambda uses layers in their own region
/// only. `what` is the layer's user: the `function`, or the `request`.
fn same_region(caller: &Caller, region: &str, what: &str) -> Result<(), LambdaError> {
    if region == caller.region.as_str() {
        return Ok(());
    }
    Err(LambdaError::invalid_parameter(format!(
        "Layers are not in the same region as the {what}. Layers are expected to be in region {}.",
        caller.region
    )))
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
    let name = Layer::parse(&caller, &name)?
        .owned(&caller, "PublishLayerVersion", None)?
        .name;
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

/// `GET /2018-10-31/layers/{name}/versions/{version}`: the caller's, or another account's
/// that its policy shares with the caller.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let layer = Layer::parse(&caller, &name)?;
    let version = version_number(&version)?;
    let v = readable(&state, &caller, layer, version)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(render(&state, &host(&headers), &v)))
}

/// A live layer version the caller may read: its own, or one whose policy allows the caller.
async fn readable(
    state: &AppState,
    caller: &Caller,
    layer: Layer,
    version: u64,
) -> ApiResult<Option<LayerVersion>> {
    let store = state.store.clone();
    let Layer {
        account,
        region,
        name,
    } = layer;
    let v = blocking(move || Ok(store.layer_version(&account, &region, &name, version, false)?))
        .await?;
    Ok(v.filter(|v| v.account == caller.account.as_str() || allows(v, caller.account.as_str())))
}

/// A list's `Marker`, which must be one the list returned: `valid` says whether it is.
fn marker(q: &Query, valid: impl Fn(&str) -> bool) -> ApiResult<Option<&str>> {
    match q.get("Marker").filter(|m| !m.is_empty()) {
        None => Ok(None),
        Some(m) if valid(m) => Ok(Some(m)),
        Some(_) => {
            Err(LambdaError::invalid_parameter("Marker is not one this server returned.").into())
        }
    }
}

/// A listed version: without its content and its layer's ARN.
fn listed(state: &AppState, host: &str, v: &LayerVersion) -> Value {
    let mut j = render(state, host, v);
    if let Some(o) = j.as_object_mut() {
        o.remove("Content");
        o.remove("LayerArn");
    }
    j
}

/// `GET /2018-10-31/layers/{name}/versions`: newest first, those compatible with
/// `CompatibleRuntime` and `CompatibleArchitecture` when given, in pages whose `NextMarker` is
/// the last version's number (numbers are never reused, so a marker stays valid).
pub async fn list_versions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let layer = Layer::parse(&caller, &name)?.owned(&caller, "ListLayerVersions", None)?;
    let q = Query::parse(raw.as_deref());
    let max = super::max_items(&q)?;
    let before = marker(&q, |m| m.parse::<u64>().is_ok())?.and_then(|m| m.parse::<u64>().ok());
    let runtime = q.get("CompatibleRuntime").map(str::to_owned);
    let arch = q.get("CompatibleArchitecture").map(str::to_owned);
    let store = state.store.clone();
    let mut page = blocking(move || {
        let at = (
            layer.account.as_str(),
            layer.region.as_str(),
            layer.name.as_str(),
        );
        let m = (runtime.as_deref(), arch.as_deref());
        Ok(store.layer_versions(at, m, before, max + 1)?)
    })
    .await?;
    let more = page.len() > max;
    page.truncate(max);
    let h = host(&headers);
    let versions: Vec<Value> = page.iter().map(|v| listed(&state, &h, v)).collect();
    let mut out = json!({ "LayerVersions": versions });
    if more && let Some(last) = page.last() {
        out["NextMarker"] = json!(last.version.to_string());
    }
    Ok(Json(out))
}

/// `GET /2018-10-31/layers` (ListLayers) and `?find=LayerVersion&Arn=` (GetLayerVersionByArn).
///
/// ListLayers shows each layer with its newest version compatible with `CompatibleRuntime` and
/// `CompatibleArchitecture` (when given), layers without one left out, by name, in pages whose
/// `NextMarker` is the last layer's name.
pub async fn list_or_find(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    if q.get("find") == Some("LayerVersion") {
        let arn = q.get("Arn").ok_or_else(|| LambdaError::missing("arn"))?;
        let (layer, version) = parse_version_arn(arn, "arn")?;
        same_region(&caller, &layer.region, "request")?;
        let v = readable(&state, &caller, layer, version)
            .await?
            .ok_or_else(not_found)?;
        return Ok(Json(render(&state, &host(&headers), &v)));
    }
    let max = super::max_items(&q)?;
    let after = marker(&q, is_name)?.map(str::to_owned);
    let runtime = q.get("CompatibleRuntime").map(str::to_owned);
    let arch = q.get("CompatibleArchitecture").map(str::to_owned);
    let store = state.store.clone();
    let (a, r) = (caller.account.to_string(), caller.region.to_string());
    let mut page = blocking(move || {
        let m = (runtime.as_deref(), arch.as_deref());
        Ok(store.latest_layers((&a, &r), m, after.as_deref(), max + 1)?)
    })
    .await?;
    let more = page.len() > max;
    page.truncate(max);
    let h = host(&headers);
    let layers: Vec<Value> = page
        .iter()
        .map(|v| {
            json!({
                "LayerName": v.name,
                "LayerArn": layer_arn(&v.region, &v.account, &v.name),
                "LatestMatchingVersion": listed(&state, &h, v),
            })
        })
        .collect();
    let mut out = json!({ "Layers": layers });
    if more && let Some(last) = page.last() {
        out["NextMarker"] = json!(last.name);
    }
    Ok(Json(out))
}

/// `DELETE /2018-10-31/layers/{name}/versions/{version}` (idempotent).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let layer = Layer::parse(&caller, &name)?;
    let version = version_number(&version)?;
    let layer = layer.owned(&caller, "DeleteLayerVersion", Some(version))?;
    let store = state.store.clone();
    blocking(move || {
        let Layer {
            account,
            region,
            name,
        } = layer;
        Ok(store.delete_layer_version(&account, &region, &name, version)?)
    })
    .await?;
    // Its code goes unless a function version still uses it.
    super::collect_code(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// `arn:aws:lambda:R:A:layer:NAME:N` (the request's `member`) → the layer and the version.
fn parse_version_arn(arn: &str, member: &str) -> Result<(Layer, u64), LambdaError> {
    let bad = || {
        LambdaError::validation(
            arn,
            member,
            "Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+",
        )
    };
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", p, "lambda", region, account, "layer", name, version]
            if p.starts_with("aws") && is_name(name) =>
        {
            lamina_model::Region::parse(region).map_err(|_| bad())?;
            lamina_model::AccountId::parse(account).map_err(|_| bad())?;
            let v: u64 = version.parse().map_err(|_| bad())?;
            let layer = Layer {
                account: account.to_string(),
                region: region.to_string(),
                name: name.to_string(),
            };
            Ok((layer, v))
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
        let (layer, version) = parse_version_arn(arn, "layers")?;
        same_region(caller, &layer.region, "function")?;
        let v = readable(state, caller, layer, version).await?;
        let v = v.ok_or_else(|| {
            ApiError::from(LambdaError::not_found(format!(
                "Layer version {arn} does not exist."
            )))
        })?;
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
