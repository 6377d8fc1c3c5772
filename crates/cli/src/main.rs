//! `streamspace`: the one binary. `serve` runs the control plane, `agent` an agent, `up` both in
//! one process; `admin` holds operator tools.

mod local_agent;

/// mimalloc rather than glibc's allocator: argon2 takes 19 MiB per password check, aligned, and glibc
/// kept each such block instead of reusing or returning it (RSS grew by 19 MiB per login).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use streamspace_docker::{DockerOptions, DockerRuntime};
use streamspace_server::config::IpNet;
use streamspace_server::config::SessionTimers;
use streamspace_server::telemetry::{LogFormat, init_logging};
use streamspace_server::{Config, Listeners, bootstrap};

#[derive(Parser)]
#[command(name = "streamspace", version, about = "Stream containerized applications to the browser")]
struct Cli {
    /// Log format.
    #[arg(long, env = "STREAMSPACE_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Pretty, global = true)]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane.
    Serve(ServeArgs),
    /// Run everything in one process: control plane, a Docker agent and SQLite (the embedded default).
    Up(ServeArgs),
    /// Run an agent that executes sessions for a control plane.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Operator tools.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run sessions as containers on the local Docker engine.
    Docker(AgentArgs),
}

#[derive(Args)]
struct AgentArgs {
    /// The control plane's URL (`http://host:8000`).
    #[arg(long, env = "STREAMSPACE_SERVER")]
    server: String,
    /// The agent's token, from `POST /api/v1/agents`.
    #[arg(long, env = "STREAMSPACE_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// Publish session ports on this host address instead of dialing container addresses
    /// (for a control plane on another host).
    #[arg(long, env = "STREAMSPACE_PUBLISH_HOST")]
    publish_host: Option<std::net::IpAddr>,
    /// CPU this host announces, as a multiple of its cores (templates state limits; desktops idle).
    #[arg(long, env = "STREAMSPACE_CPU_OVERCOMMIT", default_value_t = 8)]
    cpu_overcommit: i64,
    /// Networks sessions must not reach on top of the built-in deny list (private, shared and link-local
    /// ranges), such as a control plane on a public address. Comma-separated CIDRs.
    #[arg(long, env = "STREAMSPACE_EGRESS_DENY", value_delimiter = ',')]
    egress_deny: Vec<ipnet::IpNet>,
    /// Run sessions with no egress rules at all, for hosts whose own firewall does that job. Without it the
    /// agent needs root or CAP_NET_ADMIN, and a session whose rules cannot be installed does not start.
    #[arg(long)]
    no_egress_rules: bool,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit hash chain and report the first broken link.
    Verify(StoreArgs),
}

#[derive(Args)]
struct StoreArgs {
    /// Where the control plane keeps its data (SQLite file, generated keys).
    #[arg(long, env = "STREAMSPACE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// `postgres://...` for PostgreSQL; default: an SQLite file in the data directory.
    #[arg(long, env = "STREAMSPACE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the API and UI.
    #[arg(long, env = "STREAMSPACE_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Address of the session origin (the session proxy).
    #[arg(long, env = "STREAMSPACE_SESSION_LISTEN", default_value = "127.0.0.1:8001")]
    session_listen: SocketAddr,
    /// Public URL of the session origin, e.g. `https://sessions.example.com` (default: from --session-listen).
    #[arg(long, env = "STREAMSPACE_SESSION_ORIGIN")]
    session_origin: Option<String>,
    /// Public URL of the UI and API, e.g. `https://streamspace.example.com` (default: from --listen).
    #[arg(long, env = "STREAMSPACE_PUBLIC_URL")]
    public_url: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Password of the `admin` user created on the first start; generated and printed when unset.
    #[arg(long, env = "STREAMSPACE_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Secret (at least 32 bytes) that signs access tokens; generated into the data directory when unset.
    #[arg(long, env = "STREAMSPACE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Comma-separated networks of reverse proxies whose X-Forwarded-For is trusted.
    #[arg(long, env = "STREAMSPACE_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<IpNet>,
    /// Mark auth cookies Secure (set when serving over HTTPS).
    #[arg(long, env = "STREAMSPACE_SECURE_COOKIES")]
    secure_cookies: bool,
    /// Access token lifetime in seconds.
    #[arg(long, env = "STREAMSPACE_ACCESS_TOKEN_TTL", default_value_t = 900)]
    access_token_ttl: i64,
    /// Seconds between agent heartbeats; an agent is offline after three missed.
    #[arg(long, env = "STREAMSPACE_HEARTBEAT_INTERVAL", default_value_t = 10)]
    heartbeat_interval: u64,
    /// Seconds a session may take to start before it fails.
    #[arg(long, env = "STREAMSPACE_START_TIMEOUT", default_value_t = 300)]
    start_timeout: i64,
    /// Seconds without proxied traffic before a running session hibernates (0: never).
    #[arg(long, env = "STREAMSPACE_IDLE_TIMEOUT", default_value_t = 1800)]
    idle_timeout: i64,
    /// Seconds a session may run before it is stopped (0: no limit).
    #[arg(long, env = "STREAMSPACE_MAX_LIFETIME", default_value_t = 43200)]
    max_lifetime: i64,
}

