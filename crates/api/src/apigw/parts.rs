//! The parts of an API (routes, integrations, authorizers, stages) through one set of
//! handlers, each kind saying how it is checked; deployments; the authorizer cache reset.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::doc::{ApiDoc, Authorizer, Deployment, Integration, Route, Stage, StoredDeployment};
use super::{ApiGwError, ApiGwResult, body_of, load, modify, new_id, now};
use crate::{AppState, Caller};

/// One kind of part of an API.
pub(crate) trait Part: Serialize + DeserializeOwned + Clone + Send + 'static {
    /// Its name in messages (`Route`, …).
    const KIND: &'static str;
    /// How many an API may have.
    const QUOTA: usize;
    /// The members an update may change.
    const UPDATABLE: &'static [&'static str];
    fn all(doc: &ApiDoc) -> &BTreeMap<String, Self>;
    fn all_mut(doc: &mut ApiDoc) -> &mut BTreeMap<String, Self>;
    /// Gives a new part its id and defaults; returns the id.
    fn init(&mut self, doc: &ApiDoc, now: &str) -> ApiGwResult<String>;
    /// Checks it against the rest of the API.
    fn check(&self, id: &str, doc: &ApiDoc) -> ApiGwResult<()>;
    /// Refuses to delete what is still in use.
    fn in_use(_id: &str, _doc: &ApiDoc) -> ApiGwResult<()> {
        Ok(())
    }
    fn touched(&mut self, _now: &str) {}
}

fn invalid_id<P: Part>(id: &str) -> ApiGwError {
    ApiGwError::not_found(
        format!("Invalid {} identifier specified {id}", P::KIND),
        P::KIND,
    )
}

/// Applies the `allowed` members of `changes` to `current` (`null` clears a member).
pub(crate) fn patch<T: Serialize + DeserializeOwned>(
    current: &T,
    changes: &Map<String, Value>,
    allowed: &[&str],
) -> ApiGwResult<T> {
    let mut v = serde_json::to_value(current).unwrap_or_default();
    if let Value::Object(o) = &mut v {
        for (k, val) in changes
            .iter()
            .filter(|(k, _)| allowed.contains(&k.as_str()))
        {
            if val.is_null() {
                o.remove(k);
            } else {
                o.insert(k.clone(), val.clone());
            }
        }
    }
    serde_json::from_value(v)
        .map_err(|e| ApiGwError::bad_request(format!("Invalid request body: {e}")))
}

/// A page of `(id, item)` by `maxResults` and `nextToken` (the id to start at).
pub(crate) fn page(items: Vec<(String, Value)>, raw: Option<&str>) -> ApiGwResult<Value> {
    let q = crate::query::Query::parse(raw);
    let max = match q.get("maxResults") {
        None => 100,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiGwError::bad_request("maxResults must be a number from 1 to 500."))?,
    };
    let start = match q.get("nextToken") {
        None => 0,
        Some(t) => items
            .iter()
            .position(|(id, _)| id.as_str() >= t)
            .unwrap_or(items.len()),
    };
    let mut out = json!({
        "items": items.iter().skip(start).take(max).map(|(_, v)| v.clone()).collect::<Vec<_>>()
    });
    if let Some((next, _)) = items.get(start + max) {
        out["nextToken"] = json!(next);
    }
    Ok(out)
}

