//! The `lamina` client commands: deploy, ls, show, invoke, topic, url, api, rm... They speak the
//! Lambda, SNS and API Gateway APIs over HTTP, so they work against any Lamina server (and, for
//! the same operations, against AWS itself).

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
    /// Invoke a function and print its response (or, with --async, queue the event).
    Invoke {
        /// Function name or ARN.
        name: String,
        /// The event: JSON text, or @FILE.
        #[arg(long)]
        payload: Option<String>,
        /// Print the invocation's log (its last 4 KB) to stderr.
        #[arg(long, conflicts_with = "async")]
        log: bool,
        /// Queue the event (InvocationType Event) and print its request id.
        #[arg(long = "async")]
        r#async: bool,
        /// Print the response as the function streams it (InvokeWithResponseStream).
        #[arg(long, conflicts_with = "async")]
        stream: bool,
    },
    /// Print a function's last 100 log lines of the past week (CloudWatch Logs' group
    /// /aws/lambda/NAME); --json prints each as an object.
    Logs {
        /// Function name or ARN.
        name: String,
        /// Keep printing new lines as they arrive (a live tail), until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
    },
    /// Show a month's bill: requests, GB-seconds and cost per function and in total.
    Bill {
        /// The month, YYYY-MM (default: this month, UTC).
        #[arg(long)]
        month: Option<String>,
        /// Only this function.
        #[arg(long)]
        function: Option<String>,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
    },
    /// A live view of your functions over the last hour: invocations, errors, throttles, cold
    /// starts, p50/p99, peak concurrency, GB-seconds, and invocations in flight now.
    Top {
        /// Seconds between refreshes (0.1 to 3600).
        #[arg(long, default_value_t = 1.0, value_parser = refresh_interval)]
        interval: f64,
        /// Print one view and exit.
        #[arg(long)]
        once: bool,
    },
    /// Layers: publish and list.
    #[command(subcommand)]
    Layer(LayerCommand),
    /// Publish `$LATEST` of a function as a new version.
    Publish {
        /// Function name or ARN.
        name: String,
        /// The version's description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Aliases.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// SNS topics: create, list, subscribe, publish, delete.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Function URLs: create, show, remove.
    #[command(subcommand)]
    Url(UrlCommand),
    /// HTTP APIs: create one with a route to a function (and an authorizer), list, remove.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Container images in the server's registry: push (no Docker needed), list.
    #[command(subcommand)]
    Image(commands::image::ImageCommand),
    /// Delete a function.
    Rm {
        /// Function name or ARN.
        name: String,
    },
}

/// `lamina layer ...`.
#[derive(Debug, Subcommand)]
pub enum LayerCommand {
    /// Publish a directory or zip as a new layer version.
    Publish {
        /// Layer name.
        name: String,
        /// A directory (zipped for you) or a .zip file.
        path: std::path::PathBuf,
        /// Compatible runtime; repeat for more.
        #[arg(long = "runtime")]
        runtimes: Vec<String>,
    },
    /// List layers with their latest version.
    Ls,
}

/// `lamina url ...`.
#[derive(Debug, Subcommand)]
pub enum UrlCommand {
    /// Give a function (or an alias) a URL and print it.
    Create {
        /// Function name or ARN.
        function: String,
        /// An alias of the function.
        #[arg(long)]
        qualifier: Option<String>,
        /// NONE (public) or AWS_IAM (SigV4-signed requests only).
        #[arg(long, default_value = "NONE", value_parser = ["NONE", "AWS_IAM"])]
        auth_type: String,
        /// An origin browsers may call from (CORS); repeat for more, `*` for any.
        #[arg(long = "cors-origin")]
        cors_origins: Vec<String>,
    },
    /// Print a function's URL and its settings.
    Show {
        /// Function name or ARN.
        function: String,
        /// An alias of the function.
        #[arg(long)]
        qualifier: Option<String>,
    },
    /// Remove a function's URL.
    Rm {
        /// Function name or ARN.
        function: String,
        /// An alias of the function.
        #[arg(long)]
        qualifier: Option<String>,
    },
}

/// `lamina api ...`.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Create an HTTP API whose route sends every request to a function; print its URL.
    Create {
        /// The API's name.
        name: String,
        /// The function that answers (name or ARN).
        #[arg(long)]
        function: String,
        /// The route key, e.g. 'GET /pets/{id}' (default: $default, every request).
        #[arg(long)]
        route: Option<String>,
        /// A function deciding who may call (a Lambda authorizer with simple responses).
        #[arg(long)]
        authorizer: Option<String>,
        /// Where the authorizer's identity comes from.
        #[arg(long, default_value = "$request.header.Authorization")]
        identity_source: String,
        /// Seconds to cache the authorizer's answer per identity (0: no cache).
        #[arg(long, default_value_t = 0)]
        ttl: u32,
    },
    /// List HTTP APIs with their URLs.
    Ls,
    /// Delete an HTTP API.
    Rm {
        /// The API's id.
        id: String,
    },
}

