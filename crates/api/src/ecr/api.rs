//! The ECR API calls users script: repositories, images, tokens. JSON 1.1 on `POST /`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lamina_store::{ImageRecord, Repository, StoreError};
use serde_json::{Value, json};

use super::{EcrError, MAX_MANIFEST_BYTES, registry, token};
use crate::auth::{AuthFailure, identify, read_body};
use crate::{AppState, Caller, blocking};

type Result<T> = std::result::Result<T, EcrError>;

/// Serves one ECR API request.
pub async fn serve(state: Arc<AppState>, req: Request<Body>) -> Response {
    match handle(&state, req).await {
        Ok(v) => (
            [("content-type", "application/x-amz-json-1.1")],
            v.to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &Arc<AppState>, req: Request<Body>) -> Result<Value> {
    let (parts, body) = req.into_parts();
    let body = read_body(&parts, body, 2 * MAX_MANIFEST_BYTES)
        .await
        .ok_or_else(|| EcrError::invalid("The request is too large."))?;
    let caller = identify(&state.auth, &parts, &body).map_err(|e| {
        let kind = match e.kind {
            AuthFailure::MissingToken => "MissingAuthenticationTokenException",
            AuthFailure::Malformed => "IncompleteSignatureException",
            AuthFailure::UnknownKey => "UnrecognizedClientException",
            AuthFailure::BadSignature => "InvalidSignatureException",
        };
        EcrError {
            kind,
            status: axum::http::StatusCode::FORBIDDEN,
            message: e.message,
        }
    })?;
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let op = target
        .strip_prefix("AmazonEC2ContainerRegistry_V20150921.")
        .ok_or_else(|| {
            EcrError::new(
                "UnknownOperationException",
                format!("Unknown target '{target}'."),
            )
        })?;
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            EcrError::new(
                "SerializationException",
                format!("The body is not JSON: {e}"),
            )
        })?
    };
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or(&state.ecr.host)
        .to_owned();
    let ctx = Ctx {
        state,
        caller: &caller,
        input: &input,
        host: &host,
    };
    match op {
        "CreateRepository" => create_repository(&ctx).await,
        "DescribeRepositories" => describe_repositories(&ctx).await,
        "DeleteRepository" => delete_repository(&ctx).await,
        "GetAuthorizationToken" => Ok(authorization_token(&ctx)),
        "DescribeImages" => describe_images(&ctx).await,
        "ListImages" => list_images(&ctx).await,
        "BatchGetImage" => batch_get_image(&ctx).await,
        "BatchDeleteImage" => batch_delete_image(&ctx).await,
        "PutImage" => put_image(&ctx).await,
        "BatchCheckLayerAvailability" => check_layers(&ctx).await,
        other => Err(EcrError::new(
            "UnsupportedOperationException",
            format!("This registry does not implement {other}."),
        )),
    }
}

struct Ctx<'a> {
    state: &'a Arc<AppState>,
    caller: &'a Caller,
    input: &'a Value,
    host: &'a str,
}

impl Ctx<'_> {
    fn str(&self, name: &str) -> Option<&str> {
        self.input.get(name).and_then(|v| v.as_str())
    }

    fn name(&self) -> Result<String> {
        let name = self.str("repositoryName").ok_or_else(|| {
            EcrError::invalid("1 validation error detected: Value null at 'repositoryName' failed to satisfy constraint: Member must not be null")
        })?;
        if !super::valid_repository_name(name) {
            return Err(EcrError::invalid(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''",
            ));
        }
        Ok(name.to_owned())
    }

    async fn repository(&self) -> Result<Repository> {
        let name = self.name()?;
        let store = self.state.store.clone();
        let (c, n) = (self.caller.clone(), name.clone());
        blocking::<_, EcrError>(move || Ok(store.repository(&c.account, &c.region, &n)?))
            .await?
            .ok_or_else(|| EcrError::repository_not_found(&name, &self.caller.account))
    }

    fn repository_json(&self, r: &Repository) -> Value {
        json!({
            "repositoryArn": format!("arn:aws:ecr:{}:{}:repository/{}", r.region, r.account, r.name),
            "registryId": r.account.as_str(),
            "repositoryName": r.name,
            "repositoryUri": format!("{}/{}", self.host, r.name),
            "createdAt": r.created_ms as f64 / 1000.0,
            "imageTagMutability": r.tag_mutability,
            "imageScanningConfiguration": { "scanOnPush": false },
            "encryptionConfiguration": { "encryptionType": "AES256" },
        })
    }
}

