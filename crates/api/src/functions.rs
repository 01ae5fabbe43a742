//! Functions: CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions,
//! UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lamina_model::{
    Architecture, FunctionSpec, LambdaError, LogFormat, PackageType, Qualifier, Runtime,
    TracingMode, format_timestamp,
};
use lamina_store::{FunctionRecord, NewFunction, StoreError};

use crate::query::Query;
use crate::wire::{self, ConfigFields, FunctionConfiguration};
use crate::{
    ApiError, ApiResult, AppState, Caller, arn, blocking, function_not_found, json_body, resolve,
};

/// How a configuration is being shown: Lambda reports the lifecycle differently per operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// The CreateFunction response: `State: Pending`.
    Created,
    /// Update* responses: `LastUpdateStatus: InProgress`.
    Updated,
    /// Get*: the stored, settled state.
    Current,
    /// ListFunctions entries omit the lifecycle fields.
    Listed,
}

pub(crate) fn configuration(
    rec: &FunctionRecord,
    function_arn: String,
    view: View,
) -> FunctionConfiguration {
    let spec = &rec.spec;
    let (state, state_reason, state_reason_code) = match view {
        View::Created => (
            Some("Pending"),
            Some("The function is being created."),
            Some("Creating"),
        ),
        View::Listed => (None, None, None),
        View::Updated | View::Current => (Some(rec.state.as_str()), None, None),
    };
    let (update, update_reason, update_reason_code) = match view {
        View::Created | View::Listed => (None, None, None),
        View::Updated => (
            Some("InProgress"),
            Some("The function is being created."),
            Some("Creating"),
        ),
        View::Current => (rec.last_update_status.map(|s| s.as_str()), None, None),
    };
    FunctionConfiguration {
        function_name: rec.key.name.to_string(),
        function_arn,
        runtime: spec.runtime.as_ref().map(|r| r.to_string()),
        role: spec.role.clone(),
        handler: spec.handler.clone(),
        code_size: rec.code.size,
        description: spec.description.clone(),
        timeout: spec.timeout,
        memory_size: spec.memory_size,
        last_modified: format_timestamp(rec.last_modified_ms),
        code_sha256: rec.code.sha256_base64(),
        version: rec.version.clone(),
        environment: wire::EnvironmentResponse {
            variables: spec.environment.clone(),
        },
        tracing_config: wire::Mode {
            mode: spec.tracing_mode.as_str(),
        },
        revision_id: rec.revision_id.clone(),
        layers: spec
            .layer_code
            .iter()
            .map(|l| wire::LayerResponse {
                arn: l.arn.clone(),
                code_size: l.size,
            })
            .collect(),
        state,
        state_reason,
        state_reason_code,
        last_update_status: update,
        last_update_status_reason: update_reason,
        last_update_status_reason_code: update_reason_code,
        package_type: spec.package_type.as_str(),
        architectures: vec![spec.architecture.as_str()],
        ephemeral_storage: wire::Size {
            size: spec.ephemeral_storage,
        },
        snap_start: wire::SnapStartResponse {
            apply_on: "None",
            optimization_status: "Off",
        },
        logging_config: wire::LoggingConfigResponse {
            log_format: spec.log_format.as_str(),
            log_group: spec
                .log_group
                .clone()
                .unwrap_or_else(|| format!("/aws/lambda/{}", rec.key.name)),
            application_log_level: spec.application_log_level.clone(),
            system_log_level: spec.system_log_level.clone(),
        },
    }
}

fn required(member: &str) -> LambdaError {
    LambdaError::missing(member)
}

fn unsupported(what: &str) -> LambdaError {
    LambdaError::invalid_parameter(format!("{what} is not supported by this server yet."))
}

fn number(value: i64, member: &str) -> Result<u32, LambdaError> {
    u32::try_from(value).map_err(|_| {
        LambdaError::validation(
            value,
            member,
            "Member must have value greater than or equal to 0",
        )
    })
}

