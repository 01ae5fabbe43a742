//! The OCI distribution API (`/v2/…`), as docker, podman, skopeo and crane use it: blobs (HEAD,
//! GET with ranges), uploads (monolithic, chunked, cross-repository mounts, status, cancel),
//! manifests (PUT, GET, HEAD, DELETE), tags lists and the catalog. Repositories are the
//! account's ECR repositories: they must exist (`aws ecr create-repository`), as on ECR.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use lamina_store::images::digest_hex;
use lamina_store::{BlobError, NewImage, Repository};

use super::blobs::{finish_upload, get_blob, patch_upload, start_upload, upload_accepted};
use super::{MAX_MANIFEST_BYTES, owner, token};
use crate::{AppState, Caller, blocking};

/// The manifest and index media types the registry stores and serves.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Whether an unsigned request is for the registry: `/v2/`, the catalog, or a repository's
/// blobs, manifests or tags (API Gateway's own `/v2/` paths never take these shapes).
pub fn is_registry_path(path: &str) -> bool {
    path == "/v2/"
        || path == "/v2"
        || path == "/v2/_catalog"
        || (path.starts_with("/v2/")
            && (path.contains("/blobs/")
                || path.contains("/manifests/")
                || path.ends_with("/tags/list")))
}

/// A distribution API error.
#[derive(Debug)]
pub struct RegistryError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

pub(super) fn err(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> RegistryError {
    RegistryError {
        status,
        code,
        message: message.into(),
    }
}

impl crate::Internal for RegistryError {
    fn internal() -> Self {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "an internal error occurred",
        )
    }
}

impl From<lamina_store::StoreError> for RegistryError {
    fn from(e: lamina_store::StoreError) -> Self {
        match e {
            lamina_store::StoreError::Immutable(tag) => err(
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                format!(
                    "The image tag '{tag}' already exists and cannot be overwritten because the repository is immutable."
                ),
            ),
            lamina_store::StoreError::Blob(b) => b.into(),
            lamina_store::StoreError::InIndex(list) => err(
                StatusCode::CONFLICT,
                "DENIED",
                format!(
                    "The manifest is referenced by the manifest list {list}; delete the list first."
                ),
            ),
            e => {
                tracing::error!(error = %e, "registry store error");
                <Self as crate::Internal>::internal()
            }
        }
    }
}

impl From<BlobError> for RegistryError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::UploadUnknown => {
                err(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", e.to_string())
            }
            BlobError::TooManyUploads => err(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                e.to_string(),
            ),
            BlobError::UploadBusy => {
                err(StatusCode::CONFLICT, "BLOB_UPLOAD_INVALID", e.to_string())
            }
            BlobError::DigestMismatch { .. } | BlobError::DigestInvalid(_) => {
                err(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
            }
            BlobError::TooLarge(_) => {
                err(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", e.to_string())
            }
            BlobError::Unknown(_) => err(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", e.to_string()),
            e => {
                tracing::error!(error = %e, "registry storage error");
                <Self as crate::Internal>::internal()
            }
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "errors": [{ "code": self.code, "message": self.message, "detail": null }] });
        let mut resp = (
            self.status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Basic realm=\"lamina\""),
            );
        }
        resp
    }
}

impl RegistryError {
    /// The ECR API's exception type and message for the same failure.
    pub(crate) fn describe(&self) -> (&'static str, String) {
        let kind = match self.code {
            "MANIFEST_BLOB_UNKNOWN" => "LayersNotFoundException",
            "DIGEST_INVALID" => "ImageDigestDoesNotMatchException",
            "TAG_INVALID" if self.message.contains("immutable") => "ImageTagAlreadyExistsException",
            "UNKNOWN" => "ServerException",
            _ => "InvalidParameterException",
        };
        (kind, self.message.clone())
    }
}

type Result<T> = std::result::Result<T, RegistryError>;

