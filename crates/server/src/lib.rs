//! The composition root: [`run`] wires the store and the API together and serves until shutdown.
//!
//! `main` and the integration tests call the same function with a configuration, an already-bound
//! listener and a shutdown future.

mod config;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use lamina_api::AppState;
use lamina_store::Store;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError, FileConfig, Overrides};

/// Opens the store and serves the API on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await?
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let mut url_key = [0u8; 32];
    url_key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    url_key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let state = Arc::new(AppState {
        store: Arc::new(store),
        limits: config.limits.clone(),
        auth: config.auth.clone(),
        account_concurrency: config.account_concurrency,
        url_key,
    });
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), verify_signatures = config.auth.verify, "lamina is serving the Lambda API");
    axum::serve(listener, lamina_api::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")?;
    tracing::info!("lamina stopped");
    Ok(())
}