fn architecture(list: &[String]) -> Result<Architecture, LambdaError> {
    match list {
        [one] => Architecture::parse(one).ok_or_else(|| {
            LambdaError::validation(
                format!("[{one}]"),
                "architectures",
                "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
            )
        }),
        _ => Err(LambdaError::validation(
            format!("[{}]", list.join(", ")),
            "architectures",
            "Member must have length less than or equal to 1 and greater than or equal to 1",
        )),
    }
}

/// Applies the configuration members of a request on top of `spec`.
fn apply_config(spec: &mut FunctionSpec, c: ConfigFields) -> Result<(), LambdaError> {
    if let Some(role) = c.role {
        spec.role = role;
    }
    if let Some(runtime) = c.runtime {
        spec.runtime = Some(Runtime::parse(&runtime)?);
    }
    if let Some(handler) = c.handler {
        spec.handler = Some(handler);
    }
    if let Some(description) = c.description {
        spec.description = description;
    }
    if let Some(timeout) = c.timeout {
        spec.timeout = number(timeout, "timeout")?;
    }
    if let Some(memory) = c.memory_size {
        spec.memory_size = number(memory, "memorySize")?;
    }
    if let Some(env) = c.environment {
        spec.environment = env.variables.unwrap_or_default();
    }
    if let Some(layers) = c.layers {
        if layers.len() > 5 {
            return Err(LambdaError::invalid_parameter(
                "Cannot reference more than 5 layers.",
            ));
        }
        // Resolved (and checked) against the store by `layers::attach`.
        spec.layers = layers;
        spec.layer_code.clear();
    }
    if let Some(storage) = c.ephemeral_storage {
        spec.ephemeral_storage = storage
            .size
            .ok_or_else(|| required("ephemeralStorage.size"))?;
    }
    if let Some(tracing) = c.tracing_config
        && let Some(mode) = tracing.mode
    {
        spec.tracing_mode = match mode.as_str() {
            "Active" => TracingMode::Active,
            "PassThrough" => TracingMode::PassThrough,
            _ => {
                return Err(LambdaError::validation(
                    mode,
                    "tracingConfig.mode",
                    "Member must satisfy enum value set: [Active, PassThrough]",
                ));
            }
        };
    }
    if let Some(logging) = c.logging_config {
        apply_logging(spec, logging)?;
    }
    if c.vpc_config.is_some_and(|v| {
        !v.subnet_ids.unwrap_or_default().is_empty()
            || !v.security_group_ids.unwrap_or_default().is_empty()
    }) {
        return Err(unsupported("VpcConfig"));
    }
    if c.dead_letter_config
        .and_then(|d| d.target_arn)
        .is_some_and(|t| !t.is_empty())
    {
        return Err(unsupported("DeadLetterConfig"));
    }
    if c.kms_key_arn.is_some_and(|k| !k.is_empty()) {
        return Err(unsupported("KMSKeyArn"));
    }
    if c.file_system_configs.is_some_and(|f| !f.is_empty()) {
        return Err(unsupported("FileSystemConfigs"));
    }
    if c.image_config.is_some() {
        return Err(unsupported("ImageConfig"));
    }
    if c.snap_start.is_some_and(|s| {
        s.get("ApplyOn")
            .and_then(|a| a.as_str())
            .is_some_and(|a| a != "None")
    }) {
        return Err(unsupported("SnapStart"));
    }
    Ok(())
}

