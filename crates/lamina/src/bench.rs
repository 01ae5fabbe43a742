//! `lamina bench`: cold-start and warm-invoke latency (p50, p99) and warm throughput for a native
//! bootstrap and a Python function, next to a bare loopback HTTP echo measured in the same run;
//! warm invokes after a pause, next to the echo after the same pause (see `bench_pause.rs`);
//! asynchronous event acceptance and drain rates next to synchronous throughput (see
//! `bench_async.rs`); SNS
//! publish-to-handler latency, sustained rate and fan-out (see `bench_sns.rs`); HTTP gateways
//! next to a direct Invoke (see `bench_http.rs`); a 200 MB image's push, unpack, root build and
//! cold start next to the same code as a zip (see `bench_image.rs`); a function with an external
//! extension next to the same without (see `bench_ext.rs`).
//!
//! Everything runs in this process: a server on a temporary data directory and a port of its own,
//! the echo baseline on another, and one HTTP client for both.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Cold starts to measure per function kind.
    #[arg(long, default_value_t = 20)]
    cold: usize,
    /// A pause before each cold start, for the sandboxes made ahead to be replaced; 0: back
    /// to back.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    cold_gap: u64,
    /// Warm invocations to measure per function kind.
    #[arg(long, default_value_t = 1000)]
    warm: usize,
    /// Concurrent invocations (of a function that sleeps 1 s) for the scale-out and density
    /// measurements; 0 skips them.
    #[arg(long, default_value_t = 1000)]
    scale: usize,
    /// Asynchronous events (of a native echo function) for the acceptance and drain
    /// measurements, and as many again for a backlog's drain; 0 skips them.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// SNS messages through one topic to one warm native function, for the sustained rate (the
    /// latency and fan-out figures come with it); 0 skips SNS.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Rounds of HTTP requests (a direct Invoke, a function URL, an HTTP API route, and one
    /// behind a cached authorizer, interleaved); 0 skips them.
    #[arg(long, default_value_t = 1000)]
    http: usize,
    /// Cold starts of a 200 MB image function and of the same bootstrap as a zip (after the
    /// image's push, unpack and root build are measured); 0 skips images.
    #[arg(long, default_value_t = 20)]
    images: usize,
    /// Cold starts of the native echo function with egress (the main server) and without (a
    /// second server), interleaved; 0 skips them.
    #[arg(long, default_value_t = 20)]
    network: usize,
    /// Warm invokes of the native 1769 MB function after a 150 ms pause (frozen in between),
    /// interleaved with the echo after the same pause; 0 skips them.
    #[arg(long, default_value_t = 20)]
    paused: usize,
    /// Warm invokes of a Python function printing 100 lines and of one printing none,
    /// interleaved, for what logging costs; 0 skips logging (FilterLogEvents included).
    #[arg(long, default_value_t = 1000)]
    logs: usize,
    /// Log lines stored before FilterLogEvents is measured over them.
    #[arg(long, default_value_t = 1_000_000)]
    log_lines: usize,
    /// A `lambda_runtime` bootstrap for the `rust (lambda_runtime)` row; by default
    /// `examples/rust_echo` next to this binary (`cargo build --release --example rust_echo`).
    /// Without one that row is left out.
    #[arg(long, value_name = "FILE")]
    rust_bootstrap: Option<std::path::PathBuf>,
    /// Rounds of cold starts and warm invokes of the `rust (lambda_runtime)` function with an
    /// external extension and without, interleaved; 0 skips them.
    #[arg(long, default_value_t = 20)]
    extensions: usize,
    /// The extension for those rounds; by default `examples/rust_extension` next to this binary
    /// (`cargo build --release --example rust_extension`). Without one they are left out.
    #[arg(long, value_name = "FILE")]
    rust_extension: Option<std::path::PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Compare this run with a saved one (`lamina bench --json > FILE`): every figure both
    /// have, better or worse.
    #[arg(long, value_name = "FILE")]
    compare: Option<std::path::PathBuf>,
}