async fn create_repository(ctx: &Ctx<'_>) -> Result<Value> {
    let name = ctx.name()?;
    let mutability = ctx
        .str("imageTagMutability")
        .unwrap_or("MUTABLE")
        .to_owned();
    if !matches!(mutability.as_str(), "MUTABLE" | "IMMUTABLE") {
        return Err(EcrError::invalid(
            "imageTagMutability must be one of [MUTABLE, IMMUTABLE].",
        ));
    }
    let tags: std::collections::BTreeMap<String, String> = ctx
        .input
        .get("tags")
        .and_then(|t| t.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|t| {
                    Some((
                        t.get("Key")?.as_str()?.to_owned(),
                        t.get("Value")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let store = ctx.state.store.clone();
    let (c, n) = (ctx.caller.clone(), name.clone());
    let repo = blocking::<_, EcrError>(move || {
        match store.create_repository(&c.account, &c.region, &n, &mutability, &tags) {
            Err(StoreError::AlreadyExists) => Err(EcrError::new(
                "RepositoryAlreadyExistsException",
                format!(
                    "The repository with name '{n}' already exists in the registry with id '{}'",
                    c.account
                ),
            )),
            r => Ok(r?),
        }
    })
    .await?;
    Ok(json!({ "repository": ctx.repository_json(&repo) }))
}

async fn describe_repositories(ctx: &Ctx<'_>) -> Result<Value> {
    let store = ctx.state.store.clone();
    let c = ctx.caller.clone();
    let all =
        blocking::<_, EcrError>(move || Ok(store.repositories(&c.account, &c.region)?)).await?;
    let wanted: Option<Vec<&str>> = ctx
        .input
        .get("repositoryNames")
        .and_then(|v| v.as_array())
        .map(|l| l.iter().filter_map(|n| n.as_str()).collect());
    let chosen: Vec<&Repository> = match &wanted {
        Some(names) => {
            if let Some(missing) = names.iter().find(|n| !all.iter().any(|r| r.name == **n)) {
                return Err(EcrError::repository_not_found(missing, &ctx.caller.account));
            }
            all.iter()
                .filter(|r| names.contains(&r.name.as_str()))
                .collect()
        }
        None => all.iter().collect(),
    };
    let (page, next) = paginate(ctx, chosen.len())?;
    let repos: Vec<Value> = chosen[page]
        .iter()
        .map(|r| ctx.repository_json(r))
        .collect();
    Ok(with_token(json!({ "repositories": repos }), next))
}

/// The slice of `len` items this request asks for (`maxResults` ≤ 1000, `nextToken` an offset).
fn paginate(ctx: &Ctx<'_>, len: usize) -> Result<(std::ops::Range<usize>, Option<usize>)> {
    let max = ctx
        .input
        .get("maxResults")
        .and_then(|v| v.as_u64())
        .unwrap_or(100);
    if !(1..=1000).contains(&max) {
        return Err(EcrError::invalid("maxResults must be between 1 and 1000."));
    }
    let start = match ctx.str("nextToken") {
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= len)
            .ok_or_else(|| EcrError::invalid("The nextToken is invalid."))?,
        None => 0,
    };
    let end = (start + max as usize).min(len);
    Ok((start..end, (end < len).then_some(end)))
}

fn with_token(mut v: Value, next: Option<usize>) -> Value {
    if let Some(n) = next {
        v["nextToken"] = json!(n.to_string());
    }
    v
}

async fn delete_repository(ctx: &Ctx<'_>) -> Result<Value> {
    let repo = ctx.repository().await?;
    let force = ctx
        .input
        .get("force")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let store = ctx.state.store.clone();
    let r = repo.clone();
    blocking::<_, EcrError>(move || match store.delete_repository(&r, force) {
        Err(StoreError::NotEmpty) => Err(EcrError::new(
            "RepositoryNotEmptyException",
            format!(
                "The repository with name '{}' in registry with id '{}' cannot be deleted because it still contains images",
                r.name, r.account
            ),
        )),
        other => {
            other?;
            collect(&store);
            Ok(())
        }
    })
    .await?;
    Ok(json!({ "repository": ctx.repository_json(&repo) }))
}

fn collect(store: &lamina_store::Store) {
    if let Err(e) = store.collect_garbage() {
        tracing::warn!(error = %e, "collecting unreferenced image content failed");
    }
}

fn authorization_token(ctx: &Ctx<'_>) -> Value {
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + token::VALIDITY_S;
    let password = token::issue(&ctx.state.ecr, ctx.caller, expires);
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    json!({ "authorizationData": [{
        "authorizationToken": encoded,
        "expiresAt": expires,
        "proxyEndpoint": format!("http://{}", ctx.host),
    }] })
}

async fn images_of(ctx: &Ctx<'_>, repo: &Repository) -> Result<Vec<ImageRecord>> {
    let store = ctx.state.store.clone();
    let id = repo.id;
    blocking::<_, EcrError>(move || Ok(store.images(id)?)).await
}

/// The `imageIds` a request names: `(digest, tag)` pairs.
fn image_ids(ctx: &Ctx<'_>) -> Result<Vec<(Option<String>, Option<String>)>> {
    let list = ctx
        .input
        .get("imageIds")
        .and_then(|v| v.as_array())
        .ok_or_else(|| EcrError::invalid("imageIds is required."))?;
    if list.is_empty() || list.len() > 100 {
        return Err(EcrError::invalid(
            "imageIds must hold between 1 and 100 items.",
        ));
    }
    // An id asked for twice is answered once.
    let mut ids = Vec::with_capacity(list.len());
    for id in list {
        let s = |k: &str| id.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let id = (s("imageDigest"), s("imageTag"));
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The most bytes of manifests one `BatchGetImage` returns.
const MAX_BATCH_MANIFEST_BYTES: usize = 32 << 20;

fn find<'a>(
    images: &'a [ImageRecord],
    digest: &Option<String>,
    tag: &Option<String>,
) -> std::result::Result<&'a ImageRecord, (&'static str, String)> {
    let hit = images.iter().find(|i| {
        digest.as_ref().is_none_or(|d| *d == i.digest)
            && tag.as_ref().is_none_or(|t| i.tags.contains(t))
    });
    match hit {
        Some(i) => Ok(i),
        None if digest.is_some() && tag.is_some() => Err((
            "ImageTagDoesNotMatchDigest",
            "Invalid request parameters: image tag does not match image digest".into(),
        )),
        None if digest.is_none() && tag.is_none() => Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null".into(),
        )),
        None => Err(("ImageNotFound", "Requested image not found".into())),
    }
}

fn id_json(digest: &Option<String>, tag: &Option<String>) -> Value {
    let mut v = json!({});
    if let Some(d) = digest {
        v["imageDigest"] = json!(d);
    }
    if let Some(t) = tag {
        v["imageTag"] = json!(t);
    }
    v
}

async fn describe_images(ctx: &Ctx<'_>) -> Result<Value> {
    let repo = ctx.repository().await?;
    let images = images_of(ctx, &repo).await?;
    let chosen: Vec<&ImageRecord> = match ctx.input.get("imageIds") {
        Some(_) => {
            let mut out = Vec::new();
            for (d, t) in image_ids(ctx)? {
                match find(&images, &d, &t) {
                    Ok(i) => out.push(i),
                    Err(_) => {
                        return Err(EcrError::new(
                            "ImageNotFoundException",
                            format!(
                                "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{}' in the registry with id '{}'",
                                d.as_deref().unwrap_or("null"),
                                t.as_deref().unwrap_or("null"),
                                repo.name,
                                repo.account
                            ),
                        ));
                    }
                }
            }
            out
        }
        None => images.iter().collect(),
    };
    let (page, next) = paginate(ctx, chosen.len())?;
    let store = ctx.state.store.clone();
    let mut details = Vec::new();
    for i in &chosen[page] {
        let manifest = store
            .image_content()
            .read_blob(&i.digest, MAX_MANIFEST_BYTES as u64)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let size: u64 = manifest
            .as_ref()
            .and_then(|m| m.get("layers")?.as_array().cloned())
            .map(|l| l.iter().filter_map(|x| x.get("size")?.as_u64()).sum())
            .unwrap_or(0);
        let mut d = json!({
            "registryId": repo.account.as_str(),
            "repositoryName": repo.name,
            "imageDigest": i.digest,
            "imageSizeInBytes": size,
            "imagePushedAt": i.pushed_ms as f64 / 1000.0,
            "imageManifestMediaType": i.media_type,
        });
        if !i.tags.is_empty() {
            d["imageTags"] = json!(i.tags);
        }
        if let Some(t) = manifest.as_ref().and_then(|m| {
            m.get("config")?
                .get("mediaType")?
                .as_str()
                .map(str::to_owned)
        }) {
            d["artifactMediaType"] = json!(t);
        }
        details.push(d);
    }
    Ok(with_token(json!({ "imageDetails": details }), next))
}

async fn list_images(ctx: &Ctx<'_>) -> Result<Value> {
    let repo = ctx.repository().await?;
    let images = images_of(ctx, &repo).await?;
    let status = ctx
        .input
        .get("filter")
        .and_then(|f| f.get("tagStatus"))
        .and_then(|s| s.as_str())
        .unwrap_or("ANY");
    let mut ids = Vec::new();
    for i in &images {
        if i.tags.is_empty() {
            if status != "TAGGED" {
                ids.push(json!({ "imageDigest": i.digest }));
            }
        } else if status != "UNTAGGED" {
            ids.extend(
                i.tags
                    .iter()
                    .map(|t| json!({ "imageDigest": i.digest, "imageTag": t })),
            );
        }
    }
    let (page, next) = paginate(ctx, ids.len())?;
    Ok(with_token(json!({ "imageIds": ids[page].to_vec() }), next))
}

async fn batch_get_image(ctx: &Ctx<'_>) -> Result<Value> {
    let repo = ctx.repository().await?;
    let images = images_of(ctx, &repo).await?;
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    let mut total = 0;
    for (d, t) in image_ids(ctx)? {
        match find(&images, &d, &t) {
            Ok(i) => {
                total += i.size as usize;
                if total > MAX_BATCH_MANIFEST_BYTES {
                    return Err(EcrError::new(
                        "LimitExceededException",
                        format!(
                            "The images asked for hold more than {MAX_BATCH_MANIFEST_BYTES} bytes of manifests; ask for fewer at once."
                        ),
                    ));
                }
                let bytes = ctx
                    .state
                    .store
                    .image_content()
                    .read_blob(&i.digest, MAX_MANIFEST_BYTES as u64)
                    .map_err(|e| {
                        tracing::error!(error = %e, "reading a manifest failed");
                        <EcrError as crate::Internal>::internal()
                    })?;
                found.push(json!({
                    "registryId": repo.account.as_str(),
                    "repositoryName": repo.name,
                    "imageId": id_json(&Some(i.digest.clone()), &t),
                    "imageManifest": String::from_utf8_lossy(&bytes),
                    "imageManifestMediaType": i.media_type,
                }));
            }
            Err((code, reason)) => failures.push(json!({
                "imageId": id_json(&d, &t), "failureCode": code, "failureReason": reason,
            })),
        }
    }
    Ok(json!({ "images": found, "failures": failures }))
}

async fn batch_delete_image(ctx: &Ctx<'_>) -> Result<Value> {
    let repo = ctx.repository().await?;
    // Kept as this request changes it: an image whose tags it removes one by one goes with
    // its last, as ECR's does.
    let mut images = images_of(ctx, &repo).await?;
    let (mut deleted, mut failures) = (Vec::new(), Vec::new());
    let store = ctx.state.store.clone();
    for (d, t) in image_ids(ctx)? {
        let image = match find(&images, &d, &t) {
            Ok(i) => i.clone(),
            Err((code, reason)) => {
                failures.push(json!({ "imageId": id_json(&d, &t), "failureCode": code, "failureReason": reason }));
                continue;
            }
        };
        let s = store.clone();
        let (id, tag, digest) = (repo.id, t.clone(), image.digest.clone());
        // A tag goes alone unless it was the image's last; a digest takes the image and its tags.
        let untag = tag.is_some() && image.tags.len() > 1;
        let gone = blocking::<_, EcrError>(move || {
            match &tag {
                Some(tag) if untag => {
                    s.untag_image(id, tag)?;
                }
                _ => match s.delete_image(id, &image.digest) {
                    Err(lamina_store::StoreError::InIndex(list)) => return Ok(Some(list)),
                    r => {
                        r?;
                    }
                },
            }
            Ok::<_, EcrError>(None)
        })
        .await?;
        if gone.is_none() {
            match &t {
                Some(tag) if untag => images
                    .iter_mut()
                    .filter(|i| i.digest == digest)
                    .for_each(|i| i.tags.retain(|x| x != tag)),
                _ => images.retain(|i| i.digest != digest),
            }
        }
        if let Some(list) = gone {
            failures.push(json!({
                "imageId": id_json(&d, &t),
                "failureCode": "ImageReferencedByManifestList",
                "failureReason": format!("Requested image referenced by manifest list: [{list}]"),
            }));
            continue;
        }
        deleted.push(id_json(&Some(digest), &t));
    }
    let s = store.clone();
    let any = !deleted.is_empty();
    blocking::<_, EcrError>(move || {
        if any {
            collect(&s);
        }
        Ok::<_, EcrError>(())
    })
    .await?;
    Ok(json!({ "imageIds": deleted, "failures": failures }))
}

async fn put_image(ctx: &Ctx<'_>) -> Result<Value> {
    let repo = ctx.repository().await?;
    let manifest = ctx
        .str("imageManifest")
        .ok_or_else(|| EcrError::invalid("imageManifest is required."))?
        .to_owned();
    let tag = ctx.str("imageTag").map(str::to_owned);
    let digest = ctx.str("imageDigest").map(str::to_owned);
    let media = ctx.str("imageManifestMediaType").map(str::to_owned);
    let images = images_of(ctx, &repo).await?;
    let computed = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(manifest.as_bytes()))
    );
    if let Some(t) = &tag
        && images
            .iter()
            .any(|i| i.digest == computed && i.tags.contains(t))
    {
        return Err(EcrError::new(
            "ImageAlreadyExistsException",
            format!(
                "Image with digest '{computed}' and tag '{t}' already exists in the repository with name '{}' in registry with id '{}'",
                repo.name, repo.account
            ),
        ));
    }
    if let Some(d) = &digest
        && *d != computed
    {
        return Err(EcrError::new(
            "ImageDigestDoesNotMatchException",
            format!(
                "The specified image digest {d} does not match the digest that Amazon ECR calculated for the image, {computed}."
            ),
        ));
    }
    let reference = tag.clone().unwrap_or_else(|| computed.clone());
    let stored = registry::put_manifest(
        ctx.state,
        &repo,
        &reference,
        media.clone(),
        manifest.clone().into(),
    )
    .await
    .map_err(|e| {
        let (kind, msg) = e.describe();
        EcrError::new(kind, msg)
    })?;
    Ok(json!({ "image": {
        "registryId": repo.account.as_str(),
        "repositoryName": repo.name,
        "imageId": id_json(&Some(stored), &tag),
        "imageManifest": manifest,
        "imageManifestMediaType": media,
    } }))
}

async fn check_layers(ctx: &Ctx<'_>) -> Result<Value> {
    let repo = ctx.repository().await?;
    let digests: Vec<String> = ctx
        .input
        .get("layerDigests")
        .and_then(|v| v.as_array())
        .map(|l| {
            l.iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let store = ctx.state.store.clone();
    let id = repo.id;
    let layers = blocking::<_, EcrError>(move || {
        let mut out = Vec::new();
        for d in digests {
            let size = store
                .repository_blob(id, &d)?
                .filter(|_| store.image_content().blob_size(&d).is_some());
            out.push(match size {
                Some(n) => {
                    json!({ "layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": n })
                }
                None => json!({ "layerDigest": d, "layerAvailability": "UNAVAILABLE" }),
            });
        }
        Ok::<_, EcrError>(out)
    })
    .await?;
    Ok(json!({ "layers": layers, "failures": [] }))
}
