//! The composition root: [`run`] wires the store and the API together and serves until shutdown.
//!
//! `main` and the integration tests call the same function with a configuration, an already-bound
//! listener and a shutdown future.

mod batch;
mod config;
mod init_exe;
mod logsink;
mod metricsink;
mod network;
mod scrape;
mod usagesink;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use lamina_api::AppState;
use lamina_store::Store;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError, FileConfig, Overrides};

/// How long stopping the environments may take at shutdown.
const EXECUTOR_STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(45);
/// How long writing what the last invocations left may take at shutdown, in all: with the
/// grace period (30 s by default) and [`EXECUTOR_STOP_LIMIT`], within a service manager's stop
/// timeout (90 s in packaging/lamina.service).
const FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes the data directory this server's alone for as long as the returned lock lives: a
/// second server on it would collect the first one's code in use, run its leased events again
/// and sweep its sandboxes. Its mode is made 0700 if it was looser (it holds every tenant's
/// configuration and code).
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join("lamina.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            anyhow::anyhow!(
                "another Lamina server uses {} (it holds {}): stop it, or give this one another --data-dir",
                dir.display(),
                path.display()
            )
        },
    )?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (mode 0700)", dir.display()))?;
        tracing::info!(dir = %dir.display(), "made the data directory private (mode 0700)");
    }
    Ok(file)
}