/// Everything one run measured.
struct Measured {
    echo: Stats,
    /// Per function kind: label, cold, warm, warm throughput.
    rows: Vec<(&'static str, Stats, Stats, f64)>,
    /// Per concurrency: Lamina's, the echo's and the relay's rates and CPU per call.
    throughput: crate::bench_relay::Rates,
    /// Warm latency of the two echoes (on the client's thread, in the servers' runtime), the
    /// relay and the native 1769 MB function, interleaved.
    interleaved: [Stats; 4],
    asynchronous: Option<serde_json::Value>,
    sns: Option<serde_json::Value>,
    gateways: Option<serde_json::Value>,
    images: Option<serde_json::Value>,
    logging: Option<serde_json::Value>,
    network: Option<serde_json::Value>,
    paused: Option<serde_json::Value>,
    extensions: Option<serde_json::Value>,
    scale: Option<serde_json::Value>,
}

/// Latency figures, milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

/// Latency figures of `v`, ms; NaN (`null` in JSON) when it is empty (`--cold 0`, say).
pub fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let at = |q: f64| match n {
        0 => f64::NAN,
        _ => v[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    };
    Stats {
        n,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        mean_ms: v.iter().sum::<f64>() / n as f64,
    }
}

pub(crate) fn zip_of(files: &[(&str, &[u8], u32)]) -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        // Deflate: a debug build of this binary is too big to upload uncompressed.
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1))
            .unix_permissions(*mode);
        w.start_file(*name, opts)?;
        w.write_all(data)?;
    }
    Ok(w.finish()?.into_inner())
}

#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl Target {
    pub(crate) async fn create(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        memory: u32,
        zip: &[u8],
    ) -> anyhow::Result<()> {
        let body = json!({
            "FunctionName": name, "Runtime": runtime, "Handler": handler, "MemorySize": memory,
            "Role": "arn:aws:iam::000000000000:role/bench", "Timeout": 30,
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
        });
        self.create_from(&body).await
    }

    /// Creates the function `body` describes (a `CreateFunction` request's).
    pub(crate) async fn create_from(&self, body: &serde_json::Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/2015-03-31/functions", self.base))
            .json(body)
            .send()
            .await?;
        if !r.status().is_success() {
            let name = body["FunctionName"].as_str().unwrap_or_default();
            bail!("creating {name} failed: {}", r.text().await?);
        }
        Ok(())
    }

    pub(crate) async fn invoke(&self, name: &str) -> anyhow::Result<f64> {
        let t = Instant::now();
        let r = self
            .http
            .post(format!(
                "{}/2015-03-31/functions/{name}/invocations",
                self.base
            ))
            .body(r#"{"bench":true}"#)
            .send()
            .await?;
        let failed = r.headers().contains_key("x-amz-function-error");
        let status = r.status();
        let body = r.bytes().await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() || failed {
            bail!("invoking {name} failed: {}", String::from_utf8_lossy(&body));
        }
        Ok(ms)
    }
}

pub fn bar(len: usize, what: &str, json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(ProgressStyle::with_template("{msg:24} {bar:30} {pos}/{len}").expect("template"));
    b.set_message(what.to_owned());
    b
}

/// The runtime the servers of a run live in (Lamina's, the echo's, the relay's): multi-threaded
/// like `lamina server`'s, and apart from the one the client runs in (`main` gives the bench a
/// single-threaded one), so that client and servers never share workers, as with a client in a
/// process of its own.
pub(crate) fn servers() -> &'static tokio::runtime::Runtime {
    static SERVERS: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    SERVERS.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot start the servers' async runtime")
    })
}

