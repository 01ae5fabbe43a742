//! A function's `ImageUri` resolved to what its root is built from: the manifest's digest (a
//! version stays pinned to it when the tag moves), the layers, and the image configuration
//! (entry point, command, working directory, environment).
//!
//! `<this server's host:port>/<repository>[:tag|@digest]` and ECR's own form
//! `<account>.dkr.ecr.<region>.amazonaws.com/<repository>…` name this registry; other hosts are
//! pulled ([`super::pull`]) where the operator allows it.

use std::sync::Arc;

use lamina_model::{Architecture, ImageSpec, LambdaError, Region};
use lamina_store::{ImagePlan, LayerRef};
use serde_json::Value;

use super::{MAX_IMAGE_BYTES, MAX_IMAGE_ENTRIES, MAX_MANIFEST_BYTES};
use crate::lambda::ApiError;
use crate::{AppState, Caller};

/// An image ready to become a function's code.
pub struct Resolved {
    /// How its root is built.
    pub plan: ImagePlan,
    /// What the function's configuration records.
    pub spec: ImageSpec,
}

fn invalid(msg: impl Into<String>) -> LambdaError {
    LambdaError::invalid_parameter(msg)
}

/// The OCI name of a Lambda architecture.
fn oci_arch(arch: Architecture) -> &'static str {
    match arch {
        Architecture::Arm64 => "arm64",
        _ => "amd64",
    }
}

/// The digest of the index entry for linux on `arch`.
pub fn platform(index: &Value, arch: &str) -> Option<String> {
    index.get("manifests")?.as_array()?.iter().find_map(|m| {
        let p = m.get("platform")?;
        (p.get("os")?.as_str()? == "linux" && p.get("architecture")?.as_str()? == arch)
            .then(|| m.get("digest")?.as_str().map(str::to_owned))?
    })
}

/// `host/name`, and the tag or digest.
fn split(uri: &str) -> Option<(&str, &str, &str)> {
    let (host, rest) = uri.split_once('/')?;
    let (name, reference) = match rest.split_once('@') {
        Some((name, digest)) => (name.rsplit_once(':').map_or(name, |(n, _)| n), digest),
        None => match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (rest, "latest"),
        },
    };
    Some((host, name, reference))
}

/// The account and region `host` names when it is this registry.
fn local_registry(
    state: &AppState,
    caller: &Caller,
    host: &str,
    request_host: &str,
) -> Option<Region> {
    let port = |h: &str| h.rsplit_once(':').map(|(_, p)| p.to_owned());
    let loopback = |h: &str| {
        let name = h.rsplit_once(':').map_or(h, |(n, _)| n);
        matches!(name, "localhost" | "127.0.0.1" | "[::1]")
    };
    if host == state.ecr.host
        || host == request_host
        || (loopback(host) && loopback(&state.ecr.host) && port(host) == port(&state.ecr.host))
    {
        return Some(caller.region.clone());
    }
    // `<account>.dkr.ecr.<region>.amazonaws.com`: the caller's own account only.
    let mut parts = host.split('.');
    let (account, dkr, ecr, region) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (account == caller.account.as_str() && dkr == "dkr" && ecr == "ecr")
        .then(|| Region::parse(region).ok())?
}

/// Resolves `uri` for a function of `arch` created by `caller` (through `request_host`).
pub async fn resolve(
    state: &Arc<AppState>,
    caller: &Caller,
    uri: &str,
    arch: Architecture,
    request_host: &str,
) -> Result<Resolved, ApiError> {
    let (host, name, reference) = split(uri).ok_or_else(|| {
        invalid(format!(
            "Source image {uri} is not valid. Provide a valid source image: <registry>/<repository>:<tag> or @<digest>."
        ))
    })?;
    let want = oci_arch(arch);
    let (repository, digest, manifest, config) =
        match local_registry(state, caller, host, request_host) {
            Some(region) => {
                let (digest, manifest, config) =
                    local(state, caller, &region, name, reference, want).await?;
                (format!("{host}/{name}"), digest, manifest, config)
            }
            None => {
                let p = super::pull::pull(state, &caller.account, uri, want)
                    .await
                    .map_err(|m| ApiError::from(invalid(m)))?;
                (p.repository, p.digest, p.manifest, p.config)
            }
        };
    let arch_of_image = config
        .get("architecture")
        .and_then(|a| a.as_str())
        .unwrap_or("");
    if arch_of_image != want {
        return Err(invalid(format!(
            "The image {uri} is built for '{arch_of_image}', but the function's architecture is {} ({want}). Build the image for {want}, or set Architectures to match.",
            arch.as_str()
        ))
        .into());
    }
    Ok(plan(uri, repository, digest, &manifest, &config)?)
}

