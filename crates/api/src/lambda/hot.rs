//! The read-mostly cache of what Invoke runs: per function, its records by version (`$LATEST`
//! and published numbers), each with what its environments need to know once it has run, and
//! its aliases. A warm invocation reads them under a read lock, without SQLite or the blocking
//! pool. Every write to a function or an alias goes through this process's handlers, which
//! forget the function's entry; a read that began before such a write is not cached.

use std::collections::HashMap;
use std::sync::Arc;

use lamina_model::Qualifier;
use lamina_runtime_api::FunctionRuntime;
use lamina_store::{AliasRecord, FunctionKey, FunctionRecord, StoreError};

use super::invoke::active;
use super::meters::Meters;
use super::{ApiResult, AppState, arn, blocking, function_not_found};

const LATEST: &str = "$LATEST";

/// The cache (see the module's documentation).
#[derive(Default)]
pub struct HotCache {
    /// Counts the entries forgotten: a read that began at another count is not cached.
    generation: u64,
    functions: HashMap<FunctionKey, Hot>,
}

/// What the cache holds of one function.
#[derive(Default)]
struct Hot {
    /// By version: `$LATEST` or a number.
    versions: HashMap<String, Cached>,
    aliases: HashMap<String, Arc<AliasRecord>>,
}

#[derive(Clone)]
struct Cached {
    rec: Arc<FunctionRecord>,
    /// Made by its first invocation (the record is then known to be active), with the
    /// function's metric handles.
    runtime: Option<(Arc<FunctionRuntime>, Arc<Meters>)>,
}

impl AppState {
    /// Forgets what the cache holds of a function, after it or one of its aliases changed.
    pub(crate) fn forget_hot(&self, key: &FunctionKey) {
        let mut hot = self.hot.write().unwrap_or_else(|e| e.into_inner());
        hot.generation += 1;
        hot.functions.remove(key);
    }