fn apply_logging(spec: &mut FunctionSpec, l: wire::LoggingConfig) -> Result<(), LambdaError> {
    if let Some(format) = l.log_format {
        spec.log_format = match format.as_str() {
            "Text" => LogFormat::Text,
            "JSON" => LogFormat::Json,
            _ => {
                return Err(LambdaError::validation(
                    format,
                    "loggingConfig.logFormat",
                    "Member must satisfy enum value set: [Text, JSON]",
                ));
            }
        };
    }
    if let Some(group) = l.log_group {
        let ok = !group.is_empty()
            && group.len() <= 512
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b));
        if !ok {
            return Err(LambdaError::validation(
                group,
                "loggingConfig.logGroup",
                "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
            ));
        }
        spec.log_group = Some(group);
    }
    const APP: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    const SYS: &[&str] = &["DEBUG", "INFO", "WARN"];
    for (value, allowed, member, slot) in [
        (
            l.application_log_level,
            APP,
            "loggingConfig.applicationLogLevel",
            &mut spec.application_log_level,
        ),
        (
            l.system_log_level,
            SYS,
            "loggingConfig.systemLogLevel",
            &mut spec.system_log_level,
        ),
    ] {
        if let Some(v) = value {
            if !allowed.contains(&v.as_str()) {
                return Err(LambdaError::validation(
                    &v,
                    member,
                    &format!(
                        "Member must satisfy enum value set: [{}]",
                        allowed.join(", ")
                    ),
                ));
            }
            *slot = Some(v);
        }
    }
    if spec.log_format == LogFormat::Text
        && (spec.application_log_level.is_some() || spec.system_log_level.is_some())
    {
        return Err(LambdaError::invalid_parameter(
            "ApplicationLogLevel and SystemLogLevel can only be set when LogFormat is JSON.",
        ));
    }
    Ok(())
}

