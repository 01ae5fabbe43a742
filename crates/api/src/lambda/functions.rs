//! Functions: CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions,
//! UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lamina_model::{FunctionSpec, LambdaError, PackageType, Qualifier, format_timestamp};
use lamina_store::{FunctionRecord, NewFunction, Package, StoreError};

use super::config::{apply_config, architecture, check_dead_letter, required, unsupported};
use super::query::Query;
use super::wire::{self, FunctionConfiguration};
use super::{
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
        dead_letter_config: spec
            .dead_letter_target
            .clone()
            .map(|target_arn| wire::DeadLetterResponse { target_arn }),
        image_config_response: spec
            .image_config
            .as_ref()
            .map(|c| wire::ImageConfigResponse {
                image_config: wire::ImageConfigShown {
                    entry_point: c.entry_point.clone(),
                    command: c.command.clone(),
                    working_directory: c.working_directory.clone(),
                },
            }),
        vpc_config: super::vpc::response(spec),
    }
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
        return Err(LambdaError::invalid_parameter(
            "Please don't provide ImageUri when updating a function with packageType Zip.",
        ));
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
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let mut req: wire::CreateFunctionRequest = json_body(&body)?;
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
    let image = match req.package_type.as_deref() {
        None | Some("Zip") => false,
        Some("Image") => true,
        Some(other) => {
            return Err(LambdaError::validation(
                other,
                "packageType",
                "Member must satisfy enum value set: [Zip, Image]",
            )
            .into());
        }
    };
    let publish = req.publish == Some(true);
    if req.code_signing_config_arn.is_some() {
        return Err(unsupported("CodeSigningConfigArn").into());
    }
    let mut spec = FunctionSpec::with_defaults(role);
    spec.package_type = if image {
        PackageType::Image
    } else {
        PackageType::Zip
    };
    if let Some(archs) = &req.architectures {
        spec.architecture = architecture(archs)?;
    }
    check_dead_letter(&state, &key, &req.config).await?;
    let vpc = req.config.vpc_config.take();
    apply_config(&mut spec, req.config)?;
    super::config::check_log_group(&state, &key, spec.log_group.clone()).await?;
    state.limits.check_spec(&spec)?;
    check_served(&state, &spec)?;
    let vpc = super::vpc::requested(&state, &key.account, &key.region, vpc).await?;
    super::vpc::apply(&mut spec, vpc);
    let layers_size = if spec.layers.is_empty() {
        0
    } else {
        super::layers::attach(&state, &caller, &mut spec).await?
    };
    let unzipped_max = state.limits.unzipped_max_bytes;
    if layers_size >= unzipped_max {
        return Err(super::layers::too_big(unzipped_max, layers_size, None).into());
    }
    let tags = req.tags.unwrap_or_default();
    state.limits.check_tags(&tags)?;
    let (zip, plan) = if image {
        let uri = super::image::uri_of(code.zip_file, code.s3_bucket, code.image_uri, true)?;
        let r =
            crate::ecr::resolve::resolve(&state, &caller, &uri, spec.architecture, &host(&headers))
                .await?;
        spec.image = Some(r.spec);
        (Vec::new(), Some(r.plan))
    } else {
        let z = decode_zip(
            &state,
            &code_source(code.zip_file, code.s3_bucket, code.image_uri)?,
        )?;
        (z, None)
    };

    let store = state.store.clone();
    let mut limits = state.extract_limits();
    // Function code and layers share the unzipped limit.
    limits.max_unzipped_bytes -= layers_size;
    let storage_max = state.limits.code_storage_max_bytes;
    let name = key.name.clone();
    let rec = blocking(move || {
        let made = store
            .create_function(
                NewFunction {
                    key,
                    spec,
                    package: match &plan {
                        Some(p) => Package::Image(p),
                        None => Package::Zip(&zip),
                    },
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
                    super::layers::too_big(unzipped_max, layers_size, None).into()
                }
                e => ApiError::from(e),
            })?;
        // Made (on the thread that committed it): the series of a namesake deleted lately may
        // be made again, now theirs.
        let k = &made.key;
        crate::prometheus::revive_function(k.account.as_str(), k.region.as_str(), k.name.as_str());
        Ok(made)
    })
    .await?;
    tracing::info!(function = %rec.key.name, account = %rec.key.account, "created function");
    let rec = if publish {
        // The version is of the code just stored, or it is not published.
        let revision = Some(rec.revision_id.clone());
        let mut published =
            super::versions::publish_latest(&state, &rec.key, None, None, revision).await?;
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
    let rec = super::versions::version_for(state, &key, qualifier.as_ref()).await?;
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
    let code = match &rec.spec.image {
        Some(image) => wire::CodeLocation {
            repository_type: "ECR",
            location: None,
            image_uri: Some(image.uri.clone()),
            resolved_image_uri: Some(image.resolved_uri.clone()),
        },
        None => wire::CodeLocation {
            repository_type: "S3",
            location: Some(super::code::location(
                &state,
                &host(&headers),
                &rec.code.sha256_hex,
            )),
            image_uri: None,
            resolved_image_uri: None,
        },
    };
    Ok(Json(wire::GetFunctionResponse {
        configuration: configuration(&rec, arn(&rec.key, qualifier.as_ref()), View::Current),
        code,
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
    // The marker is the last function shown (with `ALL`, its version too).
    let after = match q.get("Marker").filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(decode_marker(m)?),
    };
    let store = state.store.clone();
    let mut page = blocking(move || {
        let (account, region) = (&caller.account, &caller.region);
        if !all_versions {
            return Ok(store.list_functions(account, region, after.as_deref(), max_items + 1)?);
        }
        let after = match after.as_deref().map(|m| m.split_once('\n')) {
            None => None,
            Some(Some(pair)) => Some(pair),
            Some(None) => return Err(bad_marker().into()),
        };
        store
            .list_function_versions(account, region, after, max_items + 1)
            .map_err(|e| match e {
                StoreError::NotFound => bad_marker().into(),
                e => e.into(),
            })
    })
    .await?;
    let next_marker = if page.len() > max_items {
        page.truncate(max_items);
        page.last().map(|r| match all_versions {
            true => encode_marker(&format!("{}\n{}", r.key.name.as_str(), r.version)),
            false => encode_marker(r.key.name.as_str()),
        })
    } else {
        None
    };
    let functions = page
        .iter()
        .map(|r| {
            let q = all_versions.then(|| match r.version.parse::<u64>() {
                Ok(n) => Qualifier::Version(n),
                Err(_) => Qualifier::Latest,
            });
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
        .ok_or_else(bad_marker)
}

fn bad_marker() -> LambdaError {
    LambdaError::invalid_parameter("Marker is not one this server returned.")
}

/// `PUT /2015-03-31/functions/{name}/code`.
pub async fn update_code(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
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
    let current = super::versions::version_for(&state, &key, None).await?;
    let (zip, image) = if current.spec.package_type == PackageType::Image {
        let uri = super::image::uri_of(req.zip_file, req.s3_bucket, req.image_uri, false)?;
        let r = crate::ecr::resolve::resolve(
            &state,
            &caller,
            &uri,
            current.spec.architecture,
            &host(&headers),
        )
        .await?;
        (Vec::new(), Some(r))
    } else {
        let z = decode_zip(
            &state,
            &code_source(req.zip_file, req.s3_bucket, req.image_uri)?,
        )?;
        (z, None)
    };
    let store = state.store.clone();
    let limits = state.extract_limits();
    let storage_max = state.limits.code_storage_max_bytes;
    let dry_run = req.dry_run == Some(true);
    let architectures = req.architectures;
    let k = key.clone();
    let st = state.clone();
    let rec = blocking(move || {
        let current = store
            .get_function(&k)?
            .ok_or_else(|| function_not_found(&k, None))?;
        // Function code and layers share the unzipped limit.
        let mut limits = limits;
        limits.max_unzipped_bytes = limits.max_unzipped_bytes.saturating_sub(
            current
                .spec
                .layer_code
                .iter()
                .map(|l| l.unzipped_size)
                .sum::<u64>(),
        );
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
            if image.is_none() {
                store.code().check(&zip, limits).map_err(StoreError::from)?;
            }
            return Ok(current);
        }
        let package = match &image {
            Some(r) => Package::Image(&r.plan),
            None => Package::Zip(&zip),
        };
        let spec = image.as_ref().map(|r| &r.spec);
        let updated = store
            .update_code(
                &k,
                package,
                limits,
                storage_max,
                req.revision_id.as_deref(),
                spec,
            )
            .map_err(|e| match e {
                StoreError::NotFound => function_not_found(&k, None),
                e => e.into(),
            })?;
        st.forget(&k);
        // On the thread that committed: a caller gone meanwhile cannot skip it.
        if !dry_run {
            st.changed(&k, Some("$LATEST"));
        }
        Ok(updated)
    })
    .await?;
    if !dry_run {
        // The code it had may be referenced no more.
        super::collect_code(&state);
    }
    let view = if dry_run {
        View::Current
    } else {
        View::Updated
    };
    let rec = if publish && !dry_run {
        let revision = Some(rec.revision_id.clone());
        super::versions::publish_latest(&state, &key, None, None, revision).await?
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
    let mut req: wire::UpdateFunctionConfigurationRequest = json_body(&body)?;
    let (key, qualifier) = resolve(&caller, &name, None, "UpdateFunctionConfiguration")?;
    if qualifier.is_some() {
        return Err(LambdaError::invalid_parameter(
            "UpdateFunctionConfiguration acts on $LATEST; remove the qualifier.",
        )
        .into());
    }
    check_dead_letter(&state, &key, &req.config).await?;
    let group = (req.config.logging_config.as_ref()).and_then(|l| l.log_group.clone());
    super::config::check_log_group(&state, &key, group).await?;
    let vpc = req.config.vpc_config.take();
    let vpc = super::vpc::requested(&state, &key.account, &key.region, vpc).await?;
    // New layers are resolved first (they live in the store too); the size check needs the
    // function's current code and happens with the update.
    let new_layers = match &req.config.layers {
        None => None,
        Some(arns) => {
            let mut probe = FunctionSpec::with_defaults(String::new());
            probe.layers = arns.clone();
            let size = super::layers::attach(&state, &caller, &mut probe).await?;
            Some((probe.layer_code, size))
        }
    };
    let store = state.store.clone();
    let st = state.clone();
    let k = key.clone();
    let rec = blocking(move || {
        let rec = store
            .update_spec(&k, req.revision_id.as_deref(), |current| {
                let mut spec = current.spec.clone();
                let runtime_before = spec.runtime.clone();
                apply_config(&mut spec, req.config)?;
                super::vpc::apply(&mut spec, vpc);
                st.limits.check_spec(&spec)?;
                if spec.runtime != runtime_before {
                    check_served(&st, &spec)?;
                }
                if let Some((code, size)) = new_layers {
                    let limit = st.limits.unzipped_max_bytes;
                    if current.code.unzipped_size + size > limit {
                        return Err(super::layers::too_big(
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
            })?;
        st.forget(&k);
        st.changed(&k, Some("$LATEST"));
        Ok(rec)
    })
    .await?;
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
            let (store, st, k, n) = (state.store.clone(), state.clone(), key.clone(), *n);
            let existed = blocking(move || {
                let existed = store.delete_version(&k, n)?;
                st.forget(&k);
                if existed {
                    st.changed(&k, Some(&n.to_string()));
                }
                Ok(existed)
            })
            .await?;
            if !existed {
                return Err(function_not_found(&key, qualifier.as_ref()));
            }
            super::collect_code(&state);
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    let (store, st, k) = (state.store.clone(), state.clone(), key.clone());
    let deleted = blocking(move || {
        // Its reservation goes with it, from the scheduler too (a function made again under
        // its name starts without one).
        let _order = st.reservations.lock().unwrap_or_else(|e| e.into_inner());
        let queued = store.delete_function(&k)?;
        st.forget(&k);
        let deleted = queued.is_some();
        if deleted {
            let (account, region) = (k.account.as_str(), k.region.as_str());
            crate::prometheus::forget_function(account, region, k.name.as_str());
            let arn = arn(&k, None);
            st.executor
                .set_reserved(k.account.as_str(), k.region.as_str(), &arn, None);
            // Its environments go, here too (its reservation gone first, so that its entry
            // may go with them): a caller gone meanwhile cannot leave them.
            st.changed(&k, None);
        }
        // Its queued asynchronous events went with it. Told here, on the thread that committed,
        // so that a caller gone meanwhile cannot leave the dispatcher holding them.
        if let Some(queued) = queued {
            st.queue.forget_deleted(k, queued);
        }
        Ok(deleted)
    })
    .await?;
    if !deleted {
        return Err(function_not_found(&key, None));
    }
    tracing::info!(function = %key.name, account = %key.account, "deleted function");
    super::collect_code(&state);
    Ok(StatusCode::NO_CONTENT)
}