/// Opens the store and serves the API on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    raise_descriptor_limit();
    // Function code, layers and image trees are read by environments' own uids, whatever umask
    // the server was started with (systemd's UMask=, a hardened login). What must stay private
    // is kept so by the data directory's mode: 0700 when the server creates it.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    if !config.data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    }
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await?
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let store = Arc::new(store);
    // The VPC objects of the configuration file, before anything resolves a VPC from the store.
    {
        let (store, declared) = (store.clone(), config.declared_vpcs.clone());
        tokio::task::spawn_blocking(move || network::objects::apply(&store, &declared)).await??;
    }
    let init_exe = match &config.init_exe {
        Some(p) => p.clone(),
        None => match init_exe::path() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot install lamina-init; sandboxes start with `lamina sandbox-init` instead");
                std::env::current_exe().context("cannot find our own binary for sandbox-init")?
            }
        },
    };
    let tmp_budget_mb = config
        .tmp_budget_mb
        .unwrap_or_else(|| default_tmp_budget_mb(store.data_dir()));
    let logs = logsink::StoreLogs::start(store.clone(), config.log_max_bytes_per_function);
    let executor = {
        let executor_config = lamina_runtime_api::ExecutorConfig {
            account_concurrency: config.account_concurrency,
            keep_alive: config.keep_alive,
            memory_budget_mb: config.memory_budget_mb,
            memory_overcommit: config.memory_overcommit,
            memory_reserve_mb: config.memory_reserve_mb,
            prepared_sandboxes: config.prepared_sandboxes,
            scale_up: config.scale_up_per_10s,
            tmp_budget_mb,
            log_rate_bytes_per_s: config.log_rate_bytes_per_s,
            log_burst_bytes: config.log_burst_bytes,
            uid_lock_dir: "/run/lamina/uid-ranges".into(),
            async_share: config.async_share,
            work_dir: store.data_dir().join("run"),
            init_exe,
            network: config
                .network
                .as_ref()
                .map(|n| lamina_runtime_api::NetSettings {
                    pool: n.pool,
                    spare: n.spare,
                    connections: n.connections,
                    vpcs: Arc::new(network::StoreVpcs {
                        store: store.clone(),
                        permits: Arc::new(config.interface_permits.clone()),
                    }),
                }),
        };
        let logs = logs.clone();
        let pins = Arc::new(StorePins(store.clone()));
        // Builds the system tree sandboxes see and checks the host: blocking work.
        tokio::task::spawn_blocking(move || {
            lamina_runtime_api::Executor::new(executor_config, logs, pins)
        })
        .await?
        .context("cannot prepare the execution environments (system tree, /tmp pool, uid range)")?
    };
    {
        let ex = executor.clone();
        tokio::task::spawn_blocking(move || ex.clean_start()).await?;
    }
    {
        let store = store.clone();
        let reserved = tokio::task::spawn_blocking(move || store.reserved_all()).await??;
        for (account, region, name, n) in reserved {
            let arn = format!("arn:aws:lambda:{region}:{account}:function:{name}");
            executor.set_reserved(&account, &region, &arn, Some(n));
        }
    }
    tracing::info!(
        memory_budget_mb = config.memory_budget_mb,
        memory_overcommit = config.memory_overcommit,
        memory_reserve_mb = config.memory_reserve_mb,
        tmp_budget_mb,
        keep_alive_s = config.keep_alive.as_secs(),
        account_concurrency = config.account_concurrency,
        "scaling limits"
    );
    tracing::info!("{}", executor.host_summary());
    tracing::info!(runtimes = %executor.runtimes().join(", "), "runtimes served");
    spawn_log_expiry(store.clone(), config.log_retention_days);
    let usage = usagesink::StoreUsage::start(store.clone());
    let mut url_key = [0u8; 32];
    url_key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    url_key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let queue =
        lamina_api::lambda::queue::EventQueue::start(store.clone(), config.async_settings.clone())
            .context("cannot open the asynchronous event queue")?;
    let addr = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| {
        let host = match addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}", addr.port())
    });
    let signer = {
        let dir = store.data_dir().join("sns");
        tokio::task::spawn_blocking(move || lamina_api::sns::Signer::open(&dir)).await??
    };
    let ecr = {
        let (dir, url, pulls) = (
            store.data_dir().join("images"),
            public_url.clone(),
            config.image_pulls.clone(),
        );
        tokio::task::spawn_blocking(move || lamina_api::ecr::EcrState::open(&dir, &url, pulls))
            .await?
            .context("cannot open the registry's token key")?
    };
    let minutes = Arc::new(lamina_api::lambda::Minutes::default());
    metricsink::start(store.clone(), minutes.clone(), config.metrics_flush);
    let history_store = store.clone();
    let state = Arc::new(AppState {
        ecr,
        http: lamina_api::http::HttpState::new(
            &public_url,
            lamina_api::http::jwt::Jwks::new(config.jwks_files.clone()),
        ),
        sns: lamina_api::sns::SnsState::new(
            lamina_api::sns::SnsSettings {
                public_url,
                http_timeout: config.sns_http_timeout,
                max_backlog_bytes: config.sns_backlog_max_bytes,
                deny: config.sns_http_deny.clone(),
            },
            signer,
        )
        .map_err(anyhow::Error::msg)?,
        queue,
        store,
        limits: config.limits.clone(),
        auth: config.auth.clone(),
        account_concurrency: config.account_concurrency,
        url_key,
        runtimes: executor.runtimes(),
        hot: Default::default(),
        live_tails: Default::default(),
        reservations: Default::default(),
        ec2_interfaces: config.interface_permits.clone(),
        stopping: tokio::sync::watch::channel(false).0,
        usage: usage.clone(),
        minutes: minutes.clone(),
        prices: config.prices.clone(),
        executor: executor.clone(),
    });
    // The recorder before anything invokes: a function's metric handles are made at its first
    // invocation and kept, and a handle made without a recorder records nothing.
    let recorder = lamina_api::prometheus::install();
    // Functions reach the AWS APIs through their Runtime API listener, as their own account,
    // from the first environment on; not `/metrics`, which is every account's.
    let api = lamina_api::router(state.clone());
    executor.serve_apis(lamina_api::from_functions::gateway(&state, api.clone()));
    // The gateway holds the state, which holds the executor: the executor lets go of it however
    // `run` ends (environments' doors hold it until they are destroyed).
    let _apis = ApisClosed(executor.clone());
    lamina_api::lambda::dispatch::start(state.clone());
    lamina_api::sns::start_deliverer(state.clone())
        .await
        .context("cannot read the SNS outbox")?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), verify_signatures = config.auth.verify, console = %format!("http://{addr}/console"), "lamina is serving the Lambda, SNS, API Gateway, ECR, EC2 and CloudWatch Logs APIs, and the web console");
    let ex = executor.clone();
    let st = state.clone();
    let stopping = state.clone();
    let app = api.route(
        "/metrics",
        axum::routing::get(move || {
            let (recorder, ex, st) = (recorder.clone(), ex.clone(), st.clone());
            async move { scrape::render(&recorder, &ex, &st).await }
        }),
    );
    // After the signal: stop accepting requests and starting asynchronous attempts, and let
    // those in flight finish within the grace period.
    let (fired_tx, mut fired) = tokio::sync::watch::channel(false);
    let queue = stopping.queue.clone();
    let signal = async move {
        shutdown.await;
        stopping.stopping.send_replace(true);
        let _ = fired_tx.send(true);
    };
    let grace = config.shutdown_grace;
    // Without Nagle's algorithm: a streamed response (InvokeWithResponseStream, a
    // `RESPONSE_STREAM` URL, a live tail) is written a piece at a time, and each piece after
    // the first would wait for the client's delayed acknowledgement of the last (40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let in_flight = async {
        serve.await?;
        queue.attempts_ended().await;
        // A caller has its answer before its invocation ends (at its runtime's next `/next`),
        // and the invocation's usage and log lines come after.
        minutes.all_ended().await;
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        r = in_flight => r.context("the HTTP server failed")?,
        _ = async {
            let _ = fired.wait_for(|f| *f).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(grace_s = grace.as_secs(), "in-flight requests or asynchronous attempts did not finish within the grace period; stopping them (an attempt stopped runs again after the restart)"),
    }
    // Within a service manager's stop timeout (90 s in packaging/lamina.service, after the
    // grace period above): each step is bounded, and so is their sum (see FLUSH_LIMIT).
    if tokio::time::timeout(EXECUTOR_STOP_LIMIT, executor.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            limit_s = EXECUTOR_STOP_LIMIT.as_secs(),
            "the environments did not stop in time; some of their cgroups may be left"
        );
    }
    write_what_is_left(&queue, logs, usage, &history_store, &minutes).await;
    tracing::info!("lamina stopped");
    Ok(())
}

