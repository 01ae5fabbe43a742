//! Pulling images from other registries (Docker Hub, public ECR, any registry v2) with
//! `oci-client`, only from registries the operator allows. Manifests, the configuration and
//! every layer land in the blob store, each verified against its digest.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;
use tokio::io::AsyncWrite;

use super::MAX_MANIFEST_BYTES;
use crate::AppState;

/// `[images]` settings for remote pulls.
#[derive(Debug, Clone, Default)]
pub struct PullSettings {
    /// Registries (`host[:port]`, `docker.io` for Docker Hub) functions may name; `*` allows
    /// any. Empty: no remote pulls.
    pub allow: Vec<String>,
    /// Registries spoken to over plain HTTP (a mirror on this host).
    pub insecure: Vec<String>,
    /// User and password per registry.
    pub credentials: BTreeMap<String, (String, String)>,
}

impl PullSettings {
    fn allows(&self, registry: &str) -> bool {
        self.allow.iter().any(|a| a == "*" || a == registry)
    }
}

/// Layers an image may have (Docker's own limit is 127).
const MAX_LAYERS: usize = 128;

/// The media types a manifest may have, most specific first.
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// An image pulled into the blob store.
pub struct Pulled {
    /// `host/repository` as the function named it.
    pub repository: String,
    /// The manifest's digest.
    pub digest: String,
    /// The image manifest (the platform's, when the reference named an index).
    pub manifest: Value,
    /// The image configuration.
    pub config: Value,
}

/// Pulls `uri` for `arch` (`amd64` or `arm64`). Errors are messages for the user.
pub async fn pull(state: &Arc<AppState>, uri: &str, arch: &str) -> Result<Pulled, String> {
    let settings = &state.ecr.pulls;
    let reference: Reference = uri
        .parse()
        .map_err(|e| format!("'{uri}' is not an image reference: {e}"))?;
    let registry = reference.registry().to_owned();
    if !settings.allows(&registry) {
        return Err(format!(
            "Images from '{registry}' are not allowed on this server: push the image to this server's registry, or have the operator add '{registry}' to [images] pull_from."
        ));
    }
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(settings.insecure.clone()),
        // A registry that stops answering fails the pull instead of holding it.
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    });
    let auth = match settings.credentials.get(&registry) {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let fail = |e: oci_client::errors::OciDistributionError| format!("pulling {uri} failed: {e}");
    let (bytes, mut digest) = client
        .pull_manifest_raw(&reference, &auth, &MANIFEST_TYPES)
        .await
        .map_err(fail)?;
    let mut manifest = parse(&bytes)?;
    let mut bytes = bytes;
    if manifest.get("manifests").is_some() {
        let chosen = super::resolve::platform(&manifest, arch)
            .ok_or_else(|| format!("{uri} has no image for linux/{arch}"))?;
        let by_digest = reference.clone_with_digest(chosen.clone());
        let (b, d) = client
            .pull_manifest_raw(&by_digest, &auth, &MANIFEST_TYPES)
            .await
            .map_err(fail)?;
        (bytes, digest) = (b, d);
        manifest = parse(&bytes)?;
    }
    let images = state.store.image_content();
    let stored = images.put_blob(&bytes).map_err(|e| e.to_string())?;
    if stored != digest {
        return Err(format!(
            "{uri}: the registry's manifest is {stored}, not the {digest} it announced"
        ));
    }
    let config_digest = manifest
        .get("config")
        .and_then(|c| c.get("digest"))
        .and_then(|d| d.as_str())
        .ok_or("the manifest has no config")?
        .to_owned();
    let mut config = Vec::new();
    client
        .pull_blob(
            &reference,
            config_digest.as_str(),
            Capped::new(&mut config, MAX_MANIFEST_BYTES as u64),
        )
        .await
        .map_err(fail)?;
    if images.put_blob(&config).map_err(|e| e.to_string())? != config_digest {
        return Err(format!(
            "{uri}: the configuration does not match its digest"
        ));
    }
    let layers = manifest
        .get("layers")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    if layers.len() > MAX_LAYERS {
        return Err(format!("{uri} has more than {MAX_LAYERS} layers"));
    }
    let declared = layers
        .iter()
        .filter_map(|l| l.get("size")?.as_u64())
        .try_fold(0u64, u64::checked_add);
    if declared.is_none_or(|d| d > super::MAX_IMAGE_BYTES) {
        return Err(format!("{uri} is larger than Lambda's 10 GB image limit"));
    }
    for layer in &layers {
        if layer.get("urls").is_some() {
            return Err(format!(
                "{uri} has a non-distributable layer (with urls); it cannot be pulled"
            ));
        }
        let d = layer
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or("a layer has no digest")?;
        // Always downloaded, even when stored here: a remote manifest naming a digest must not
        // reach a blob some other account pushed.
        let size = layer.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
        let path = images.staging_file();
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| e.to_string())?;
        let result = client
            .pull_blob(&reference, d, Capped::new(file, size))
            .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(fail(e));
        }
        let (store, d) = (state.store.clone(), d.to_owned());
        tokio::task::spawn_blocking(move || store.image_content().import(&path, &d))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(Pulled {
        repository: format!("{registry}/{}", reference.repository()),
        digest,
        manifest,
        config: parse(&config)?,
    })
}

fn parse(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err("the manifest is larger than 4 MB".into());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))
}

/// Refuses bytes past a limit (a registry sending more than the descriptor says).
struct Capped<W> {
    inner: W,
    left: u64,
}

impl<W> Capped<W> {
    fn new(inner: W, limit: u64) -> Self {
        Self { inner, left: limit }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            return Poll::Ready(Err(std::io::Error::other(
                "the blob is larger than its descriptor says",
            )));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.left -= n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