/// `POST /v2/apis/{api}/<parts>`.
pub async fn create<P: Part>(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
    body: Bytes,
) -> ApiGwResult<Response> {
    let mut part: P = body_of(&body)?;
    let made = modify(&state, &caller, &api, true, move |doc| {
        if P::all(doc).len() >= P::QUOTA {
            return Err(ApiGwError::quota(format!(
                "An API can have at most {} {}s.",
                P::QUOTA,
                P::KIND.to_ascii_lowercase()
            )));
        }
        let id = part.init(doc, &now())?;
        part.check(&id, doc)?;
        P::all_mut(doc).insert(id, part.clone());
        Ok(part)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// `GET /v2/apis/{api}/<parts>/{id}`.
pub async fn get<P: Part>(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((api, id)): Path<(String, String)>,
) -> ApiGwResult<Json<P>> {
    let doc = load(&state, &caller, &api).await?;
    P::all(&doc)
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| invalid_id::<P>(&id))
}

/// `GET /v2/apis/{api}/<parts>`.
pub async fn list<P: Part>(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiGwResult<Json<Value>> {
    let doc = load(&state, &caller, &api).await?;
    let items = P::all(&doc)
        .iter()
        .map(|(id, p)| (id.clone(), serde_json::to_value(p).unwrap_or_default()))
        .collect();
    page(items, raw.as_deref()).map(Json)
}

/// `PATCH /v2/apis/{api}/<parts>/{id}`.
pub async fn update<P: Part>(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((api, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiGwResult<Json<P>> {
    let changes: Map<String, Value> = body_of(&body)?;
    let updated = modify(&state, &caller, &api, true, move |doc| {
        let current = P::all(doc).get(&id).ok_or_else(|| invalid_id::<P>(&id))?;
        let mut next: P = patch(current, &changes, P::UPDATABLE)?;
        next.touched(&now());
        next.check(&id, doc)?;
        P::all_mut(doc).insert(id, next.clone());
        Ok(next)
    })
    .await?;
    Ok(Json(updated))
}

/// `DELETE /v2/apis/{api}/<parts>/{id}`.
pub async fn delete<P: Part>(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((api, id)): Path<(String, String)>,
) -> ApiGwResult<StatusCode> {
    modify(&state, &caller, &api, true, |doc| {
        if !P::all(doc).contains_key(&id) {
            return Err(invalid_id::<P>(&id));
        }
        P::in_use(&id, doc)?;
        P::all_mut(doc).remove(&id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

impl Part for Route {
    const KIND: &'static str = "Route";
    const QUOTA: usize = 300;
    const UPDATABLE: &'static [&'static str] = &[
        "routeKey",
        "target",
        "authorizationType",
        "authorizerId",
        "authorizationScopes",
        "apiKeyRequired",
        "operationName",
        "requestParameters",
    ];
    fn all(doc: &ApiDoc) -> &BTreeMap<String, Self> {
        &doc.routes
    }
    fn all_mut(doc: &mut ApiDoc) -> &mut BTreeMap<String, Self> {
        &mut doc.routes
    }
    fn init(&mut self, _doc: &ApiDoc, _now: &str) -> ApiGwResult<String> {
        self.route_id = new_id();
        self.api_gateway_managed = false;
        Ok(self.route_id.clone())
    }
    fn check(&self, id: &str, doc: &ApiDoc) -> ApiGwResult<()> {
        crate::http::routes::parse(&self.route_key).map_err(ApiGwError::bad_request)?;
        if doc
            .routes
            .iter()
            .any(|(other, r)| other != id && r.route_key == self.route_key)
        {
            return Err(ApiGwError::conflict(format!(
                "Route with key {} already exists for this API",
                self.route_key
            )));
        }
        if let Some(t) = &self.target {
            let integration = t.strip_prefix("integrations/").unwrap_or_default();
            if !doc.integrations.contains_key(integration) {
                return Err(ApiGwError::bad_request(format!(
                    "Invalid target '{t}': it must be integrations/<an integration id of this API>."
                )));
            }
        }
        let wants = match self.authorization_type.as_str() {
            "NONE" | "AWS_IAM" => None,
            "CUSTOM" => Some("REQUEST"),
            "JWT" => Some("JWT"),
            other => {
                return Err(ApiGwError::bad_request(format!(
                    "Invalid authorization type {other}. Must be one of [NONE, AWS_IAM, CUSTOM, JWT]"
                )));
            }
        };
        match (wants, &self.authorizer_id) {
            (None, _) => Ok(()),
            (Some(kind), Some(a))
                if doc
                    .authorizers
                    .get(a)
                    .is_some_and(|x| x.authorizer_type == kind) =>
            {
                Ok(())
            }
            (Some(kind), _) => Err(ApiGwError::bad_request(format!(
                "Authorization type {} needs authorizerId: the id of a {kind} authorizer of this API.",
                self.authorization_type
            ))),
        }
    }
}

fn check_function_uri(uri: &str) -> ApiGwResult<()> {
    if uri.starts_with("arn:aws:lambda:")
        || (uri.starts_with("arn:aws:apigateway:")
            && uri.contains(":lambda:path/2015-03-31/functions/"))
        || uri.contains("${stageVariables.")
    {
        return Ok(());
    }
    Err(ApiGwError::bad_request(format!(
        "Invalid integration URI '{uri}': give a Lambda function ARN (or its API Gateway invocation ARN)."
    )))
}

impl Part for Integration {
    const KIND: &'static str = "Integration";
    const QUOTA: usize = 300;
    const UPDATABLE: &'static [&'static str] = &[
        "integrationType",
        "integrationUri",
        "integrationMethod",
        "payloadFormatVersion",
        "timeoutInMillis",
        "description",
        "credentialsArn",
        "requestParameters",
        "responseParameters",
        "connectionType",
    ];
    fn all(doc: &ApiDoc) -> &BTreeMap<String, Self> {
        &doc.integrations
    }
    fn all_mut(doc: &mut ApiDoc) -> &mut BTreeMap<String, Self> {
        &mut doc.integrations
    }
    fn init(&mut self, _doc: &ApiDoc, _now: &str) -> ApiGwResult<String> {
        self.integration_id = new_id();
        self.api_gateway_managed = false;
        Ok(self.integration_id.clone())
    }
    fn check(&self, _id: &str, _doc: &ApiDoc) -> ApiGwResult<()> {
        if self.integration_type != "AWS_PROXY" {
            return Err(ApiGwError::bad_request(format!(
                "Integration type {} is not supported by this server: HTTP APIs here integrate with Lambda functions (AWS_PROXY).",
                self.integration_type
            )));
        }
        let uri = self.integration_uri.as_deref().ok_or_else(|| {
            ApiGwError::bad_request("An AWS_PROXY integration needs an integrationUri.")
        })?;
        check_function_uri(uri)?;
        match self.payload_format_version.as_deref() {
            Some("1.0" | "2.0") => {}
            _ => {
                return Err(ApiGwError::bad_request(
                    "An AWS_PROXY integration needs payloadFormatVersion 1.0 or 2.0.",
                ));
            }
        }
        if !(50..=30_000).contains(&self.timeout_in_millis) {
            return Err(ApiGwError::bad_request(
                "timeoutInMillis must be between 50 and 30000.",
            ));
        }
        Ok(())
    }
    fn in_use(id: &str, doc: &ApiDoc) -> ApiGwResult<()> {
        let target = format!("integrations/{id}");
        if doc
            .routes
            .values()
            .any(|r| r.target.as_deref() == Some(target.as_str()))
        {
            return Err(ApiGwError::conflict(format!(
                "Cannot delete Integration {id}: routes still target it."
            )));
        }
        Ok(())
    }
}

fn is_identity_source(s: &str) -> bool {
    if let Some(name) = s.strip_prefix("$context.") {
        return crate::http::authorizer::CONTEXT_SOURCES.contains(&name);
    }
    [
        "$request.header.",
        "$request.querystring.",
        "$stageVariables.",
    ]
    .iter()
    .any(|p| s.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

impl Part for Authorizer {
    const KIND: &'static str = "Authorizer";
    const QUOTA: usize = 10;
    const UPDATABLE: &'static [&'static str] = &[
        "name",
        "authorizerType",
        "authorizerUri",
        "authorizerPayloadFormatVersion",
        "enableSimpleResponses",
        "identitySource",
        "authorizerResultTtlInSeconds",
        "authorizerCredentialsArn",
        "identityValidationExpression",
        "jwtConfiguration",
    ];
    fn all(doc: &ApiDoc) -> &BTreeMap<String, Self> {
        &doc.authorizers
    }
    fn all_mut(doc: &mut ApiDoc) -> &mut BTreeMap<String, Self> {
        &mut doc.authorizers
    }
    fn init(&mut self, _doc: &ApiDoc, _now: &str) -> ApiGwResult<String> {
        self.authorizer_id = new_id();
        Ok(self.authorizer_id.clone())
    }
    fn check(&self, _id: &str, _doc: &ApiDoc) -> ApiGwResult<()> {
        if self.name.is_empty() || self.name.len() > 128 {
            return Err(ApiGwError::bad_request(
                "The authorizer name must be 1 to 128 characters.",
            ));
        }
        if let Some(s) = self.identity_source.iter().find(|s| !is_identity_source(s)) {
            return Err(ApiGwError::bad_request(format!(
                "Invalid identity source '{s}': use $request.header.<name>, $request.querystring.<name>, $stageVariables.<name> or $context.<variable> (one of {}).",
                crate::http::authorizer::CONTEXT_SOURCES.join(", ")
            )));
        }
        match self.authorizer_type.as_str() {
            "REQUEST" => {
                let uri = self.authorizer_uri.as_deref().ok_or_else(|| {
                    ApiGwError::bad_request("A REQUEST authorizer needs an authorizerUri.")
                })?;
                check_function_uri(uri)?;
                match self.authorizer_payload_format_version.as_deref() {
                    Some("2.0") => {}
                    Some("1.0") if self.enable_simple_responses != Some(true) => {}
                    Some("1.0") => {
                        return Err(ApiGwError::bad_request(
                            "Simple responses (enableSimpleResponses) need authorizerPayloadFormatVersion 2.0.",
                        ));
                    }
                    _ => {
                        return Err(ApiGwError::bad_request(
                            "A REQUEST authorizer of an HTTP API needs authorizerPayloadFormatVersion 1.0 or 2.0.",
                        ));
                    }
                }
                let ttl = self.authorizer_result_ttl_in_seconds.unwrap_or(0);
                if !(0..=3600).contains(&ttl) {
                    return Err(ApiGwError::bad_request(
                        "authorizerResultTtlInSeconds must be between 0 and 3600.",
                    ));
                }
                if ttl > 0 && self.identity_source.is_empty() {
                    return Err(ApiGwError::bad_request(
                        "Caching (authorizerResultTtlInSeconds > 0) needs at least one identity source.",
                    ));
                }
                Ok(())
            }
            "JWT" => {
                let config = self.jwt_configuration.as_ref();
                let issuer = config.and_then(|c| c.issuer.as_deref()).unwrap_or_default();
                if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                    return Err(ApiGwError::bad_request(
                        "A JWT authorizer needs jwtConfiguration.issuer, the issuer's URL.",
                    ));
                }
                if config.is_none_or(|c| c.audience.is_empty()) {
                    return Err(ApiGwError::bad_request(
                        "A JWT authorizer needs at least one jwtConfiguration.audience.",
                    ));
                }
                if self.identity_source.len() != 1 {
                    return Err(ApiGwError::bad_request(
                        "A JWT authorizer takes exactly one identity source.",
                    ));
                }
                Ok(())
            }
            other => Err(ApiGwError::bad_request(format!(
                "Invalid authorizer type {other}. Must be one of [REQUEST, JWT]"
            ))),
        }
    }
    fn in_use(id: &str, doc: &ApiDoc) -> ApiGwResult<()> {
        if doc
            .routes
            .values()
            .any(|r| r.authorizer_id.as_deref() == Some(id))
        {
            return Err(ApiGwError::conflict(format!(
                "Cannot delete Authorizer {id}: routes still use it."
            )));
        }
        Ok(())
    }
}

fn check_stage_variables(vars: &BTreeMap<String, String>) -> ApiGwResult<()> {
    if vars.len() > 100 {
        return Err(ApiGwError::bad_request(
            "A stage can have at most 100 stage variables.",
        ));
    }
    for (k, v) in vars {
        let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let value_ok = !v.is_empty()
            && v.len() <= 2048
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#&=,".contains(&b));
        if !name_ok || !value_ok {
            return Err(ApiGwError::bad_request(format!(
                "Invalid stage variable {k}: names are letters, digits and '_'; values are letters, digits and -._~:/?#&=,"
            )));
        }
    }
    Ok(())
}

impl Part for Stage {
    const KIND: &'static str = "Stage";
    const QUOTA: usize = 10;
    const UPDATABLE: &'static [&'static str] = &[
        "autoDeploy",
        "deploymentId",
        "stageVariables",
        "description",
        "defaultRouteSettings",
        "routeSettings",
        "accessLogSettings",
    ];
    fn all(doc: &ApiDoc) -> &BTreeMap<String, Self> {
        &doc.stages
    }
    fn all_mut(doc: &mut ApiDoc) -> &mut BTreeMap<String, Self> {
        &mut doc.stages
    }
    fn init(&mut self, doc: &ApiDoc, now: &str) -> ApiGwResult<String> {
        let name = &self.stage_name;
        let ok = name == "$default"
            || (!name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if !ok {
            return Err(ApiGwError::bad_request(format!(
                "Invalid stage name '{name}': use $default or letters, digits, '-' and '_'."
            )));
        }
        if doc.stages.contains_key(name) {
            return Err(ApiGwError::conflict(format!(
                "Stage already exists: {name}"
            )));
        }
        self.created_date = now.to_owned();
        self.last_updated_date = now.to_owned();
        self.api_gateway_managed = false;
        Ok(name.clone())
    }
    fn check(&self, _id: &str, doc: &ApiDoc) -> ApiGwResult<()> {
        check_stage_variables(&self.stage_variables)?;
        if let Some(d) = &self.deployment_id
            && !doc.deployments.contains_key(d)
        {
            return Err(ApiGwError::bad_request(format!(
                "Invalid deployment identifier specified {d}"
            )));
        }
        Ok(())
    }
    fn touched(&mut self, now: &str) {
        self.last_updated_date = now.to_owned();
    }
}

/// `POST /v2/apis/{api}/deployments`: CreateDeployment (and points `stageName` at it).
pub async fn create_deployment(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
    body: Bytes,
) -> ApiGwResult<Response> {
    let req: Map<String, Value> = body_of(&body)?;
    let stage = req
        .get("stageName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let description = req
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let made = modify(&state, &caller, &api, false, move |doc| {
        let t = now();
        let deployment = Deployment {
            deployment_id: new_id(),
            deployment_status: "DEPLOYED".into(),
            description,
            created_date: t.clone(),
            auto_deployed: false,
        };
        if let Some(name) = &stage {
            let s = doc
                .stages
                .get_mut(name)
                .ok_or_else(|| invalid_id::<Stage>(name))?;
            s.deployment_id = Some(deployment.deployment_id.clone());
            s.last_updated_date = t;
        }
        let frozen = doc.snapshot();
        doc.deployments.insert(
            deployment.deployment_id.clone(),
            StoredDeployment {
                deployment: deployment.clone(),
                frozen,
            },
        );
        doc.prune();
        Ok(deployment)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// `GET /v2/apis/{api}/deployments/{id}`.
pub async fn get_deployment(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((api, id)): Path<(String, String)>,
) -> ApiGwResult<Json<Deployment>> {
    let doc = load(&state, &caller, &api).await?;
    doc.deployments
        .get(&id)
        .map(|d| Json(d.deployment.clone()))
        .ok_or_else(|| {
            ApiGwError::not_found(
                format!("Invalid Deployment identifier specified {id}"),
                "Deployment",
            )
        })
}

/// `GET /v2/apis/{api}/deployments`.
pub async fn list_deployments(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(api): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiGwResult<Json<Value>> {
    let doc = load(&state, &caller, &api).await?;
    let items = doc
        .deployments
        .iter()
        .map(|(id, d)| {
            (
                id.clone(),
                serde_json::to_value(&d.deployment).unwrap_or_default(),
            )
        })
        .collect();
    page(items, raw.as_deref()).map(Json)
}

/// `DELETE /v2/apis/{api}/deployments/{id}`.
pub async fn delete_deployment(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((api, id)): Path<(String, String)>,
) -> ApiGwResult<StatusCode> {
    modify(&state, &caller, &api, false, |doc| {
        if !doc.deployments.contains_key(&id) {
            return Err(ApiGwError::not_found(
                format!("Invalid Deployment identifier specified {id}"),
                "Deployment",
            ));
        }
        if doc
            .stages
            .values()
            .any(|s| s.deployment_id.as_deref() == Some(id.as_str()))
        {
            return Err(ApiGwError::bad_request(
                "Active stages pointing to this deployment must be moved or deleted",
            ));
        }
        doc.deployments.remove(&id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/apis/{api}/stages/{stage}/cache/authorizers`: ResetAuthorizersCache.
pub async fn reset_authorizers_cache(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((api, stage)): Path<(String, String)>,
) -> ApiGwResult<StatusCode> {
    let doc = load(&state, &caller, &api).await?;
    if !doc.stages.contains_key(&stage) {
        return Err(invalid_id::<Stage>(&stage));
    }
    state
        .http
        .authorizers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .forget_api(&api, Some(&stage));
    Ok(StatusCode::NO_CONTENT)
}