/// Closes functions' way to the APIs when dropped (see [`lamina_runtime_api::Executor::close_apis`]).
struct ApisClosed(lamina_runtime_api::Executor);

impl Drop for ApisClosed {
    fn drop(&mut self) {
        self.0.close_apis();
    }
}

/// At shutdown, once the environments are stopped: how the last asynchronous attempts ended
/// (those the grace period cut short end with their environments and leave their events as
/// they were), so that none runs again after the restart; the usage records and log lines of
/// the last invocations, now rather than at their writers' next interval, which the process
/// might not live to see; and the metric history. All within [`FLUSH_LIMIT`].
async fn write_what_is_left(
    queue: &lamina_api::lambda::queue::EventQueue,
    logs: Arc<logsink::StoreLogs>,
    usage: Arc<usagesink::StoreUsage>,
    store: &Arc<Store>,
    minutes: &Arc<lamina_api::lambda::Minutes>,
) {
    use tokio::time::{Instant, timeout_at};
    let deadline = Instant::now() + FLUSH_LIMIT;
    let settled = async {
        let outcomes = async {
            queue.attempts_ended().await;
            queue.settled().await;
        };
        if timeout_at(deadline, outcomes).await.is_err() {
            tracing::warn!(
                "the last asynchronous attempts' outcomes were not written in time; they run again after the restart"
            );
        }
        // After the settlements, which carry the usage records of asynchronous attempts.
        let left = deadline.saturating_duration_since(Instant::now());
        let written = tokio::join!(
            tokio::task::spawn_blocking(move || logs.flush(left)),
            tokio::task::spawn_blocking(move || usage.flush(left)),
        );
        if !matches!(written, (Ok(true), Ok(true))) {
            tracing::warn!("the last log lines or usage records were not written in time");
        }
    };
    let metrics = async {
        if timeout_at(deadline, metricsink::flush(store, minutes))
            .await
            .is_err()
        {
            tracing::warn!("the metric history was not written in time");
        }
    };
    tokio::join!(settled, metrics);
}

/// Raises the soft limit on open files to the hard limit: every environment holds a few
/// descriptors (pipes, its control socket, its Runtime API connections), and the default soft
/// limit of 1024 would cap a host at a few hundred environments.
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
}

/// Pins the code environments run from, so that collection never removes it under them.
struct StorePins(Arc<Store>);

impl lamina_runtime_api::CodePins for StorePins {
    fn pin(&self, packages: &[String]) -> Option<Box<dyn Send + Sync>> {
        self.0
            .pin(packages)
            .map(|p| Box::new(p) as Box<dyn Send + Sync>)
    }
}

/// 80 % of the space free on the data directory's filesystem, MB: `/tmp` filesystems are sparse
/// files there.
fn default_tmp_budget_mb(data_dir: &std::path::Path) -> u64 {
    rustix::fs::statvfs(data_dir)
        .map(|s| s.f_bavail * s.f_frsize / (1 << 20) * 8 / 10)
        .unwrap_or(u64::MAX)
}

/// Deletes function logs older than the retention period, hourly.
fn spawn_log_expiry(store: Arc<Store>, days: u32) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let store = store.clone();
            let before = lamina_model::now_millis() - days as i64 * 86_400_000;
            let _ = tokio::task::spawn_blocking(move || store.expire_logs(before)).await;
        }
    });
}
