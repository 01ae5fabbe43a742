//! `lamina image push|ls`: images into the server's registry, from an OCI layout directory or a
//! `docker save` archive, without Docker.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Client;
use crate::client::ApiFailure;
use crate::output::{s, size};

/// `lamina image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Push an OCI layout directory or a `docker save` archive as REPOSITORY:TAG (the repository
    /// is created if needed); prints the ImageUri for `lamina deploy --image`.
    Push {
        /// An OCI image layout directory, or a `docker save` .tar.
        source: PathBuf,
        /// REPOSITORY[:TAG] (TAG defaults to latest).
        name: String,
    },
    /// List repositories, or the images of one.
    Ls {
        /// A repository.
        repository: Option<String>,
    },
}

pub async fn run(client: &Client, command: ImageCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        ImageCommand::Push { source, name } => push(client, &source, &name, json_out).await,
        ImageCommand::Ls { repository } => ls(client, repository.as_deref(), json_out).await,
    }
}

/// A blob to upload: where its bytes are, and its digest.
struct Blob {
    path: PathBuf,
    digest: String,
}

/// What a push sends: blobs, then the manifest.
struct Image {
    blobs: Vec<Blob>,
    manifest: Vec<u8>,
    media_type: String,
    /// Holds an unpacked archive while the push runs.
    _work: Option<tempfile::TempDir>,
}

/// A path an archive's `manifest.json` or index names, inside `dir` only, symlinks followed
/// (`docker save` names plain relative paths; an absolute one, `..` or a symlink of the
/// archive's would read a file of the user's).
fn inside(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(name);
    let outside = || anyhow::anyhow!("the archive names '{name}', outside itself");
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(outside());
    }
    let path = dir.join(rel);
    let real = path
        .canonicalize()
        .with_context(|| format!("the archive has no '{name}'"))?;
    if !real.starts_with(dir.canonicalize()?) {
        return Err(outside());
    }
    Ok(path)
}

fn digest_of(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// An OCI layout: the manifest `tag` names in `index.json` (or its only one).
fn from_layout(dir: &Path, tag: &str) -> anyhow::Result<Image> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).with_context(|| {
            format!(
                "{} is not an OCI image layout (no index.json)",
                dir.display()
            )
        })?)?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let chosen = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .or_else(|| (manifests.len() == 1).then(|| &manifests[0]))
        .with_context(|| format!("{} has no image tagged '{tag}'", dir.display()))?;
    let blob = |d: &str| -> anyhow::Result<PathBuf> {
        let hex = d
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .with_context(|| format!("'{d}' is not a sha256 digest"))?;
        inside(dir, &format!("blobs/sha256/{hex}"))
    };
    let manifest_digest = chosen["digest"]
        .as_str()
        .context("index entry without digest")?;
    let manifest = std::fs::read(blob(manifest_digest)?)?;
    let doc: Value = serde_json::from_slice(&manifest)?;
    if doc.get("manifests").is_some() {
        bail!(
            "{} holds an index; push a single-platform image",
            dir.display()
        );
    }
    let mut blobs = Vec::new();
    for d in std::iter::once(&doc["config"]).chain(doc["layers"].as_array().into_iter().flatten()) {
        let digest = d["digest"]
            .as_str()
            .context("descriptor without digest")?
            .to_owned();
        blobs.push(Blob {
            path: blob(&digest)?,
            digest,
        });
    }
    let media_type = chosen["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_owned();
    Ok(Image {
        blobs,
        manifest,
        media_type,
        _work: None,
    })
}

/// A `docker save` archive: unpacked to a temporary directory, then a Docker v2 manifest made
/// from its `manifest.json`.
fn from_archive(archive: &Path) -> anyhow::Result<Image> {
    // A directory of our own: a random name, made anew, only ours to read.
    let guard = tempfile::Builder::new().prefix("lamina-push-").tempdir()?;
    let work = guard.path().to_path_buf();
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot read {}", archive.display()))?;
    tar::Archive::new(file)
        .unpack(&work)
        .with_context(|| format!("{} is not a tar archive", archive.display()))?;
    if work.join("index.json").exists() && !work.join("manifest.json").exists() {
        let mut image = from_layout(&work, "latest")?;
        image._work = Some(guard);
        return Ok(image);
    }
    let list: Value =
        serde_json::from_slice(&std::fs::read(work.join("manifest.json")).with_context(|| {
            format!(
                "{} is not a `docker save` archive (no manifest.json)",
                archive.display()
            )
        })?)?;
    let entry = &list[0];
    let config = inside(
        &work,
        entry["Config"]
            .as_str()
            .context("manifest.json without Config")?,
    )?;
    let config_digest = digest_of(&config)?;
    let mut blobs = vec![Blob {
        path: config.clone(),
        digest: config_digest.clone(),
    }];
    let mut layers = Vec::new();
    for l in entry["Layers"].as_array().into_iter().flatten() {
        let path = inside(&work, l.as_str().context("a layer path is not a string")?)?;
        let digest = digest_of(&path)?;
        layers.push(json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar",
            "size": std::fs::metadata(&path)?.len(),
            "digest": digest,
        }));
        blobs.push(Blob { path, digest });
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": std::fs::metadata(&config)?.len(),
            "digest": config_digest,
        },
        "layers": layers,
    }))?;
    Ok(Image {
        blobs,
        manifest,
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        _work: Some(guard),
    })
}

