//! Blobs and uploads of the distribution API: HEAD/GET with ranges, monolithic and chunked
//! uploads, cross-repository mounts, upload status and cancel.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use lamina_store::Repository;
use lamina_store::images::digest_hex;

use super::registry::{RegistryError, err, header, set};
use super::{MAX_IMAGE_BYTES, owner};
use crate::{AppState, Caller, blocking};

/// How long an upload's request may send nothing before it is failed (its writer given back).
const UPLOAD_STALL: std::time::Duration = std::time::Duration::from_secs(60);

type Result<T> = std::result::Result<T, RegistryError>;

/// A blob the repository may serve: its size.
async fn blob_in(state: &Arc<AppState>, repo: &Repository, digest: &str) -> Result<Option<u64>> {
    let store = state.store.clone();
    let (id, d) = (repo.id, digest.to_owned());
    blocking::<_, RegistryError>(move || {
        Ok(match store.repository_blob(id, &d)? {
            Some(_) => store.image_content().blob_size(&d),
            None => None,
        })
    })
    .await
}

pub(super) async fn get_blob(
    state: &Arc<AppState>,
    repo: &Repository,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let size = blob_in(state, repo, digest).await?.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob {digest} is unknown to this repository"),
        )
    })?;
    let (start, end) = match header(headers, "range").and_then(|r| parse_range(r, size)) {
        Some(r) => r,
        None if header(headers, "range").is_some() => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            set(&mut resp, "content-range", &format!("bytes */{size}"));
            return Ok(resp);
        }
        None => (0, size.saturating_sub(1)),
    };
    let partial = header(headers, "range").is_some();
    let len = if size == 0 { 0 } else { end - start + 1 };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        let path = state
            .store
            .image_content()
            .blob_path(digest)
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob is gone"))?;
        Body::from_stream(file_stream(path, start, len))
    };
    let status = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = (status, body).into_response();
    set(&mut resp, "content-length", &len.to_string());
    set(&mut resp, "content-type", "application/octet-stream");
    set(&mut resp, "docker-content-digest", digest);
    set(&mut resp, "accept-ranges", "bytes");
    if partial {
        set(
            &mut resp,
            "content-range",
            &format!("bytes {start}-{end}/{size}"),
        );
    }
    Ok(resp)
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` within `size`.
fn parse_range(range: &str, size: u64) -> Option<(u64, u64)> {
    let spec = range.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, size.checked_sub(1)?),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

fn file_stream(
    path: std::path::PathBuf,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    futures_util::stream::unfold(
        (None::<tokio::fs::File>, path, start, len),
        |(file, path, at, left)| async move {
            if left == 0 {
                return None;
            }
            let mut file = match file {
                Some(f) => f,
                None => {
                    let mut f = match tokio::fs::File::open(&path).await {
                        Ok(f) => f,
                        Err(e) => return Some((Err(e), (None, path, at, 0))),
                    };
                    if let Err(e) = f.seek(std::io::SeekFrom::Start(at)).await {
                        return Some((Err(e), (None, path, at, 0)));
                    }
                    f
                }
            };
            let mut buf = vec![0u8; (256 * 1024).min(left as usize)];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shrank",
                    )),
                    (None, path, at, 0),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    Some((
                        Ok(Bytes::from(buf)),
                        (Some(file), path, at + n as u64, left - n as u64),
                    ))
                }
                Err(e) => Some((Err(e), (None, path, at, 0))),
            }
        },
    )
}

pub(super) fn upload_accepted(
    status: StatusCode,
    repo: &Repository,
    id: &str,
    offset: u64,
) -> Response {
    let mut resp = status.into_response();
    set(
        &mut resp,
        "location",
        &format!("/v2/{}/blobs/uploads/{id}", repo.name),
    );
    set(&mut resp, "docker-upload-uuid", id);
    set(
        &mut resp,
        "range",
        &format!("0-{}", offset.saturating_sub(1)),
    );
    set(&mut resp, "content-length", "0");
    resp
}

fn blob_created(repo: &Repository, digest: &str) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    set(
        &mut resp,
        "location",
        &format!("/v2/{}/blobs/{digest}", repo.name),
    );
    set(&mut resp, "docker-content-digest", digest);
    set(&mut resp, "content-length", "0");
    resp
}

pub(super) async fn start_upload(
    state: &Arc<AppState>,
    caller: &Caller,
    repo: &Repository,
    digest: Option<String>,
    mount: Option<String>,
    body: Body,
) -> Result<Response> {
    if let Some(d) = mount.filter(|d| digest_hex(d).is_some()) {
        let store = state.store.clone();
        let (account, id, d2) = (caller.account.clone(), repo.id, d.clone());
        let mounted = blocking::<_, RegistryError>(move || {
            let visible = store.account_blob(&account, &d2)?.is_some();
            match store.image_content().blob_size(&d2) {
                Some(size) if visible && store.image_content().touch_blob(&d2) => {
                    store.link_blob(id, &d2, size)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await?;
        if mounted {
            return Ok(blob_created(repo, &d));
        }
    }
    let owner = owner(&repo.account, &repo.region, &repo.name);
    let id = state
        .store
        .image_content()
        .start_upload(repo.account.as_str(), &owner)?;
    match digest {
        Some(d) => finish_upload(state, repo, &id, &d, body).await,
        None => Ok(upload_accepted(StatusCode::ACCEPTED, repo, &id, 0)),
    }
}

/// Streams a request body into an upload.
async fn append(
    writer: &mut lamina_store::images::UploadWriter,
    body: Body,
) -> std::result::Result<(), RegistryError> {
    let mut chunks = body.into_data_stream();
    // A client that stops sending holds the upload's writer: not for longer than this.
    let stalled = || {
        err(
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            format!(
                "no bytes of the upload arrived for {} s",
                UPLOAD_STALL.as_secs()
            ),
        )
    };
    while let Some(chunk) = tokio::time::timeout(UPLOAD_STALL, chunks.next())
        .await
        .map_err(|_| stalled())?
    {
        let chunk = chunk.map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                "BLOB_UPLOAD_INVALID",
                format!("reading the upload failed: {e}"),
            )
        })?;
        writer.write(&chunk, MAX_IMAGE_BYTES)?;
    }
    Ok(())
}

pub(super) async fn patch_upload(
    state: &Arc<AppState>,
    repo: &Repository,
    id: &str,
    range: Option<&str>,
    body: Body,
) -> Result<Response> {
    let images = state.store.image_content();
    let mut writer = images.take_upload(id, &owner(&repo.account, &repo.region, &repo.name))?;
    if let Some(start) = range
        .and_then(|r| r.trim_start_matches("bytes ").split('-').next())
        .and_then(|s| s.trim().parse::<u64>().ok())
        && start != writer.offset()
    {
        let offset = writer.offset();
        images.return_upload(id, writer);
        let mut resp = upload_accepted(StatusCode::RANGE_NOT_SATISFIABLE, repo, id, offset);
        *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
        return Ok(resp);
    }
    let result = append(&mut writer, body).await;
    let offset = writer.offset();
    images.return_upload(id, writer);
    result?;
    Ok(upload_accepted(StatusCode::ACCEPTED, repo, id, offset))
}

pub(super) async fn finish_upload(
    state: &Arc<AppState>,
    repo: &Repository,
    id: &str,
    digest: &str,
    body: Body,
) -> Result<Response> {
    let images = state.store.image_content();
    let mut writer = images.take_upload(id, &owner(&repo.account, &repo.region, &repo.name))?;
    if let Err(e) = append(&mut writer, body).await {
        let _ = images.cancel_upload(id, &owner(&repo.account, &repo.region, &repo.name));
        return Err(e);
    }
    let store = state.store.clone();
    let (id, d, repo_id) = (id.to_owned(), digest.to_owned(), repo.id);
    blocking::<_, RegistryError>(move || {
        let size = store.image_content().finish_upload(&id, writer, &d)?;
        store.link_blob(repo_id, &d, size)?;
        Ok(())
    })
    .await?;
    Ok(blob_created(repo, digest))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-4", 100), None);
    }
}