impl ServeArgs {
    fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            data_dir: self.store.data_dir,
            database_url: self.store.database_url,
            admin_password: self.admin_password,
            jwt_secret: self.jwt_secret,
            trusted_proxies: self.trusted_proxies,
            secure_cookies: self.secure_cookies,
            access_token_ttl_secs: self.access_token_ttl,
            session_listen: self.session_listen,
            session_origin: self.session_origin,
            public_url: self.public_url,
            heartbeat_interval_secs: self.heartbeat_interval.max(1),
            sessions: SessionTimers {
                start_timeout: chrono::Duration::seconds(self.start_timeout.max(1)),
                idle_timeout: (self.idle_timeout > 0).then(|| chrono::Duration::seconds(self.idle_timeout)),
                max_lifetime: (self.max_lifetime > 0).then(|| chrono::Duration::seconds(self.max_lifetime)),
            },
            ..Config::default()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(match cli.log_format {
        LogFormatArg::Pretty => LogFormat::Pretty,
        LogFormatArg::Json => LogFormat::Json,
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args.into_config(), false).await,
        Command::Up(args) => serve(args.into_config(), true).await,
        Command::Agent { command: AgentCommand::Docker(args) } => agent_docker(args).await,
        Command::Admin { command: AdminCommand::Audit { command: AuditCommand::Verify(args) } } => {
            verify_audit(args).await
        }
        Command::Openapi => {
            println!("{}", streamspace_server::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Runs the control plane; `all_in_one` adds an in-process Docker agent.
async fn serve(config: Config, all_in_one: bool) -> anyhow::Result<ExitCode> {
    let listeners = Listeners { api: bind(config.listen).await?, sessions: bind(config.session_listen).await? };
    let api_addr = listeners.api.local_addr()?;
    let mut generated_password = None;
    let app = streamspace_server::open(config, |outcome| {
        if let bootstrap::Outcome::Bootstrapped { generated_password: Some(password) } = outcome {
            generated_password = Some(password.clone());
        }
    })
    .await?;
    if all_in_one {
        let token = local_agent::ensure(&app).await?;
        let runtime = DockerRuntime::connect_local(DockerOptions::default()).await?;
        let config = streamspace_agent::AgentConfig {
            labels: local_agent::builtin_labels(),
            ..streamspace_agent::AgentConfig::new(format!("http://{api_addr}"), token)
        };
        tokio::spawn(streamspace_agent::run(config, std::sync::Arc::new(runtime), shutdown_signal()));
    }
    announce(&app.config, generated_password.as_deref());
    streamspace_server::run(app, listeners, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn announce(config: &Config, generated_password: Option<&str>) {
    // Printed on the console only: the password is never logged and cannot be shown again.
    println!("\n  StreamSpace is running at {}", config.public_url());
    if let Some(password) = generated_password {
        println!("  First start: created user '{}' with password: {password}", bootstrap::ADMIN_USERNAME);
    }
    println!();
}

async fn agent_docker(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let options = DockerOptions {
        publish_host: args.publish_host,
        cpu_overcommit: args.cpu_overcommit,
        egress_rules: !args.no_egress_rules,
        egress_deny: args.egress_deny,
        ..DockerOptions::default()
    };
    let runtime = DockerRuntime::connect_local(options).await?;
    let config = streamspace_agent::AgentConfig::new(args.server, args.token);
    streamspace_agent::run(config, std::sync::Arc::new(runtime), shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM, for a graceful shutdown.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

async fn verify_audit(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let config = Config { data_dir: args.data_dir, database_url: args.database_url, ..Config::default() };
    let store = streamspace_store::connect(&config.database_url()).await?;
    match streamspace_store::audit::verify_store(store.as_ref()).await? {
        Ok(count) => {
            println!("audit chain intact: {count} events verified");
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("audit chain BROKEN at {broken}");
            Ok(ExitCode::from(2))
        }
    }
}
