//! `lamina`: a self-hosted AWS Lambda in one binary.
//!
//! `main` parses arguments, sets up tracing and hands over to the server or a client command.

mod bench;
mod bench_async;
mod bench_compare;
mod bench_ext;
mod bench_http;
mod bench_image;
mod bench_logs;
mod bench_net;
mod bench_pause;
mod bench_relay;
mod bench_scale;
mod bench_sns;
mod native_runtime;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "lamina",
    version,
    about = "A self-hosted AWS Lambda in one binary",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: lamina_cli::ClientOptions,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: AWS's Lambda, SNS, API Gateway, ECR, EC2 and CloudWatch Logs APIs on
    /// --listen, state in --data-dir.
    Server(ServerArgs),
    /// Measure cold starts, warm invokes and throughput against a loopback echo baseline.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Client(lamina_cli::Command),
    /// Write the man pages (lamina.1, lamina-server.1, ...) into a directory (for packages).
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Directory for the database and function code.
    #[arg(long, env = "LAMINA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, env = "LAMINA_LISTEN")]
    listen: Option<String>,
    /// TOML configuration file; flags override it.
    #[arg(long, env = "LAMINA_CONFIG")]
    config: Option<PathBuf>,
    /// Verify SigV4 signatures (needs [[auth.keys]] in the configuration file).
    #[arg(long)]
    auth: bool,
    /// Give functions loopback only (no egress), whatever the configuration file says.
    #[arg(long)]
    no_egress: bool,
    /// Check this host instead of serving: which isolation features work, and what to change
    /// when one is missing. Exits 1 if functions cannot run here.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    // The first process of every sandbox: a fresh, single-threaded copy of this binary. It is
    // dispatched before anything else starts (no runtime, no threads, no tracing).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "sandbox-init")
    {
        lamina_sandbox::init::main();
    }
    // A pull from another registry, run apart from the server with a memory limit of its own.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == lamina_api::ecr::pull::FETCH_ROLE)
    {
        lamina_api::ecr::pull::fetch_main();
    }
    // Deployed as a function's `bootstrap` (by `lamina bench`): a native echo runtime.
    if std::env::args_os().next().is_some_and(|a| {
        std::path::Path::new(&a)
            .file_name()
            .is_some_and(|n| n == "bootstrap")
    }) {
        native_runtime::main();
    }
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Server(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = || tokio::runtime::Runtime::new().context("cannot start the async runtime");
    let result = match cli.command {
        Command::Server(args) => {
            let rt = runtime()?;
            let r = rt.block_on(server(args));
            // Every step of the shutdown that matters is bounded and done by now; a blocking task
            // still under way (a kernel call that will not return) must not hold the exit, as
            // dropping the runtime would.
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            r
        }
        // The client side of a run: one thread, like a separate client process (the servers it
        // measures run in a multi-threaded runtime of their own, see `bench::servers`).
        Command::Bench(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(bench::run(args)),
        Command::Client(command) => {
            // A command line tool ends quietly when its reader goes (`lamina ls | head -1`),
            // rather than fail on every later print (Rust ignores `SIGPIPE` by default). The
            // server keeps it ignored: its pipes to sandboxes must never end it.
            // SAFETY: no other thread runs yet; `SIG_DFL` is a valid disposition.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            runtime()?.block_on(lamina_cli::run(command, cli.client))
        }
        Command::Manpages { dir } => manpages(&dir),
    };
    if let Err(e) = result {
        // One readable line (with causes), not a backtrace.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let overrides = lamina_server::Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
        verify_auth: args.auth.then_some(true),
        init_exe: None,
        egress: args.no_egress.then_some(false),
    };
    let config = lamina_server::Config::load(args.config.as_deref(), overrides)?;
    if args.check {
        return check(&config.data_dir);
    }
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another server running? try --listen 127.0.0.1:0)",
                config.listen
            )
        })?;
    // Scripts and tests read the bound address from this line.
    println!("listening on http://{}", listener.local_addr()?);
    lamina_server::run(config, listener, shutdown).await
}

/// The top command's page and one per visible subcommand, as `man` finds them.
fn manpages(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let top = Cli::command();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = vec![("lamina".to_owned(), top.clone())];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("lamina-{}", sub.get_name());
        let cmd = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("lamina {}", sub.get_name()))
            .version(env!("CARGO_PKG_VERSION"));
        pages.push((name, cmd));
    }
    for (name, cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .title(name.to_uppercase())
            .render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `lamina server --check`, after the configuration loaded: the host, and where the server
/// would keep its state.
fn check(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use lamina_sandbox::preflight::{self, Status};
    let mut checks = preflight::run_here();
    checks.push(preflight::data_dir(data_dir));
    for c in &checks {
        let mark = match c.status {
            Status::Ok => "ok",
            Status::Missing => "MISSING",
            Status::Note => "note",
        };
        println!("{mark:<8} {:<17} {}", c.feature, c.detail);
        if let Some(fix) = &c.fix {
            println!("{:<8} {:<17} -> {fix}", "", "");
        }
    }
    if preflight::can_run(&checks) {
        println!("\nfunctions can run on this host");
        Ok(())
    } else {
        println!("\nfunctions cannot run on this host: see MISSING above");
        std::process::exit(1);
    }
}

/// SIGINT or SIGTERM. The handlers are installed now, before the server starts: a signal that
/// arrives while it is still starting is kept, and stops it cleanly once it has started.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    })
}