/// What a request names under `/v2/<name>/`.
enum Target<'a> {
    Blob(&'a str),
    Uploads,
    Upload(&'a str),
    Manifest(&'a str),
    Tags,
}

fn target_of(rest: &str) -> Option<(&str, Target<'_>)> {
    // Parsed from the end: a repository name may itself hold `blobs` or `manifests`, a
    // reference never holds a `/`.
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some((name, Target::Tags));
    }
    let last = |marker: &str| {
        let i = rest.rfind(marker)?;
        let tail = &rest[i + marker.len()..];
        (!tail.contains('/')).then_some((&rest[..i], tail))
    };
    if let Some((name, tail)) = last("/manifests/") {
        return Some((name, Target::Manifest(tail)));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some((name, Target::Uploads));
    }
    if let Some((name, id)) = last("/blobs/uploads/") {
        return Some((name, Target::Upload(id)));
    }
    if let Some((name, digest)) = last("/blobs/") {
        return Some((name, Target::Blob(digest)));
    }
    None
}

/// Serves one registry request.
pub async fn serve(state: Arc<AppState>, req: Request) -> Response {
    let resp = match handle(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let mut resp = resp;
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        axum::http::HeaderValue::from_static("registry/2.0"),
    );
    resp
}

async fn handle(state: &Arc<AppState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let caller = token::registry_caller(&state.ecr, &state.auth, authorization).ok_or_else(|| {
        err(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required: log in with user AWS and the password of `aws ecr get-login-password`",
        )
    })?;
    let path = parts.uri.path().to_owned();
    let query = crate::query::Query::parse(parts.uri.query());
    let q = |k: &str| query.get(k).map(str::to_owned);
    if path == "/v2/" || path == "/v2" {
        return Ok((StatusCode::OK, [("content-type", "application/json")], "{}").into_response());
    }
    if path == "/v2/_catalog" {
        let store = state.store.clone();
        let c = caller.clone();
        let repos =
            blocking::<_, RegistryError>(move || Ok(store.repositories(&c.account, &c.region)?))
                .await?;
        let names: Vec<String> = repos.into_iter().map(|r| r.name).collect();
        return Ok(axum::Json(serde_json::json!({ "repositories": names })).into_response());
    }
    let rest = &path["/v2/".len()..];
    let (name, target) = target_of(rest).ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "unknown registry path",
        )
    })?;
    let repo = repository(state, &caller, name).await?;
    let method = parts.method.clone();
    match (target, method) {
        (Target::Blob(d), Method::GET | Method::HEAD) => {
            get_blob(
                state,
                &repo,
                d,
                &parts.headers,
                parts.method == Method::HEAD,
            )
            .await
        }
        (Target::Blob(_), Method::DELETE) => Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "blobs are removed by collection once no image references them",
        )),
        (Target::Uploads, Method::POST) => {
            start_upload(state, &caller, &repo, q("digest"), q("mount"), body).await
        }
        (Target::Upload(id), Method::PATCH) => {
            let range = header(&parts.headers, "content-range");
            patch_upload(state, &repo, id, range, body).await
        }
        (Target::Upload(id), Method::PUT) => {
            let digest = q("digest").ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    "the digest parameter is required",
                )
            })?;
            finish_upload(state, &repo, id, &digest, body).await
        }
        (Target::Upload(id), Method::GET) => {
            let offset = state
                .store
                .image_content()
                .upload_offset(id, &owner(&repo.account, &repo.region, &repo.name))?;
            Ok(upload_accepted(StatusCode::NO_CONTENT, &repo, id, offset))
        }
        (Target::Upload(id), Method::DELETE) => {
            state
                .store
                .image_content()
                .cancel_upload(id, &owner(&repo.account, &repo.region, &repo.name))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Manifest(r), Method::PUT) => {
            let media_type = header(&parts.headers, "content-type").map(str::to_owned);
            let bytes = crate::auth::read_body(&parts, body, MAX_MANIFEST_BYTES)
                .await
                .ok_or_else(|| {
                    err(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "MANIFEST_INVALID",
                        "manifests are limited to 4 MB",
                    )
                })?;
            let digest = put_manifest(state, &repo, r, media_type, bytes).await?;
            let mut resp = StatusCode::CREATED.into_response();
            set(
                &mut resp,
                "location",
                &format!("/v2/{}/manifests/{digest}", repo.name),
            );
            set(&mut resp, "docker-content-digest", &digest);
            Ok(resp)
        }
        (Target::Manifest(r), Method::GET | Method::HEAD) => {
            get_manifest(state, &repo, r, parts.method == Method::HEAD).await
        }
        (Target::Manifest(r), Method::DELETE) => delete_manifest(state, &repo, r).await,
        (Target::Tags, Method::GET) => tags(state, &repo, q("n"), q("last")).await,
        _ => Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "method not allowed here",
        )),
    }
}