/// Refuses a runtime this host cannot serve, naming the ones it can.
fn check_served(state: &AppState, spec: &FunctionSpec) -> Result<(), LambdaError> {
    match &spec.runtime {
        Some(r) if !state.runtimes.iter().any(|s| s == r.as_str()) => {
            Err(LambdaError::invalid_parameter(format!(
                "The runtime parameter of {r} is not served by this server. It offers: {}.",
                state.runtimes.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

/// Decodes `ZipFile` and applies the direct-upload size limit.
pub(crate) fn decode_zip(state: &AppState, b64: &str) -> Result<Vec<u8>, LambdaError> {
    let zip = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| LambdaError::invalid_parameter(format!("ZipFile is not valid base64: {e}")))?;
    if zip.len() as u64 > state.limits.zipped_max_bytes {
        return Err(LambdaError::too_large(format!(
            "Zipped size must be smaller than {} bytes",
            state.limits.zipped_max_bytes
        )));
    }
    Ok(zip)
}

fn code_source(
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    image_uri: Option<String>,
) -> Result<String, LambdaError> {
    if s3_bucket.is_some() {
        return Err(LambdaError::invalid_parameter(
            "This server keeps code itself: upload the package as Code.ZipFile (S3 locations are not supported).",
        ));
    }
    if image_uri.is_some() {
        return Err(unsupported("PackageType Image (ImageUri)"));
    }
    zip_file.ok_or_else(|| {
        LambdaError::invalid_parameter(
            "Please provide a source for function code: ZipFile is required.",
        )
    })
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:9001")
        .to_owned()
}

/// `POST /2015-03-31/functions`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: wire::CreateFunctionRequest = json_body(&body)?;
    let raw_name = req.function_name.ok_or_else(|| required("functionName"))?;
    let (key, qualifier) = resolve(&caller, &raw_name, None, "CreateFunction")?;
    if qualifier.is_some() {
        return Err(LambdaError::invalid_parameter(
            "The function name given to CreateFunction cannot include a version or alias qualifier.",
        )
        .into());
    }
    let role = req.config.role.clone().ok_or_else(|| required("role"))?;
    let code = req.code.ok_or_else(|| required("code"))?;
    match req.package_type.as_deref() {
        None | Some("Zip") => {}
        Some("Image") => return Err(unsupported("PackageType Image").into()),
        Some(other) => {
            return Err(LambdaError::validation(
                other,
                "packageType",
                "Member must satisfy enum value set: [Zip, Image]",
            )
            .into());
        }
    }
    let publish = req.publish == Some(true);
    if req.code_signing_config_arn.is_some() {
        return Err(unsupported("CodeSigningConfigArn").into());
    }
    let mut spec = FunctionSpec::with_defaults(role);
    spec.package_type = PackageType::Zip;
    if let Some(archs) = &req.architectures {
        spec.architecture = architecture(archs)?;
    }
    apply_config(&mut spec, req.config)?;
    state.limits.check_spec(&spec)?;
    check_served(&state, &spec)?;
    let layers_size = if spec.layers.is_empty() {
        0
    } else {
        crate::layers::attach(&state, &caller, &mut spec).await?
    };
    let unzipped_max = state.limits.unzipped_max_bytes;
    if layers_size >= unzipped_max {
        return Err(crate::layers::too_big(unzipped_max, layers_size, None).into());
    }
    let tags = req.tags.unwrap_or_default();
    state.limits.check_tags(&tags)?;
    let zip = decode_zip(
        &state,
        &code_source(code.zip_file, code.s3_bucket, code.image_uri)?,
    )?;

    let store = state.store.clone();
    let mut limits = state.extract_limits();
    // Function code and layers share the unzipped limit.
    limits.max_unzipped_bytes -= layers_size;
    let storage_max = state.limits.code_storage_max_bytes;
    let name = key.name.clone();
    let rec = blocking(move || {
        store
            .create_function(
                NewFunction {
                    key,
                    spec,
                    zip: &zip,
                    tags,
                },
                limits,
                storage_max,
            )
            .map_err(|e| match e {
                StoreError::AlreadyExists => {
                    LambdaError::conflict(format!("Function already exist: {name}")).into()
                }
                StoreError::Code(lamina_store::CodeError::Archive(
                    lamina_store::ArchiveError::TooLarge { .. },
                )) if layers_size > 0 => {
                    crate::layers::too_big(unzipped_max, layers_size, None).into()
                }
                e => ApiError::from(e),
            })
    })
    .await?;
    tracing::info!(function = %rec.key.name, account = %rec.key.account, "created function");
    let rec = if publish {
        let mut published =
            crate::versions::publish_latest(&state, &rec.key, None, None, None).await?;
        published.key = rec.key.clone();
        published
    } else {
        rec
    };
    let body = configuration(&rec, arn(&rec.key, None), View::Created);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Loads `$LATEST` for a (possibly qualified) reference; other qualifiers do not exist yet.
async fn load(
    state: &AppState,
    caller: &Caller,
    name: &str,
    raw_query: Option<&str>,
    operation: &str,
) -> ApiResult<(FunctionRecord, Option<Qualifier>)> {
    let q = Query::parse(raw_query);
    let (key, qualifier) = resolve(caller, name, q.get("Qualifier"), operation)?;
    let rec = crate::versions::version_for(state, &key, qualifier.as_ref(), false).await?;
    Ok((rec, qualifier))
}

/// `GET /2015-03-31/functions/{name}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<wire::GetFunctionResponse>> {
    let (rec, qualifier) = load(&state, &caller, &name, raw.as_deref(), "GetFunction").await?;
    let store = state.store.clone();
    let key = rec.key.clone();
    let (tags, reserved) =
        blocking(move || Ok((store.tags(&key)?, store.reserved_concurrency(&key)?))).await?;
    let tags = tags.unwrap_or_default();
    let concurrency = reserved
        .flatten()
        .map(|n| serde_json::json!({ "ReservedConcurrentExecutions": n }));
    let location = crate::code::location(&state, &host(&headers), &rec.code.sha256_hex);
    Ok(Json(wire::GetFunctionResponse {
        configuration: configuration(&rec, arn(&rec.key, qualifier.as_ref()), View::Current),
        code: wire::CodeLocation {
            repository_type: "S3",
            location,
        },
        tags: (!tags.is_empty()).then_some(tags),
        concurrency,
    }))
}

/// `GET /2015-03-31/functions/{name}/configuration`.
pub async fn get_configuration(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<FunctionConfiguration>> {
    let (rec, qualifier) = load(
        &state,
        &caller,
        &name,
        raw.as_deref(),
        "GetFunctionConfiguration",
    )
    .await?;
    Ok(Json(configuration(
        &rec,
        arn(&rec.key, qualifier.as_ref()),
        View::Current,
    )))
}

/// `GET /2015-03-31/functions/`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<wire::ListFunctionsResponse>> {
    const PAGE_MAX: usize = 50;
    let q = Query::parse(raw.as_deref());
    let max_items = match q.get("MaxItems") {
        None => PAGE_MAX,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=10_000).contains(&n) => (n as usize).min(PAGE_MAX),
            _ => {
                return Err(LambdaError::validation(
                    v,
                    "maxItems",
                    "Member must have value between 1 and 10000",
                )
                .into());
            }
        },
    };
    let all_versions = match q.get("FunctionVersion") {
        None => false,
        Some("ALL") => true,
        Some(v) => {
            return Err(LambdaError::validation(
                v,
                "functionVersion",
                "Member must satisfy enum value set: [ALL]",
            )
            .into());
        }
    };
    let after = match q.get("Marker").filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(decode_marker(m)?),
    };
    let store = state.store.clone();
    let mut page = blocking(move || {
        Ok(store.list_functions(
            &caller.account,
            &caller.region,
            after.as_deref(),
            max_items + 1,
        )?)
    })
    .await?;
    let next_marker = if page.len() > max_items {
        page.truncate(max_items);
        page.last().map(|r| encode_marker(r.key.name.as_str()))
    } else {
        None
    };
    let functions = page
        .iter()
        .map(|r| {
            let q = all_versions.then_some(Qualifier::Latest);
            configuration(r, arn(&r.key, q.as_ref()), View::Listed)
        })
        .collect();
    Ok(Json(wire::ListFunctionsResponse {
        functions,
        next_marker,
    }))
}

fn encode_marker(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_marker(m: &str) -> Result<String, LambdaError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(m)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LambdaError::invalid_parameter("Marker is not one this server returned."))
}