async fn push(client: &Client, source: &Path, name: &str, json_out: bool) -> anyhow::Result<()> {
    let (repo, tag) = name.split_once(':').unwrap_or((name, "latest"));
    let image = if source.is_dir() {
        from_layout(source, tag)?
    } else {
        from_archive(source)?
    };
    match client
        .ecr("CreateRepository", json!({ "repositoryName": repo }))
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.error_type == "RepositoryAlreadyExistsException") => {}
        Err(e) => return Err(e),
    }
    let auth = client.ecr("GetAuthorizationToken", json!({})).await?;
    let token = s(&auth["authorizationData"][0], "authorizationToken");
    let basic = format!("Basic {token}");
    let base = client.endpoint().trim_end_matches('/').to_owned();
    let http = client.http();
    let total: u64 = image
        .blobs
        .iter()
        .filter_map(|b| std::fs::metadata(&b.path).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    if !json_out {
        bar.set_style(ProgressStyle::with_template(
            "pushing {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
        )?);
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    for blob in &image.blobs {
        let len = std::fs::metadata(&blob.path)?.len();
        let head = http
            .head(format!("{base}/v2/{repo}/blobs/{}", blob.digest))
            .header("authorization", &basic)
            .send()
            .await?;
        if head.status().is_success() {
            bar.inc(len);
            continue;
        }
        let started = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .header("authorization", &basic)
            .send()
            .await?;
        if started.status() != StatusCode::ACCEPTED {
            bail!("the registry refused the upload: {}", started.text().await?);
        }
        let location = started
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("the registry gave no upload location")?
            .to_owned();
        let file = tokio::fs::File::open(&blob.path).await?;
        let b = bar.clone();
        let stream = futures_util::StreamExt::map(tokio_util_stream(file), move |chunk| {
            if let Ok(c) = &chunk {
                b.inc(c.len() as u64);
            }
            chunk
        });
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = http
            .request(
                Method::PUT,
                format!("{base}{location}{sep}digest={}", blob.digest),
            )
            .header("authorization", &basic)
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await?;
        if done.status() != StatusCode::CREATED {
            bail!("uploading {} failed: {}", blob.digest, done.text().await?);
        }
    }
    bar.finish_and_clear();
    let put = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("authorization", &basic)
        .header("content-type", &image.media_type)
        .body(image.manifest.clone())
        .send()
        .await?;
    if put.status() != StatusCode::CREATED {
        bail!("the registry refused the manifest: {}", put.text().await?);
    }
    let digest = put
        .headers()
        .get("docker-content-digest")
        .and_then(|d| d.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let host = reqwest::Url::parse(&base)?;
    let host = match host.port() {
        Some(p) => format!("{}:{p}", host.host_str().unwrap_or_default()),
        None => host.host_str().unwrap_or_default().to_owned(),
    };
    let uri = format!("{host}/{repo}:{tag}");
    if json_out {
        println!(
            "{}",
            json!({ "ImageUri": uri, "Digest": digest, "Bytes": total })
        );
    } else {
        println!("pushed {uri} ({}, {digest})", size(total));
        println!("deploy it: lamina deploy --name NAME --image {uri}");
    }
    Ok(())
}

/// A file as a stream of chunks.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

async fn ls(client: &Client, repository: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    match repository {
        None => {
            let v = client.ecr("DescribeRepositories", json!({})).await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("{:<40} URI", "REPOSITORY");
            for r in v["repositories"].as_array().into_iter().flatten() {
                println!("{:<40} {}", s(r, "repositoryName"), s(r, "repositoryUri"));
            }
        }
        Some(repo) => {
            let v = client
                .ecr("DescribeImages", json!({ "repositoryName": repo }))
                .await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("{:<24} {:<10} DIGEST", "TAGS", "SIZE");
            for i in v["imageDetails"].as_array().into_iter().flatten() {
                let tags: Vec<&str> = i["imageTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .collect();
                let tags = if tags.is_empty() {
                    "-".to_owned()
                } else {
                    tags.join(",")
                };
                println!(
                    "{:<24} {:<10} {}",
                    tags,
                    size(i["imageSizeInBytes"].as_u64().unwrap_or(0)),
                    s(i, "imageDigest")
                );
            }
        }
    }
    Ok(())
}