pub(super) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = axum::http::HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

async fn repository(state: &Arc<AppState>, caller: &Caller, name: &str) -> Result<Repository> {
    if !super::valid_repository_name(name) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("invalid repository name '{name}'"),
        ));
    }
    let store = state.store.clone();
    let (c, n) = (caller.clone(), name.to_owned());
    blocking::<_, RegistryError>(move || Ok(store.repository(&c.account, &c.region, &n)?))
        .await?
        .ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!(
                    "The repository with name '{name}' does not exist in the registry with id '{}'. Create it with `aws ecr create-repository --repository-name {name}`.",
                    caller.account
                ),
            )
        })
}

/// The blobs (or manifests) a manifest names, and whether it is an index.
pub(crate) fn references(doc: &serde_json::Value) -> Option<(Vec<String>, bool)> {
    if doc.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return None;
    }
    let digests = |list: &serde_json::Value| -> Option<Vec<String>> {
        list.as_array()?
            .iter()
            .map(|d| Some(d.get("digest")?.as_str()?.to_owned()))
            .collect()
    };
    if let Some(list) = doc.get("manifests") {
        // An index names manifests only: one that also names a config or layers would carry
        // blobs past the repository check.
        if doc.get("config").is_some() || doc.get("layers").is_some() {
            return None;
        }
        return Some((digests(list)?, true));
    }
    let mut refs = vec![doc.get("config")?.get("digest")?.as_str()?.to_owned()];
    refs.extend(digests(doc.get("layers")?)?);
    Some((refs, false))
}

/// Blobs (or manifests) one manifest may name.
const MAX_REFERENCES: usize = 1000;

/// Stores a manifest pushed as `reference` (a tag or its digest); returns its digest.
pub(crate) async fn put_manifest(
    state: &Arc<AppState>,
    repo: &Repository,
    reference: &str,
    media_type: Option<String>,
    bytes: Bytes,
) -> Result<String> {
    let invalid = |m: &str| err(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", m.to_owned());
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(invalid("manifests are limited to 4 MB"));
    }
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(&format!("the manifest is not JSON: {e}")))?;
    let (refs, index) = references(&doc).ok_or_else(|| {
        invalid("only schema 2 manifests (OCI or Docker v2) and indexes are accepted")
    })?;
    if refs.len() > MAX_REFERENCES {
        return Err(invalid(
            "a manifest may name at most 1000 blobs or manifests",
        ));
    }
    if refs.iter().any(|d| digest_hex(d).is_none()) {
        return Err(invalid("every referenced digest must be a sha256 digest"));
    }
    // Served back as the manifest's Content-Type: only the registry's own media types, never
    // one a browser would render (`text/html;x=manifest`).
    let media_type = media_type
        .filter(|m| MANIFEST_TYPES.contains(&m.as_str()))
        .or_else(|| {
            doc.get("mediaType")
                .and_then(|m| m.as_str())
                .filter(|m| MANIFEST_TYPES.contains(m))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            if index {
                "application/vnd.oci.image.index.v1+json".into()
            } else {
                "application/vnd.oci.image.manifest.v1+json".into()
            }
        });
    let tag = if reference.starts_with("sha256:") {
        None
    } else if valid_tag(reference) {
        Some(reference.to_owned())
    } else {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!("invalid tag '{reference}'"),
        ));
    };
    let store = state.store.clone();
    let repo = repo.clone();
    let reference = reference.to_owned();
    blocking::<_, RegistryError>(move || {
        for d in &refs {
            let known = if index {
                store.image(repo.id, d)?.is_some()
            } else {
                // Touched: collection keeps it for its grace period from now on.
                store.repository_blob(repo.id, d)?.is_some() && store.image_content().touch_blob(d)
            };
            if !known {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("the manifest references {d}, which this repository does not hold"),
                ));
            }
        }
        let digest = store.image_content().put_blob(&bytes)?;
        if reference.starts_with("sha256:") && reference != digest {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("the manifest's digest is {digest}, not {reference}"),
            ));
        }
        store.put_image(
            &repo,
            NewImage {
                digest: &digest,
                media_type: &media_type,
                size: bytes.len() as u64,
                refs: &refs,
                tag: tag.as_deref(),
            },
        )?;
        Ok(digest)
    })
    .await
}