/// A server in this process on a free loopback port, with `raw` settings, its data in `dir`
/// (`egress`: override `network.egress`). Returns its address, its stop switch and its task.
pub(crate) async fn serve(
    raw: lamina_server::FileConfig,
    dir: &std::path::Path,
    egress: Option<bool>,
) -> anyhow::Result<(
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let config = lamina_server::Config::from_parts(
        raw,
        lamina_server::Overrides {
            data_dir: Some(dir.to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            egress,
            ..Default::default()
        },
    )?;
    let listener = servers()
        .spawn(tokio::net::TcpListener::bind(config.listen))
        .await??;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = servers().spawn(lamina_server::run(config, listener, async {
        let _ = stopped.await;
    }));
    Ok((addr, stop, server))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Read first: a missing or bad file should not cost a whole run.
    let old: Option<serde_json::Value> = match &args.compare {
        Some(f) => Some(
            serde_json::from_slice(
                &std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
            )
            .with_context(|| {
                format!(
                    "{} is not the JSON of a run (make one with lamina bench --json > FILE)",
                    f.display()
                )
            })?,
        ),
        None => None,
    };
    let data = tempfile::tempdir().context("cannot create a temporary data directory")?;
    // Environments here use a few MB each, not their MemorySize: let the budget and the account
    // limit admit the scale-out run.
    let raw: lamina_server::FileConfig = toml::from_str(&format!(
        "memory_budget_mb = 100000000\ntmp_budget_mb = 100000000\nasync_share = 1.0\nasync_queue_max_events = 1000000\naccount_concurrency = {}\nscale_up_per_10s = {}",
        args.scale.max(1000) + 100,
        args.scale.max(1000)
    ))?;
    let (addr, stop, server) = serve(raw, data.path(), None).await?;
    // The server's cgroups, for what its environments' own processes hold.
    let cgroup_parent =
        lamina_sandbox::cgroup::parent_name(&data.path().canonicalize()?.join("run"));
    let measured = measure(&args, addr, &cgroup_parent).await;
    // Stopped whatever happened, so that its sandboxes and cgroups go with it.
    let _ = stop.send(());
    let _ = server.await;
    let m = measured?;
    let report = m.report();
    let changes = old.map(|old| crate::bench_compare::compare(&old, &report));
    if args.json {
        let mut out = report;
        if let Some(c) = &changes {
            out["compare"] = serde_json::to_value(c)?;
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        m.print();
        if let (Some(c), Some(f)) = (&changes, &args.compare) {
            crate::bench_compare::print(c, &f.display().to_string());
        }
    }
    Ok(())
}

/// The function the scale-out runs: the small `lambda_runtime` bootstrap when there is one, as
/// functions are, so that the figures are the platform's and not the start of this 100 MB binary.
fn scale_function<'a>(rust: &'a Option<Vec<u8>>, native: &'a [u8]) -> (&'static str, &'a [u8]) {
    match rust {
        Some(zip) => ("rust lambda_runtime", zip),
        None => ("lamina (native)", native),
    }
}

/// The bytes of `file`, or else of `examples/<example>` next to this binary; `None`, with a note
/// that `part` is left out, when there is neither (`flag` names the option).
pub(crate) fn example_or(
    file: Option<&std::path::Path>,
    example: &str,
    part: &str,
    flag: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(f) = file {
        return std::fs::read(f)
            .map(Some)
            .with_context(|| format!("cannot read {}", f.display()));
    }
    let beside = std::env::current_exe()?
        .with_file_name("examples")
        .join(example);
    match std::fs::read(&beside) {
        Ok(b) => Ok(Some(b)),
        Err(_) => {
            eprintln!(
                "note: nothing at {}: {part} is left out \
                 (cargo build --release --example {example}, or {flag} FILE)",
                beside.display()
            );
            Ok(None)
        }
    }
}

/// Runs every measurement against the server at `addr`.
async fn measure(
    args: &BenchArgs,
    addr: std::net::SocketAddr,
    cgroup_parent: &str,
) -> anyhow::Result<Measured> {
    // Two echo servers: one in the servers' runtime, as a server process answers a client, and
    // one on the client's own thread, where a request and its answer need no thread to be woken:
    // the floor of an HTTP exchange over loopback.
    let echo = || {
        axum::Router::new().route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body }),
        )
    };
    let echo_listener = servers()
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await??;
    let echo_addr = echo_listener.local_addr()?;
    let served = echo();
    servers().spawn(async move { axum::serve(echo_listener, served).await });
    let floor_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let floor_url = format!("http://{}/echo", floor_listener.local_addr()?);
    let served = echo();
    tokio::spawn(async move { axum::serve(floor_listener, served).await });
    let http = reqwest::Client::builder()
        // Keep-alive for every concurrent caller (64 at most), as a closed-loop client does.
        .pool_max_idle_per_host(64)
        .build()?;
    let target = Target {
        http: http.clone(),
        base: format!("http://{addr}"),
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Baseline: the same client, the same loopback, a handler that only echoes.
    let mut echo_ms = Vec::with_capacity(args.warm);
    let b = bar(args.warm, "loopback echo", args.json);
    for _ in 0..args.warm + 20 {
        let t = Instant::now();
        http.post(&floor_url)
            .body(r#"{"bench":true}"#)
            .send()
            .await?
            .bytes()
            .await?;
        echo_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        b.inc(1);
    }
    b.finish_and_clear();
    echo_ms.drain(..20);

    let me = std::fs::read(std::env::current_exe()?).context("cannot read our own binary")?;
    let native_zip = zip_of(&[("bootstrap", &me, 0o755)])?;
    // The newest Python and the Node.js the server offers on this host.
    let offered = lamina_runtime_api::runtimes::detect();
    let newest = |prefix: &str| {
        offered
            .iter()
            .rev()
            .find(|o| o.id.starts_with(prefix))
            .map(|o| o.id.clone())
    };
    let (python, node) = (newest("python"), newest("nodejs"));
    let py_zip = zip_of(&[(
        "app.py",
        b"def handler(event, context):\n    return event\n",
        0o644,
    )])?;
    let node_zip = zip_of(&[(
        "index.js",
        b"exports.handler = async (event) => event;\n",
        0o644,
    )])?;

    let bootstrap = example_or(
        args.rust_bootstrap.as_deref(),
        "rust_echo",
        "the rust (lambda_runtime) row",
        "--rust-bootstrap",
    )?;
    let rust_zip = match bootstrap {
        Some(bytes) => Some(zip_of(&[("bootstrap", &bytes, 0o755)])?),
        None => None,
    };

    // (label, name prefix, runtime, handler, MemorySize, package). 128 MB buys 7.2 % of a vCPU
    // (a CPU quota); 1769 MB one whole vCPU.
    let native = || "provided.al2023".to_owned();
    let mut kinds = vec![
        (
            "native 128 MB",
            "native",
            native(),
            "bootstrap",
            128,
            &native_zip,
        ),
        (
            "native 1769 MB",
            "native-1769",
            native(),
            "bootstrap",
            1769,
            &native_zip,
        ),
    ];
    if let Some(zip) = &rust_zip {
        kinds.push((
            "rust lambda_runtime 1769 MB",
            "rust",
            native(),
            "bootstrap",
            1769,
            zip,
        ));
    }
    if let Some(p) = &python {
        kinds.push((
            "python 128 MB",
            "python",
            p.clone(),
            "app.handler",
            128,
            &py_zip,
        ));
    }
    if let Some(n) = &node {
        kinds.push((
            "node.js 128 MB",
            "node",
            n.clone(),
            "index.handler",
            128,
            &node_zip,
        ));
    }
    let mut rows = Vec::new();
    for (label, key, runtime, handler, memory, zip) in kinds {
        let b = bar(args.cold, &format!("{label}: cold"), args.json);
        let mut cold = Vec::new();
        for i in 0..args.cold {
            tokio::time::sleep(Duration::from_millis(args.cold_gap)).await;
            let name = format!("cold-{key}-{i}");
            target.create(&name, &runtime, handler, memory, zip).await?;
            let ms = target.invoke(&name).await?;
            tracing::debug!(function = %name, ms, "cold start");
            cold.push(ms);
            b.inc(1);
        }
        b.finish_and_clear();
        let name = format!("warm-{key}");
        target.create(&name, &runtime, handler, memory, zip).await?;
        for _ in 0..20 {
            target.invoke(&name).await?;
        }
        let b = bar(args.warm, &format!("{label}: warm"), args.json);
        let mut warm = Vec::with_capacity(args.warm);
        let t = Instant::now();
        for _ in 0..args.warm {
            warm.push(target.invoke(&name).await?);
            b.inc(1);
        }
        let throughput = args.warm as f64 / t.elapsed().as_secs_f64();
        b.finish_and_clear();
        rows.push((label, stats(cold), stats(warm), throughput));
    }
    let echo = stats(echo_ms);

    let echo_url = format!("http://{echo_addr}/echo");
    let (interleaved, throughput) = crate::bench_relay::against_relay(
        &http,
        &target.base,
        &floor_url,
        &echo_url,
        args.warm,
        args.json,
    )
    .await?;

    let paused = match args.paused {
        0 => None,
        n => Some(crate::bench_pause::run(&http, &target, &echo_url, n, args.json).await?),
    };

    let extensions = crate::bench_ext::run(
        &target,
        rust_zip.as_deref(),
        args.rust_extension.as_deref(),
        args.extensions,
        args.json,
    )
    .await?;

    let asynchronous = if args.events > 0 {
        Some(crate::bench_async::run(&target, &native_zip, args.events, args.json).await?)
    } else {
        None
    };
    let sns = if args.messages > 0 {
        Some(
            crate::bench_sns::run(&http, &target.base, &native_zip, args.messages, args.json)
                .await?,
        )
    } else {
        None
    };

    let gateways = if args.http > 0 {
        Some(crate::bench_http::run(&http, &target.base, &native_zip, args.http, args.json).await?)
    } else {
        None
    };

    let images = if args.images > 0 {
        Some(
            crate::bench_image::run(&http, &target.base, &native_zip, args.images, args.json)
                .await?,
        )
    } else {
        None
    };

    let logging = if args.logs > 0 {
        Some(
            crate::bench_logs::run(
                &http,
                python.as_deref(),
                args.logs,
                args.log_lines,
                args.json,
            )
            .await?,
        )
    } else {
        None
    };

    let network = if args.network > 0 {
        Some(
            crate::bench_net::run(&http, &target.base, &native_zip, args.network, args.json)
                .await?,
        )
    } else {
        None
    };

    // Scale-out from zero, then hold the environments idle to measure density.
    let scale = if args.scale > 0 {
        Some(
            crate::bench_scale::run(
                &target,
                scale_function(&rust_zip, &native_zip),
                args.scale,
                cgroup_parent,
                args.json,
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Measured {
        echo,
        rows,
        throughput,
        interleaved,
        asynchronous,
        sns,
        gateways,
        images,
        logging,
        network,
        paused,
        extensions,
        scale,
    })
}

impl Measured {
    /// The run as JSON, as `--json` prints it and `--compare` reads it.
    fn report(&self) -> serde_json::Value {
        let echo = &self.echo;
        let tp: Vec<_> = self
            .throughput
            .iter()
            .map(|r| json!({ "concurrency": r.concurrency, "invokes_per_s": r.lamina.per_s, "echo_per_s": r.echo.per_s, "relay_per_s": r.relay.per_s, "cpu_per_invoke_us": r.lamina.cpu_us, "echo_cpu_per_call_us": r.echo.cpu_us, "relay_cpu_per_call_us": r.relay.cpu_us }))
            .collect();
        let out: Vec<_> = self
            .rows
            .iter()
            .map(|(l, c, w, t)| json!({ "function": l, "cold": c, "warm": w, "warm_throughput_per_s": t, "warm_p50_vs_echo": w.p50_ms / echo.p50_ms }))
            .collect();
        let [f, e, r, l] = &self.interleaved;
        let interleaved = json!({ "echo_one_thread": f, "echo": e, "relay": r, "lamina": l, "lamina_p50_vs_echo_one_thread": l.p50_ms / f.p50_ms, "lamina_p50_vs_echo": l.p50_ms / e.p50_ms, "lamina_p50_vs_relay": l.p50_ms / r.p50_ms });
        json!({ "loopback_echo": echo, "functions": out, "throughput": tp, "interleaved": interleaved, "async": self.asynchronous, "sns": self.sns, "http": self.gateways, "images": self.images, "logging": self.logging, "network": self.network, "paused": self.paused, "extensions": self.extensions, "scale_out": self.scale })
    }

    /// The run as a table.
    fn print(&self) {
        let Self {
            echo,
            rows,
            throughput,
            interleaved,
            asynchronous,
            sns,
            gateways,
            images,
            logging,
            network,
            paused,
            extensions,
            scale,
        } = self;
        println!("{:<36} {:>10} {:>10} {:>8}", "", "p50 ms", "p99 ms", "n");
        println!(
            "{:<36} {:>10.3} {:>10.3} {:>8}",
            "loopback HTTP echo", echo.p50_ms, echo.p99_ms, echo.n
        );
        for (label, cold, warm, throughput) in rows {
            println!(
                "{:<36} {:>10.3} {:>10.3} {:>8}",
                format!("{label} cold"),
                cold.p50_ms,
                cold.p99_ms,
                cold.n
            );
            println!(
                "{:<36} {:>10.3} {:>10.3} {:>8}",
                format!("{label} warm"),
                warm.p50_ms,
                warm.p99_ms,
                warm.n
            );
            println!(
                "{:<36} {:>10.0}/s   warm p50 = {:.2}x echo",
                format!("{label} throughput"),
                throughput,
                warm.p50_ms / echo.p50_ms
            );
        }
        let [f, e, r, l] = interleaved;
        println!("interleaved, native 1769 MB warm:");
        for (label, s) in [
            ("echo, on the client's thread", f),
            ("echo, server runtime", e),
            ("relay (no isolation)", r),
            ("lamina", l),
        ] {
            println!(
                "{:<36} {:>10.3} {:>10.3} {:>8}   {:.2}x echo, {:.2}x relay",
                format!("  {label}"),
                s.p50_ms,
                s.p99_ms,
                s.n,
                s.p50_ms / e.p50_ms,
                s.p50_ms / r.p50_ms
            );
        }
        for r in throughput {
            println!(
                "{:<36} {:>10.0}/s   echo {:.0}/s, relay {:.0}/s; CPU per call {:.0} µs, echo {:.0}, relay {:.0}",
                format!("warm throughput c={}", r.concurrency),
                r.lamina.per_s,
                r.echo.per_s,
                r.relay.per_s,
                r.lamina.cpu_us,
                r.echo.cpu_us,
                r.relay.cpu_us
            );
        }
        if let Some(a) = &asynchronous {
            let c8 = throughput.iter().find(|r| r.concurrency == 8);
            crate::bench_async::print(a, c8.map(|r| r.lamina.per_s));
        }
        if let Some(s) = &sns {
            let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
            println!(
                "sns: publish to handler p50 {:.2} ms, p99 {:.2} ms (warm, one at a time); {} messages published at {:.0}/s and handled at {:.0}/s (p50 {:.2} ms, p99 {:.2} ms); fan-out to {}: all ran {:.1} ms after publish cold, {:.1} ms warm",
                ms(&s["latency_ms"]["p50_ms"]),
                ms(&s["latency_ms"]["p99_ms"]),
                s["sustained"]["messages"],
                ms(&s["sustained"]["published_per_s"]),
                ms(&s["sustained"]["delivered_per_s"]),
                ms(&s["sustained"]["latency_ms"]["p50_ms"]),
                ms(&s["sustained"]["latency_ms"]["p99_ms"]),
                s["fan_out"]["subscriptions"],
                ms(&s["fan_out"]["cold_ms"]),
                ms(&s["fan_out"]["warm_ms"]),
            );
        }
        if let Some(g) = &gateways {
            let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
            println!(
                "http: p50 (p99) ms, warm native function: invoke {:.3} ({:.3}), function URL {:.3} ({:.3}), HTTP API {:.3} ({:.3}), with cached authorizer {:.3} ({:.3}); the gateway adds {:.0} µs (URL) and {:.0} µs (API), a cached authorizer {:.0} µs; {} rounds",
                ms(&g["invoke"]["p50_ms"]),
                ms(&g["invoke"]["p99_ms"]),
                ms(&g["function_url"]["p50_ms"]),
                ms(&g["function_url"]["p99_ms"]),
                ms(&g["http_api"]["p50_ms"]),
                ms(&g["http_api"]["p99_ms"]),
                ms(&g["http_api_cached_authorizer"]["p50_ms"]),
                ms(&g["http_api_cached_authorizer"]["p99_ms"]),
                ms(&g["function_url_over_invoke_us"]),
                ms(&g["http_api_over_invoke_us"]),
                ms(&g["cached_authorizer_over_http_api_us"]),
                g["rounds"],
            );
            println!(
                "http: the same echo streamed, read with InvokeWithResponseStream {:.3} ({:.3}) ms, {:.0} µs over invoke",
                ms(&g["invoke_with_response_stream"]["p50_ms"]),
                ms(&g["invoke_with_response_stream"]["p99_ms"]),
                ms(&g["stream_over_invoke_us"]),
            );
        }
        if let Some(i) = &images {
            crate::bench_image::print(i);
        }
        if let Some(l) = &logging {
            crate::bench_logs::print(l);
        }
        if let Some(p) = &paused {
            crate::bench_pause::print(p);
        }
        if let Some(x) = &extensions {
            crate::bench_ext::print(x);
        }
        if let Some(n) = &network {
            crate::bench_net::print(n);
        }
        if let Some(s) = &scale {
            crate::bench_scale::print(s);
        }
    }
}