/// `lamina topic ...`.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (or get the one of that name) and print its ARN.
    Create {
        /// Topic name.
        name: String,
        /// A FIFO topic (its name must end in .fifo).
        #[arg(long)]
        fifo: bool,
    },
    /// List topics with their subscription counts.
    Ls,
    /// Subscribe a function (granting SNS the permission to invoke it) or an HTTP endpoint.
    Subscribe {
        /// Topic name or ARN.
        topic: String,
        /// A function name or ARN, or an http(s):// URL.
        #[arg(value_name = "FUNCTION|URL")]
        target: String,
        /// A filter policy (JSON).
        #[arg(long)]
        filter: Option<String>,
        /// Match the filter policy against the message body rather than its attributes.
        #[arg(long, requires = "filter")]
        filter_on_body: bool,
        /// Send HTTP endpoints the bare message, not the JSON notification.
        #[arg(long)]
        raw: bool,
    },
    /// Publish a message and print its id.
    Publish {
        /// Topic name or ARN.
        topic: String,
        /// The message: text, or @FILE.
        message: String,
        /// The message's subject.
        #[arg(long)]
        subject: Option<String>,
        /// A message attribute KEY=VALUE (a Number if VALUE is one); repeat for more.
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
    },
    /// Delete a topic and its subscriptions.
    Rm {
        /// Topic name or ARN.
        topic: String,
    },
}

/// `lamina alias ...`.
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create or update an alias: `lamina alias set FN NAME VERSION [--weight V=W]`.
    Set {
        /// Function name or ARN.
        function: String,
        /// Alias name.
        name: String,
        /// The version the alias points to.
        #[arg(value_name = "VERSION")]
        target: String,
        /// Send a share of traffic to another version, e.g. `--weight 3=0.1`.
        #[arg(long = "weight", value_name = "VERSION=WEIGHT")]
        weights: Vec<String>,
    },
}

/// Runs a client command.
pub async fn run(command: Command, options: ClientOptions) -> anyhow::Result<()> {
    let client = Client::new(&options.endpoint, &options.region)?;
    match command {
        Command::Deploy(args) => commands::deploy::run(&client, args, options.json).await,
        Command::Ls => commands::ls::run(&client, options.json).await,
        Command::Show { name } => commands::show::run(&client, &name, options.json).await,
        Command::Invoke {
            name,
            payload,
            log,
            r#async,
            stream,
        } => {
            let how = if r#async {
                commands::invoke::How::Async
            } else if stream {
                commands::invoke::How::Stream { log }
            } else {
                commands::invoke::How::Sync { log }
            };
            commands::invoke::run(&client, &name, payload.as_deref(), how, options.json).await
        }
        Command::Logs { name, follow } => {
            commands::logs::run(&client, &name, follow, options.json).await
        }
        Command::Bill {
            month,
            function,
            csv,
        } => {
            commands::bill::run(
                &client,
                month.as_deref(),
                function.as_deref(),
                csv,
                options.json,
            )
            .await
        }
        Command::Top { interval, once } => {
            commands::top::run(&client, interval, once, options.json).await
        }
        Command::Layer(LayerCommand::Publish {
            name,
            path,
            runtimes,
        }) => commands::layer::publish(&client, &name, &path, &runtimes, options.json).await,
        Command::Layer(LayerCommand::Ls) => commands::layer::ls(&client, options.json).await,
        Command::Publish { name, description } => {
            commands::publish::publish(&client, &name, description.as_deref(), options.json).await
        }
        Command::Alias(AliasCommand::Set {
            function,
            name,
            target,
            weights,
        }) => {
            commands::publish::alias_set(&client, &function, &name, &target, &weights, options.json)
                .await
        }
        Command::Topic(t) => topic(&client, t, options.json).await,
        Command::Url(u) => url(&client, u, options.json).await,
        Command::Api(a) => api(&client, a, options.json).await,
        Command::Image(i) => commands::image::run(&client, i, options.json).await,
        Command::Rm { name } => commands::rm::run(&client, &name, options.json).await,
    }
}

async fn topic(client: &Client, command: TopicCommand, json: bool) -> anyhow::Result<()> {
    use commands::topic;
    match command {
        TopicCommand::Create { name, fifo } => topic::create(client, &name, fifo, json).await,
        TopicCommand::Ls => topic::ls(client, json).await,
        TopicCommand::Subscribe {
            topic,
            target,
            filter,
            filter_on_body,
            raw,
        } => {
            let s = topic::Subscription {
                topic: &topic,
                endpoint: &target,
                filter: filter.as_deref(),
                on_body: filter_on_body,
                raw,
            };
            topic::subscribe(client, s, json).await
        }
        TopicCommand::Publish {
            topic,
            message,
            subject,
            attrs,
        } => topic::publish(client, &topic, &message, subject.as_deref(), &attrs, json).await,
        TopicCommand::Rm { topic } => topic::rm(client, &topic, json).await,
    }
}

async fn url(client: &Client, command: UrlCommand, json: bool) -> anyhow::Result<()> {
    use commands::url;
    match command {
        UrlCommand::Create {
            function,
            qualifier,
            auth_type,
            cors_origins,
        } => {
            url::create(
                client,
                &function,
                qualifier.as_deref(),
                &auth_type,
                &cors_origins,
                json,
            )
            .await
        }
        UrlCommand::Show {
            function,
            qualifier,
        } => url::show(client, &function, qualifier.as_deref(), json).await,
        UrlCommand::Rm {
            function,
            qualifier,
        } => url::rm(client, &function, qualifier.as_deref(), json).await,
    }
}

async fn api(client: &Client, command: ApiCommand, json: bool) -> anyhow::Result<()> {
    use commands::api;
    match command {
        ApiCommand::Create {
            name,
            function,
            route,
            authorizer,
            identity_source,
            ttl,
        } => {
            let new = api::NewApi {
                name: &name,
                function: &function,
                route: route.as_deref(),
                authorizer: authorizer.as_deref(),
                identity_source: &identity_source,
                ttl,
            };
            api::create(client, new, json).await
        }
        ApiCommand::Ls => api::ls(client, json).await,
        ApiCommand::Rm { id } => api::rm(client, &id, json).await,
    }
}

/// `--interval`: a number of seconds a refresh can wait.
fn refresh_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds from 0.1 to 3600")),
    }
}