/// A tag Docker accepts: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

async fn get_manifest(
    state: &Arc<AppState>,
    repo: &Repository,
    reference: &str,
    head: bool,
) -> Result<Response> {
    let store = state.store.clone();
    let (id, r) = (repo.id, reference.to_owned());
    let found = blocking::<_, RegistryError>(move || {
        let Some(image) = store.image(id, &r)? else {
            return Ok(None);
        };
        let bytes = store
            .image_content()
            .read_blob(&image.digest, MAX_MANIFEST_BYTES as u64)?;
        Ok(Some((image, bytes)))
    })
    .await?;
    let (image, bytes) = found.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!(
                "manifest '{reference}' is unknown to repository '{}'",
                repo.name
            ),
        )
    })?;
    let len = bytes.len();
    let mut resp = if head {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::OK, bytes).into_response()
    };
    set(&mut resp, "content-type", &image.media_type);
    set(&mut resp, "content-length", &len.to_string());
    set(&mut resp, "docker-content-digest", &image.digest);
    Ok(resp)
}

async fn delete_manifest(
    state: &Arc<AppState>,
    repo: &Repository,
    reference: &str,
) -> Result<Response> {
    let store = state.store.clone();
    let (id, r) = (repo.id, reference.to_owned());
    let deleted = blocking::<_, RegistryError>(move || {
        let gone = if r.starts_with("sha256:") {
            store.delete_image(id, &r)?
        } else {
            store.untag_image(id, &r)?.is_some()
        };
        Ok(gone)
    })
    .await?;
    if !deleted {
        return Err(err(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest '{reference}' is unknown"),
        ));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn tags(
    state: &Arc<AppState>,
    repo: &Repository,
    n: Option<String>,
    last: Option<String>,
) -> Result<Response> {
    let store = state.store.clone();
    let id = repo.id;
    let images = blocking::<_, RegistryError>(move || Ok(store.images(id)?)).await?;
    let mut all: Vec<String> = images.into_iter().flat_map(|i| i.tags).collect();
    all.sort();
    if let Some(last) = last {
        all.retain(|t| *t > last);
    }
    let limit = n
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let more = all.len() > limit;
    all.truncate(limit);
    let mut resp =
        axum::Json(serde_json::json!({ "name": repo.name, "tags": all })).into_response();
    if more && let Some(t) = all.last() {
        set(
            &mut resp,
            "link",
            &format!(
                "</v2/{}/tags/list?n={limit}&last={t}>; rel=\"next\"",
                repo.name
            ),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_paths_do_not_take_api_gateway_paths() {
        for p in [
            "/v2/",
            "/v2/_catalog",
            "/v2/a/b/blobs/sha256:00",
            "/v2/fn/manifests/v1",
            "/v2/fn/tags/list",
            "/v2/fn/blobs/uploads/",
        ] {
            assert!(is_registry_path(p), "{p}");
        }
        for p in [
            "/v2/apis",
            "/v2/apis/abc/routes",
            "/v2/tags/arn:aws:apigateway:us-east-1::/apis/x",
            "/v2/domainnames",
        ] {
            assert!(!is_registry_path(p), "{p}");
        }
    }

    #[test]
    fn paths_split_into_name_and_target() {
        assert!(matches!(
            target_of("team/fn/blobs/uploads/"),
            Some(("team/fn", Target::Uploads))
        ));
        assert!(matches!(
            target_of("fn/blobs/uploads/abc"),
            Some(("fn", Target::Upload("abc")))
        ));
        assert!(matches!(
            target_of("fn/blobs/sha256:1"),
            Some(("fn", Target::Blob("sha256:1")))
        ));
        assert!(matches!(
            target_of("a/b/manifests/v1"),
            Some(("a/b", Target::Manifest("v1")))
        ));
        assert!(matches!(
            target_of("a/tags/list"),
            Some(("a", Target::Tags))
        ));
    }
}