    fn hot_generation(&self) -> u64 {
        self.hot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    /// Caches what `f` adds to a function's entry, unless an entry was forgotten since `since`.
    fn keep_hot(&self, since: u64, key: &FunctionKey, f: impl FnOnce(&mut Hot)) {
        let mut hot = self.hot.write().unwrap_or_else(|e| e.into_inner());
        if hot.generation == since {
            f(hot.functions.entry(key.clone()).or_default());
        }
    }
}

/// A function's record, what its environments need to know, and its metric handles.
pub(crate) type Runnable = (Arc<FunctionRecord>, Arc<FunctionRuntime>, Arc<Meters>);

/// The record an invoke runs, active, and what its environments need to know: from the cache
/// once read and run (unless `fresh`), so that a warm invocation makes neither again (nor asks
/// the blocking pool for the merged layers of a function that has some).
pub(crate) async fn function_of(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
    fresh: bool,
) -> ApiResult<Runnable> {
    let picked = if fresh {
        None
    } else {
        match hot_runtime(state, key, qualifier) {
            Ok(hit) => return Ok(hit),
            Err(picked) => picked,
        }
    };
    // Boxed: reading the store and making the runtime is most of this future's size, and a warm
    // invocation would otherwise allocate and copy room for it.
    Box::pin(load(state, key, qualifier, picked, fresh)).await
}

/// What [`function_of`] returns, if the cache holds all of it; else the version an alias in the
/// cache picked, if one did (an alias picks once per invocation, so that its weights hold).
fn hot_runtime(
    state: &AppState,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
) -> Result<Runnable, Option<String>> {
    let hot = state.hot.read().unwrap_or_else(|e| e.into_inner());
    let h = hot.functions.get(key).ok_or(None)?;
    let number;
    let (version, picked) = match qualifier {
        None | Some(Qualifier::Latest) => (LATEST, false),
        Some(Qualifier::Version(n)) => {
            number = n.to_string();
            (number.as_str(), false)
        }
        Some(Qualifier::Alias(a)) => {
            let alias = h.aliases.get(a.as_str()).ok_or(None)?;
            (super::versions::picked(alias), true)
        }
    };
    let missed = || picked.then(|| version.to_owned());
    let c = h.versions.get(version).ok_or_else(missed)?;
    let (runtime, meters) = c.runtime.as_ref().ok_or_else(missed)?;
    Ok((c.rec.clone(), runtime.clone(), meters.clone()))
}

/// [`function_of`], reading what the cache does not hold; `picked` is the version an alias in
/// the cache already picked.
async fn load(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
    picked: Option<String>,
    fresh: bool,
) -> ApiResult<Runnable> {
    let version = match picked {
        Some(v) => v,
        None => version_of(state, key, qualifier, fresh).await?,
    };
    let Cached { rec, runtime } = cached(state, key, &version, qualifier, fresh).await?;
    if let Some((runtime, meters)) = runtime {
        return Ok((rec, runtime, meters));
    }
    active(&rec)?;
    let runtime = Arc::new(runtime_of(state, key, &rec).await?);
    let meters = Arc::new(Meters::of(&runtime.account, &runtime.region, &runtime.name));
    let mut hot = state.hot.write().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = hot
        .functions
        .get_mut(key)
        .and_then(|h| h.versions.get_mut(&version))
        // Unless the function changed meanwhile.
        && Arc::ptr_eq(&c.rec, &rec)
    {
        c.runtime = Some((runtime.clone(), meters.clone()));
    }
    Ok((rec, runtime, meters))
}

/// The record an invoke runs: `$LATEST`, or the version the qualifier names (an alias picks one
/// by weight), from the cache unless `fresh`.
pub(crate) async fn record(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
    fresh: bool,
) -> ApiResult<Arc<FunctionRecord>> {
    let version = version_of(state, key, qualifier, fresh).await?;
    Ok(cached(state, key, &version, qualifier, fresh).await?.rec)
}

/// The version an invocation at `qualifier` runs.
async fn version_of(
    state: &Arc<AppState>,
    key: &FunctionKey,
    qualifier: Option<&Qualifier>,
    fresh: bool,
) -> ApiResult<String> {
    let name = match qualifier {
        None | Some(Qualifier::Latest) => return Ok(LATEST.to_owned()),
        Some(Qualifier::Version(n)) => return Ok(n.to_string()),
        Some(Qualifier::Alias(a)) => a.as_str(),
    };
    let hit = (!fresh)
        .then(|| {
            let hot = state.hot.read().unwrap_or_else(|e| e.into_inner());
            hot.functions.get(key)?.aliases.get(name).cloned()
        })
        .flatten();
    let alias = match hit {
        Some(alias) => alias,
        None => {
            let since = state.hot_generation();
            let (store, k, n) = (state.store.clone(), key.clone(), name.to_owned());
            let found = blocking(move || match store.get_alias(&k, &n) {
                Err(StoreError::NotFound) => Ok(None),
                found => Ok(found?),
            })
            .await?;
            let alias = Arc::new(found.ok_or_else(|| function_not_found(key, qualifier))?);
            state.keep_hot(since, key, |h| {
                h.aliases.insert(name.to_owned(), alias.clone());
            });
            alias
        }
    };
    Ok(super::versions::picked(&alias).to_owned())
}

/// A version's record, and what its environments need to know if it has run.
async fn cached(
    state: &Arc<AppState>,
    key: &FunctionKey,
    version: &str,
    qualifier: Option<&Qualifier>,
    fresh: bool,
) -> ApiResult<Cached> {
    if !fresh {
        let hot = state.hot.read().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = hot.functions.get(key).and_then(|h| h.versions.get(version)) {
            return Ok(c.clone());
        }
    }
    let since = state.hot_generation();
    let (store, k, v) = (state.store.clone(), key.clone(), version.to_owned());
    let rec = blocking(move || Ok(store.get_version(&k, &v)?))
        .await?
        .ok_or_else(|| function_not_found(key, qualifier))?;
    let cached = Cached {
        rec: Arc::new(rec),
        runtime: None,
    };
    state.keep_hot(since, key, |h| {
        h.versions.insert(version.to_owned(), cached.clone());
    });
    Ok(cached)
}

/// What an environment needs to know about `rec`.
async fn runtime_of(
    state: &Arc<AppState>,
    key: &FunctionKey,
    rec: &FunctionRecord,
) -> ApiResult<FunctionRuntime> {
    let spec = &rec.spec;
    let layer_shas: Vec<String> = spec
        .layer_code
        .iter()
        .map(|l| l.sha256_hex.clone())
        .collect();
    let opt_tree = if layer_shas.is_empty() {
        None
    } else {
        let store = state.store.clone();
        let shas = layer_shas.clone();
        Some(
            blocking(move || {
                Ok(store
                    .opt_tree(&shas)
                    .map_err(lamina_store::StoreError::from)?)
            })
            .await?,
        )
    };
    let mut packages = vec![rec.code.sha256_hex.clone()];
    packages.extend(layer_shas);
    Ok(FunctionRuntime {
        account: key.account.as_str().into(),
        region: key.region.as_str().into(),
        name: key.name.to_string(),
        version: rec.version.as_str().into(),
        revision_id: rec.revision_id.as_str().into(),
        runtime: spec
            .runtime
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        handler: spec.handler.clone().unwrap_or_default(),
        memory_mb: spec.memory_size,
        timeout_s: spec.timeout,
        tmp_mb: spec.ephemeral_storage,
        environment: spec.environment.clone(),
        code_tree: state.store.code().tree_path(&rec.code.sha256_hex),
        opt_tree,
        packages,
        log_group: spec
            .log_group
            .clone()
            .unwrap_or_else(|| format!("/aws/lambda/{}", key.name)),
        logging: lamina_runtime_api::LogSettings {
            json: spec.log_format == lamina_model::LogFormat::Json,
            application_level: spec
                .application_log_level
                .clone()
                .unwrap_or_else(|| "INFO".into()),
            system_level: spec
                .system_log_level
                .clone()
                .unwrap_or_else(|| "INFO".into()),
        },
        function_arn: arn(key, None).into(),
        image: spec.image_run().map(|l| lamina_runtime_api::ImageRun {
            argv: l.argv,
            cwd: l.cwd,
            env: l.env,
        }),
        vpc: spec
            .vpc_config
            .as_ref()
            .map(|v| lamina_runtime_api::VpcAttachment {
                subnet_ids: v.subnet_ids.clone(),
                security_group_ids: v.security_group_ids.clone(),
            }),
    })
}