fn plan(
    uri: &str,
    repository: String,
    digest: String,
    manifest: &Value,
    config: &Value,
) -> Result<Resolved, LambdaError> {
    let diff_ids: Vec<&str> = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .map(|l| l.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    let layers = manifest
        .get("layers")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    if layers.len() != diff_ids.len() {
        return Err(invalid(format!(
            "The image {uri} is not valid: its manifest has {} layers but its configuration names {} diff_ids.",
            layers.len(),
            diff_ids.len()
        )));
    }
    let mut refs = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let media_type = layer
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        if lamina_store::image_layer::Compression::of_media_type(media_type).is_none() {
            return Err(invalid(format!(
                "The image manifest, config or layer media type for the source image {uri} is not supported: '{media_type}'."
            )));
        }
        refs.push(LayerRef {
            digest: layer
                .get("digest")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned(),
            media_type: media_type.to_owned(),
            diff_id: diff_id.to_owned(),
        });
    }
    let c = config.get("config").cloned().unwrap_or(Value::Null);
    let strings = |k: &str| -> Vec<String> {
        c.get(k)
            .and_then(|v| v.as_array())
            .map(|l| {
                l.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Resolved {
        spec: ImageSpec {
            uri: uri.to_owned(),
            resolved_uri: format!("{repository}@{digest}"),
            digest: digest.clone(),
            entry_point: strings("Entrypoint"),
            cmd: strings("Cmd"),
            working_dir: c
                .get("WorkingDir")
                .and_then(|w| w.as_str())
                .unwrap_or_default()
                .to_owned(),
            env: strings("Env"),
        },
        plan: ImagePlan {
            manifest_digest: digest,
            layers: refs,
            max_bytes: MAX_IMAGE_BYTES,
            max_entries: MAX_IMAGE_ENTRIES,
        },
    })
}

/// A manifest (the platform's, from an index) and its configuration from this registry.
async fn local(
    state: &Arc<AppState>,
    caller: &Caller,
    region: &Region,
    name: &str,
    reference: &str,
    arch: &str,
) -> Result<(String, Value, Value), ApiError> {
    let store = state.store.clone();
    let (account, region, name, reference, arch) = (
        caller.account.clone(),
        region.clone(),
        name.to_owned(),
        reference.to_owned(),
        arch.to_owned(),
    );
    crate::blocking::<_, ApiError>(move || {
        let missing = || -> ApiError {
            invalid(format!(
                "Source image {name}:{reference} does not exist. Provide a valid source image."
            ))
            .into()
        };
        let repo = store
            .repository(&account, &region, &name)?
            .ok_or_else(missing)?;
        let read = |digest: &str| -> Result<Value, ApiError> {
            let bytes = store
                .image_content()
                .read_blob(digest, MAX_MANIFEST_BYTES as u64)
                .map_err(|e| invalid(format!("Source image {name}: {e}")))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("Source image {name}: {e}")).into())
        };
        let mut image = store.image(repo.id, &reference)?.ok_or_else(missing)?;
        let mut manifest = read(&image.digest)?;
        if manifest.get("manifests").is_some() {
            let d = platform(&manifest, &arch).ok_or_else(|| {
                ApiError::from(invalid(format!(
                    "Source image {name}:{reference} has no image for linux/{arch}."
                )))
            })?;
            image = store.image(repo.id, &d)?.ok_or_else(missing)?;
            manifest = read(&image.digest)?;
        }
        let config_digest = manifest
            .get("config")
            .and_then(|c| c.get("digest"))
            .and_then(|d| d.as_str())
            .ok_or_else(|| {
                ApiError::from(invalid(format!(
                    "Source image {name}:{reference} has no configuration."
                )))
            })?
            .to_owned();
        // Every blob must be one this repository holds (pushed here or mounted from the
        // account), never merely one stored for someone else.
        if manifest.get("manifests").is_some() {
            return Err(invalid(format!(
                "Source image {name}:{reference} is an index inside an index."
            ))
            .into());
        }
        let layers = manifest
            .get("layers")
            .and_then(|l| l.as_array())
            .cloned()
            .unwrap_or_default();
        let digests = std::iter::once(config_digest.clone()).chain(
            layers
                .iter()
                .filter_map(|l| l.get("digest")?.as_str().map(str::to_owned)),
        );
        for d in digests {
            if store.repository_blob(repo.id, &d)?.is_none() {
                return Err(invalid(format!(
                    "Source image {name}:{reference} names {d}, which its repository does not hold."
                ))
                .into());
            }
        }
        let config = read(&config_digest)?;
        Ok((image.digest, manifest, config))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn image_uris_split() {
        assert_eq!(
            split("127.0.0.1:9001/fn:v1"),
            Some(("127.0.0.1:9001", "fn", "v1"))
        );
        assert_eq!(split("h:1/team/fn"), Some(("h:1", "team/fn", "latest")));
        assert_eq!(split("h/fn:v1@sha256:ab"), Some(("h", "fn", "sha256:ab")));
        assert_eq!(split("fn"), None);
    }
}