/// `PUT /2015-03-31/functions/{name}/code`.
pub async fn update_code(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<FunctionConfiguration>> {
    let req: wire::UpdateFunctionCodeRequest = json_body(&body)?;
    let (key, qualifier) = resolve(&caller, &name, None, "UpdateFunctionCode")?;
    if qualifier.is_some() {
        return Err(LambdaError::invalid_parameter(
            "UpdateFunctionCode acts on $LATEST; remove the qualifier.",
        )
        .into());
    }
    let publish = req.publish == Some(true);
    let zip = decode_zip(
        &state,
        &code_source(req.zip_file, req.s3_bucket, req.image_uri)?,
    )?;
    let store = state.store.clone();
    let limits = state.extract_limits();
    let storage_max = state.limits.code_storage_max_bytes;
    let dry_run = req.dry_run == Some(true);
    let architectures = req.architectures;
    let k = key.clone();
    let rec = blocking(move || {
        let current = store
            .get_function(&k)?
            .ok_or_else(|| function_not_found(&k, None))?;
        // Function code and layers share the unzipped limit.
        let mut limits = limits;
        limits.max_unzipped_bytes -= current
            .spec
            .layer_code
            .iter()
            .map(|l| l.unzipped_size)
            .sum::<u64>();
        if let Some(archs) = architectures
            && architecture(&archs)? != current.spec.architecture
        {
            return Err(unsupported("Changing Architectures in UpdateFunctionCode").into());
        }
        if dry_run {
            if req
                .revision_id
                .as_deref()
                .is_some_and(|r| r != current.revision_id)
            {
                return Err(StoreError::RevisionMismatch.into());
            }
            store.code().check(&zip, limits).map_err(StoreError::from)?;
            return Ok(current);
        }
        store
            .update_code(&k, &zip, limits, storage_max, req.revision_id.as_deref())
            .map_err(|e| match e {
                StoreError::NotFound => function_not_found(&k, None),
                e => e.into(),
            })
    })
    .await?;
    if !dry_run {
        state.changed(&key).await;
    }
    let view = if dry_run {
        View::Current
    } else {
        View::Updated
    };
    let rec = if publish && !dry_run {
        crate::versions::publish_latest(&state, &key, None, None, None).await?
    } else {
        rec
    };
    Ok(Json(configuration(&rec, arn(&key, None), view)))
}

/// `PUT /2015-03-31/functions/{name}/configuration`.
pub async fn update_configuration(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<FunctionConfiguration>> {
    let req: wire::UpdateFunctionConfigurationRequest = json_body(&body)?;
    let (key, qualifier) = resolve(&caller, &name, None, "UpdateFunctionConfiguration")?;
    if qualifier.is_some() {
        return Err(LambdaError::invalid_parameter(
            "UpdateFunctionConfiguration acts on $LATEST; remove the qualifier.",
        )
        .into());
    }
    // New layers are resolved first (they live in the store too); the size check needs the
    // function's current code and happens with the update.
    let new_layers = match &req.config.layers {
        None => None,
        Some(arns) => {
            let mut probe = FunctionSpec::with_defaults(String::new());
            probe.layers = arns.clone();
            let size = crate::layers::attach(&state, &caller, &mut probe).await?;
            Some((probe.layer_code, size))
        }
    };
    let store = state.store.clone();
    let st = state.clone();
    let k = key.clone();
    let rec = blocking(move || {
        store
            .update_spec(&k, req.revision_id.as_deref(), |current| {
                let mut spec = current.spec.clone();
                let runtime_before = spec.runtime.clone();
                apply_config(&mut spec, req.config)?;
                st.limits.check_spec(&spec)?;
                if spec.runtime != runtime_before {
                    check_served(&st, &spec)?;
                }
                if let Some((code, size)) = new_layers {
                    let limit = st.limits.unzipped_max_bytes;
                    if current.code.unzipped_size + size > limit {
                        return Err(crate::layers::too_big(
                            limit,
                            size,
                            Some(current.code.unzipped_size),
                        ));
                    }
                    spec.layer_code = code;
                }
                Ok(spec)
            })
            .map_err(|e| match e {
                StoreError::NotFound => function_not_found(&k, None),
                e => e.into(),
            })
    })
    .await?;
    state.changed(&key).await;
    Ok(Json(configuration(&rec, arn(&key, None), View::Updated)))
}

/// `DELETE /2015-03-31/functions/{name}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let q = Query::parse(raw.as_deref());
    let (key, qualifier) = resolve(&caller, &name, q.get("Qualifier"), "DeleteFunction")?;
    match &qualifier {
        None => {}
        Some(Qualifier::Latest) => {
            return Err(LambdaError::invalid_parameter(
                "$LATEST version cannot be deleted without deleting the function.",
            )
            .into());
        }
        Some(Qualifier::Alias(_)) => {
            return Err(LambdaError::invalid_parameter(
                "Qualifier cannot be an alias: use DeleteAlias to delete an alias.",
            )
            .into());
        }
        Some(Qualifier::Version(n)) => {
            let (store, k, n) = (state.store.clone(), key.clone(), *n);
            let existed = blocking(move || Ok(store.delete_version(&k, n)?)).await?;
            if !existed {
                return Err(function_not_found(&key, qualifier.as_ref()));
            }
            state.changed(&key).await;
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    let store = state.store.clone();
    let k = key.clone();
    let Some(queued) = blocking(move || Ok(store.delete_function(&k)?)).await? else {
        return Err(function_not_found(&key, None));
    };
    // Its queued asynchronous events went with it.
    state.queue.forget_deleted(queued);
    tracing::info!(function = %key.name, account = %key.account, "deleted function");
    state.changed(&key).await;
    // The code may now be unreferenced; collect it off the request path.
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.collect_garbage() {
            tracing::warn!(error = %e, "code garbage collection failed");
        }
    });
    Ok(StatusCode::NO_CONTENT)
}
