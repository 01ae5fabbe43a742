//! The `lamina` client commands: deploy, ls, show, rm. They speak the Lambda API over HTTP, so
//! they work against any Lamina server (and, for the same operations, against Lambda itself).

mod client;
mod commands;
mod output;
mod package;

use clap::{Args, Subcommand};

pub use client::Client;

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct ClientOptions {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "LAMINA_ENDPOINT",
        default_value = "http://127.0.0.1:9001"
    )]
    pub endpoint: String,
    /// Region to act in (part of every ARN).
    #[arg(long, global = true, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update a function from a directory or a zip file.
    Deploy(commands::deploy::DeployArgs),
    /// List functions.
    Ls,
    /// Show one function's configuration.
    Show {
        /// Function name or ARN.
        name: String,
    },
    /// Delete a function.
    Rm {
        /// Function name or ARN.
        name: String,
    },
}

/// Runs a client command.
pub async fn run(command: Command, options: ClientOptions) -> anyhow::Result<()> {
    let client = Client::new(&options.endpoint, &options.region)?;
    match command {
        Command::Deploy(args) => commands::deploy::run(&client, args, options.json).await,
        Command::Ls => commands::ls::run(&client, options.json).await,
        Command::Show { name } => commands::show::run(&client, &name, options.json).await,
        Command::Rm { name } => commands::rm::run(&client, &name, options.json).await,
    }
}
