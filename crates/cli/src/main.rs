//! `streamspace`: the one binary. `serve` runs the control plane, `agent` an agent, `up` both in
//! one process; `admin` holds operator tools.

mod agent_ha;
mod local_agent;
mod registration;

/// mimalloc rather than glibc's allocator: argon2 takes 19 MiB per password check, aligned, and glibc
/// kept each such block instead of reusing or returning it (RSS grew by 19 MiB per login). It also
/// takes `malloc` itself (the `override` feature), for the C in the process: sqlx copies every
/// value of every row SQLite returns, one `malloc` each, and on glibc's allocator that was about a
/// sixth of the CPU of a 100-row read (ADR 0035).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use streamspace_docker::{DockerOptions, DockerRuntime};
use streamspace_k8s::{ControlPlanePeers, Election, HomeClaim, KubernetesOptions, SessionOptions};
use streamspace_server::config::IpNet;
use streamspace_server::config::{SessionTimers, Urls};
use streamspace_server::rate_limit::{BudgetSetting, RateLimits};
use streamspace_server::telemetry::{LogFormat, init_logging};
use streamspace_server::tls::{TlsSettings, TlsSource};
use streamspace_server::{Config, Listeners, bootstrap};
use streamspace_store::audit::{AuditKey, RecordedHead};
use streamspace_trace::Exporter;

#[derive(Parser)]
#[command(name = "streamspace", version, about = "Stream containerized applications to the browser")]
struct Cli {
    /// Log format.
    #[arg(long, env = "STREAMSPACE_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Pretty, global = true)]
    log_format: LogFormatArg,
    /// OTLP/HTTP collector to export traces to, e.g. `http://otel-collector:4318` (spans go to its
    /// `/v1/traces`); unset: no traces are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

impl Command {
    /// The OpenTelemetry `service.name` this command's traces carry.
    fn service_name(&self) -> &'static str {
        match self {
            Command::Agent { .. } => "streamspace-agent",
            _ => "streamspace",
        }
    }
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
    /// Kubernetes tools.
    Kubernetes {
        #[command(subcommand)]
        command: KubernetesCommand,
    },
}

#[derive(Subcommand)]
enum KubernetesCommand {
    /// Print the Session and Template CustomResourceDefinitions (YAML), or write one file each into a directory.
    Crds(CrdsArgs),
}

#[derive(Args)]
struct CrdsArgs {
    /// Write `<plural>.<group>.yaml` files into this directory (the chart's is `deploy/helm/streamspace/crds`)
    /// instead of printing.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run sessions as containers on the local Docker engine.
    Docker(AgentArgs),
    /// Run sessions as pods in a Kubernetes namespace (in-cluster, or from KUBECONFIG / ~/.kube/config); of
    /// several replicas, the one holding the Lease is active.
    Kubernetes(KubernetesArgs),
}

#[derive(Args)]
struct ConnectArgs {
    /// The control plane's URL (`http://host:8000`): one, or one per replica, comma-separated; the agent moves
    /// to the next when it loses the one it is connected to.
    #[arg(long, env = "STREAMSPACE_SERVER", value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// The agent's token, from `POST /api/v1/agents`.
    #[arg(long, env = "STREAMSPACE_AGENT_TOKEN", hide_env_values = true)]
    token: String,
}

impl ConnectArgs {
    fn agent_config(&self) -> streamspace_agent::AgentConfig {
        streamspace_agent::AgentConfig::with_servers(self.server.clone(), self.token.clone())
    }
}

#[derive(Args)]
struct AgentArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Publish session ports on this host address instead of dialing container addresses
    /// (for a control plane on another host).
    #[arg(long, env = "STREAMSPACE_PUBLISH_HOST")]
    publish_host: Option<std::net::IpAddr>,
    /// CPU this host announces, as a multiple of its cores (templates state limits; desktops idle).
    #[arg(long, env = "STREAMSPACE_CPU_OVERCOMMIT", default_value_t = DockerOptions::default().cpu_overcommit)]
    cpu_overcommit: i64,
    /// Networks sessions must not reach on top of the built-in deny list (private, shared and link-local
    /// ranges), such as a control plane on a public address. Comma-separated CIDRs.
    #[arg(long, env = "STREAMSPACE_EGRESS_DENY", value_delimiter = ',')]
    egress_deny: Vec<ipnet::IpNet>,
    /// Run sessions with no egress rules at all, for hosts whose own firewall does that job. Without it the
    /// agent needs root or CAP_NET_ADMIN, and a session whose rules cannot be installed does not start.
    #[arg(long)]
    no_egress_rules: bool,
    #[command(flatten)]
    ha: agent_ha::HaArgs,
}

#[derive(Args)]
struct KubernetesArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The namespace sessions run in; default: the service account's namespace in a pod, else the kubeconfig's.
    #[arg(long, env = "STREAMSPACE_NAMESPACE")]
    namespace: Option<String>,
    /// The Lease the agent replicas contend for (in the sessions' namespace).
    #[arg(long, env = "STREAMSPACE_LEASE_NAME", default_value = "streamspace-agent")]
    lease_name: String,
    /// This replica's name in the Lease; default: the host name (the pod's name in a Deployment).
    #[arg(long, env = "STREAMSPACE_AGENT_IDENTITY")]
    identity: Option<String>,
    /// Networks sessions must not reach on top of the built-in deny list, such as the control plane's public
    /// address. Comma-separated CIDRs.
    #[arg(long, env = "STREAMSPACE_EGRESS_DENY", value_delimiter = ',')]
    egress_deny: Vec<ipnet::IpNet>,
    /// Labels of the control plane's pods, the only ones that may reach a session (`key=value,...`).
    #[arg(long, env = "STREAMSPACE_CONTROL_PLANE_SELECTOR", value_delimiter = ',', value_parser = parse_label,
        default_values_t = default_control_plane_labels())]
    control_plane_selector: Vec<Label>,
    /// The control plane's namespace; default: the sessions' namespace.
    #[arg(long, env = "STREAMSPACE_CONTROL_PLANE_NAMESPACE")]
    control_plane_namespace: Option<String>,
    /// Addresses a control plane outside the cluster connects to sessions from. Comma-separated CIDRs.
    #[arg(long, env = "STREAMSPACE_CONTROL_PLANE_CIDR", value_delimiter = ',')]
    control_plane_cidr: Vec<ipnet::IpNet>,
    /// CPU a session requests is its limit divided by this (templates state limits; desktops idle).
    #[arg(long, env = "STREAMSPACE_CPU_OVERCOMMIT", default_value_t = SessionOptions::default().cpu_overcommit)]
    cpu_overcommit: i64,
    /// Sessions this agent announces it can hold.
    #[arg(long, env = "STREAMSPACE_MAX_SESSIONS", default_value_t = KubernetesOptions::new("").capacity.max_sessions)]
    max_sessions: i64,
    /// CPU (millicores) this agent announces; 0: the limit registered with the control plane.
    #[arg(long, env = "STREAMSPACE_CPU_MILLIS", default_value_t = 0)]
    cpu_millis: i64,
    /// Memory (MiB) this agent announces; 0: the limit registered with the control plane.
    #[arg(long, env = "STREAMSPACE_MEMORY_MB", default_value_t = 0)]
    memory_mb: i64,
    /// Give each session's home a PersistentVolumeClaim of this size (e.g. `2Gi`), kept while it hibernates;
    /// without it the home is an emptyDir, lost on hibernation.
    #[arg(long, env = "STREAMSPACE_HOME_SIZE")]
    home_size: Option<String>,
    /// The storage class of home claims; default: the cluster's default class.
    #[arg(long, env = "STREAMSPACE_HOME_STORAGE_CLASS", requires = "home_size")]
    home_storage_class: Option<String>,
}

/// One `key=value` label.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Label(String, String);

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.0, self.1)
    }
}

fn parse_label(label: &str) -> Result<Label, String> {
    match label.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok(Label(key.trim().to_string(), value.trim().to_string())),
        _ => Err(format!("{label:?} is not key=value")),
    }
}

fn default_control_plane_labels() -> Vec<Label> {
    ControlPlanePeers::default().pod_labels.into_iter().map(|(key, value)| Label(key, value)).collect()
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
    /// Check the audit chain and its head, report the first fault (exit 2), print the head.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Once, after upgrading: seal a chain written before keyed links, if its links hold.
    #[arg(long)]
    adopt: bool,
    /// A head printed by an earlier run and kept elsewhere: the chain must still hold it.
    #[arg(long, value_name = "SEQ:HASH", value_parser = RecordedHead::parse)]
    recorded_head: Option<RecordedHead>,
}

#[derive(Args)]
struct StoreArgs {
    /// Where the control plane keeps its data (SQLite file, generated keys).
    #[arg(long, env = "STREAMSPACE_DATA_DIR", default_value_os_t = Config::default().data_dir)]
    data_dir: PathBuf,
    /// `postgres://...` for PostgreSQL; default: an SQLite file in the data directory.
    #[arg(long, env = "STREAMSPACE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Secret (at least 32 bytes) that keys the audit chain, the same on every replica; default:
    /// `audit.key`, generated into the data directory.
    #[arg(long, env = "STREAMSPACE_AUDIT_KEY", hide_env_values = true, value_parser = AuditKey::from_setting)]
    audit_key: Option<AuditKey>,
    /// A secret file (at least 32 bytes) the JWT, session-cookie, sealing and audit keys not set
    /// on their own are derived from; give every replica the same file. Default: keys generated
    /// into the data directory, which suits a single control plane only.
    #[arg(long, env = "STREAMSPACE_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the API and UI.
    #[arg(long, env = "STREAMSPACE_LISTEN", default_value_t = Config::default().listen)]
    listen: SocketAddr,
    /// Address of the session origin (the session proxy).
    #[arg(long, env = "STREAMSPACE_SESSION_LISTEN", default_value_t = Config::default().session_listen)]
    session_listen: SocketAddr,
    /// Domain under which every session gets a host of its own, `<session id>.<domain>`, e.g.
    /// `sessions.example.com` (a wildcard DNS name and certificate); default `localhost:<session port>`.
    #[arg(long, env = "STREAMSPACE_SESSION_DOMAIN")]
    session_domain: Option<String>,
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
    /// Access token lifetime in seconds.
    #[arg(long, env = "STREAMSPACE_ACCESS_TOKEN_TTL", default_value_t = Config::default().access_token_ttl_secs)]
    access_token_ttl: i64,
    /// Seconds between agent heartbeats; an agent is offline after three missed.
    #[arg(long, env = "STREAMSPACE_HEARTBEAT_INTERVAL", default_value_t = Config::default().heartbeat_interval_secs)]
    heartbeat_interval: u64,
    /// Seconds a session may take to start before it fails.
    #[arg(long, env = "STREAMSPACE_START_TIMEOUT", default_value_t = Config::default().sessions.start_timeout.num_seconds())]
    start_timeout: i64,
    /// Seconds without proxied traffic before a running session hibernates (0: never).
    #[arg(long, env = "STREAMSPACE_IDLE_TIMEOUT", default_value_t = seconds_or_zero(Config::default().sessions.idle_timeout))]
    idle_timeout: i64,
    /// Seconds a session may run before it is stopped (0: no limit).
    #[arg(long, env = "STREAMSPACE_MAX_LIFETIME", default_value_t = seconds_or_zero(Config::default().sessions.max_lifetime))]
    max_lifetime: i64,
    /// Seconds a session may stay hibernated before it is stopped and its container removed (0: no limit).
    #[arg(long, env = "STREAMSPACE_HIBERNATED_EXPIRY", default_value_t = seconds_or_zero(Config::default().sessions.hibernated_expiry))]
    hibernated_expiry: i64,
    /// Seconds a deleted user's persistent homes are kept before they are deleted.
    #[arg(long, env = "STREAMSPACE_HOME_DELETION_GRACE", default_value_t = Config::default().home_deletion_grace.num_seconds())]
    home_deletion_grace: i64,
    #[command(flatten)]
    kubernetes_agent: KubernetesAgentArgs,
    /// Seconds a client has to send a request's headers (also the idle time of kept-alive connections).
    #[arg(long, env = "STREAMSPACE_HEADER_READ_TIMEOUT", default_value_t = Config::default().http_limits.header_read_timeout.as_secs())]
    header_read_timeout: u64,
    /// Open connections allowed on each listener; more are closed at once (keep below `ulimit -n`).
    #[arg(long, env = "STREAMSPACE_MAX_CONNECTIONS", default_value_t = Config::default().http_limits.max_connections)]
    max_connections: usize,
    /// Live-update streams one user may hold open.
    #[arg(long, env = "STREAMSPACE_MAX_EVENT_STREAMS_PER_USER", default_value_t = Config::default().max_event_streams_per_user)]
    max_event_streams_per_user: usize,
    /// WebSocket tunnels into sessions one user may hold open.
    #[arg(long, env = "STREAMSPACE_MAX_TUNNELS_PER_USER", default_value_t = Config::default().max_tunnels_per_user)]
    max_tunnels_per_user: usize,
    /// Seconds between verifications of the whole audit chain, reported by the `streamspace_audit_chain_intact`
    /// metric (0: never).
    #[arg(long, env = "STREAMSPACE_AUDIT_VERIFY_INTERVAL", default_value_t = Config::default().audit_verify_interval.map_or(0, |every| every.as_secs()))]
    audit_verify_interval: u64,
    /// Directory scheduled compliance reports may be delivered to (a folder per organization).
    #[arg(long, env = "STREAMSPACE_REPORTS_DIR")]
    reports_dir: Option<PathBuf>,
    /// Let report webhooks reach loopback, private and link-local addresses (refused by default).
    #[arg(long, env = "STREAMSPACE_REPORT_WEBHOOKS_ALLOW_PRIVATE")]
    report_webhooks_allow_private: bool,
    /// PEM certificates to trust, besides the system's, when connecting to identity providers and
    /// report webhooks (a private CA).
    #[arg(long, env = "STREAMSPACE_OUTBOUND_CA")]
    outbound_ca: Option<PathBuf>,
    #[command(flatten)]
    rate_limits: RateLimitArgs,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS on both listeners (the session listener needs a certificate for `*.<session domain>` too). Plain HTTP
/// to a TLS port is redirected to HTTPS; the public URL defaults to `https://`.
#[derive(Args)]
struct TlsArgs {
    /// PEM certificate chain (leaf first), read again when it changes; with --tls-key.
    #[arg(long, env = "STREAMSPACE_TLS_CERT", requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "STREAMSPACE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// For trials: a certificate for the public host and the session domain from a local CA kept in
    /// `<data dir>/tls/` (trust `ca.pem` in the browser).
    #[arg(long, env = "STREAMSPACE_TLS_SELF_SIGNED")]
    tls_self_signed: bool,
}

impl TlsArgs {
    fn settings(&self) -> Option<TlsSettings> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsSettings::new(TlsSource::Files { cert: cert.clone(), key: key.clone() }))
            }
            _ => self.tls_self_signed.then(|| TlsSettings::new(TlsSource::SelfSigned)),
        }
    }
}

/// Request budgets, each `<requests>/s` or `<requests>/min`, optionally `:<burst>`, or `off`; the API and the
/// session proxy have budgets of this size each, on each replica.
#[derive(Args)]
struct RateLimitArgs {
    /// Requests per client address (behind trusted proxies, the client's).
    #[arg(long, env = "STREAMSPACE_RATE_LIMIT_ADDRESS", default_value_t = BudgetSetting(RateLimits::default().per_address))]
    rate_limit_address: BudgetSetting,
    /// Requests per signed-in user.
    #[arg(long, env = "STREAMSPACE_RATE_LIMIT_USER", default_value_t = BudgetSetting(RateLimits::default().per_user))]
    rate_limit_user: BudgetSetting,
    /// Requests per organization, all its users together.
    #[arg(long, env = "STREAMSPACE_RATE_LIMIT_ORG", default_value_t = BudgetSetting(RateLimits::default().per_org))]
    rate_limit_org: BudgetSetting,
}

impl RateLimitArgs {
    fn limits(&self) -> RateLimits {
        RateLimits {
            per_address: self.rate_limit_address.0,
            per_user: self.rate_limit_user.0,
            per_org: self.rate_limit_org.0,
        }
    }
}

/// A Kubernetes agent deployed beside the control plane (by the Helm chart) with a token both read from one
/// Secret: the control plane registers it at every start, so no administrator has to.
#[derive(Args)]
struct KubernetesAgentArgs {
    /// Register (or re-key) a Kubernetes agent with this token at start; at least 32 characters.
    #[arg(long, env = "STREAMSPACE_KUBERNETES_AGENT_TOKEN", hide_env_values = true)]
    kubernetes_agent_token: Option<String>,
    /// Name of that agent.
    #[arg(long, env = "STREAMSPACE_KUBERNETES_AGENT_NAME", default_value = "kubernetes")]
    kubernetes_agent_name: String,
    /// Networks that agent's session endpoints must lie in, such as the cluster's pod network (ADR 0015);
    /// default: any address the control plane dials. Comma-separated CIDRs.
    #[arg(long, env = "STREAMSPACE_KUBERNETES_AGENT_ENDPOINT_CIDRS", value_delimiter = ',')]
    kubernetes_agent_endpoint_cidrs: Vec<ipnet::IpNet>,
}

/// The shortest agent token accepted from a setting: as strong as the generated ones' 32 random bytes
/// when it is random text, which the chart's generated tokens are.
const MIN_AGENT_TOKEN_LENGTH: usize = 32;

/// The token without the line break a file-made Secret often ends with. Checked here rather than by clap, whose
/// errors repeat the value.
fn agent_token(value: &str) -> anyhow::Result<String> {
    let token = value.trim();
    if token.len() < MIN_AGENT_TOKEN_LENGTH || token.chars().any(char::is_whitespace) {
        anyhow::bail!(
            "the Kubernetes agent token (--kubernetes-agent-token) is at least {MIN_AGENT_TOKEN_LENGTH} characters, \
             without spaces"
        );
    }
    Ok(token.to_owned())
}

impl KubernetesAgentArgs {
    /// The agent to register and its token, when a token is set.
    fn take(&mut self) -> anyhow::Result<Option<(registration::Registration, String)>> {
        let Some(token) = self.kubernetes_agent_token.take() else { return Ok(None) };
        let token = agent_token(&token)?;
        let registration = registration::Registration {
            name: self.kubernetes_agent_name.clone(),
            platform: streamspace_proto::hub::Platform::Kubernetes,
            labels: Default::default(),
            endpoint_cidrs: self.kubernetes_agent_endpoint_cidrs.iter().map(ToString::to_string).collect(),
        };
        Ok(Some((registration, token)))
    }
}

impl ServeArgs {
    fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            data_dir: self.store.data_dir,
            database_url: self.store.database_url,
            audit_key: self.store.audit_key,
            key_file: self.store.key_file,
            admin_password: self.admin_password,
            jwt_secret: self.jwt_secret,
            trusted_proxies: self.trusted_proxies,
            access_token_ttl_secs: self.access_token_ttl,
            session_listen: self.session_listen,
            session_domain: self.session_domain,
            public_url: self.public_url,
            heartbeat_interval_secs: self.heartbeat_interval.max(1),
            sessions: SessionTimers {
                start_timeout: chrono::Duration::seconds(self.start_timeout.max(1)),
                idle_timeout: zero_is_off(self.idle_timeout),
                max_lifetime: zero_is_off(self.max_lifetime),
                hibernated_expiry: zero_is_off(self.hibernated_expiry),
            },
            home_deletion_grace: chrono::Duration::seconds(self.home_deletion_grace.max(0)),
            http_limits: streamspace_server::serve::Limits {
                header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout.max(1)),
                max_connections: self.max_connections.max(1),
            },
            max_event_streams_per_user: self.max_event_streams_per_user,
            max_tunnels_per_user: self.max_tunnels_per_user,
            audit_verify_interval: (self.audit_verify_interval > 0)
                .then(|| std::time::Duration::from_secs(self.audit_verify_interval)),
            reports: streamspace_server::compliance::ReportConfig {
                directory: self.reports_dir.clone(),
                webhooks_allow_private: self.report_webhooks_allow_private,
            },
            rate_limits: self.rate_limits.limits(),
            tls: self.tls.settings(),
            outbound_ca: self.outbound_ca.clone(),
            ..Config::default()
        }
    }
}

/// A timer as a flag takes seconds, 0 for off.
fn seconds_or_zero(timer: Option<chrono::Duration>) -> i64 {
    timer.map_or(0, |timer| timer.num_seconds())
}

fn zero_is_off(seconds: i64) -> Option<chrono::Duration> {
    (seconds > 0).then(|| chrono::Duration::seconds(seconds))
}

fn main() -> ExitCode {
    // Every TLS client and server in the process uses ring; installed before any of them is built, because
    // a client whose crate was compiled without a default provider panics on first use otherwise.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // Kept to the end of main: dropping it exports the spans still queued.
    let traces =
        match cli.otlp_endpoint.as_deref().map(|endpoint| Exporter::start(endpoint, cli.command.service_name())) {
            None => None,
            Some(Ok(exporter)) => Some(exporter),
            Some(Err(err)) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        };
    init_logging(
        match cli.log_format {
            LogFormatArg::Pretty => LogFormat::Pretty,
            LogFormatArg::Json => LogFormat::Json,
        },
        traces.as_ref(),
    );
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
        Command::Serve(args) => serve(args, false).await,
        Command::Up(args) => serve(args, true).await,
        Command::Agent { command: AgentCommand::Docker(args) } => agent_docker(args).await,
        Command::Agent { command: AgentCommand::Kubernetes(args) } => agent_kubernetes(args).await,
        Command::Admin { command: AdminCommand::Audit { command: AuditCommand::Verify(args) } } => {
            verify_audit(args).await
        }
        Command::Openapi => {
            println!("{}", streamspace_server::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Kubernetes { command: KubernetesCommand::Crds(args) } => crds(args),
    }
}

fn crds(args: CrdsArgs) -> anyhow::Result<ExitCode> {
    match args.dir {
        None => print!("{}", streamspace_k8s::crds_yaml()?),
        Some(dir) => {
            for (name, yaml) in streamspace_k8s::crd_files()? {
                let path = dir.join(name);
                std::fs::write(&path, yaml).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Runs the control plane; `all_in_one` adds an in-process Docker agent.
async fn serve(mut args: ServeArgs, all_in_one: bool) -> anyhow::Result<ExitCode> {
    let kubernetes_agent = args.kubernetes_agent.take()?;
    let config = args.into_config();
    let listeners = Listeners { api: bind(config.listen).await?, sessions: bind(config.session_listen).await? };
    // The URLs follow the ports really bound: port 0 (any free port) gives working session origins.
    let config =
        Config { listen: listeners.api.local_addr()?, session_listen: listeners.sessions.local_addr()?, ..config };
    let api_addr = config.listen;
    let mut generated_password = None;
    let app = streamspace_server::open(config, |outcome| {
        if let bootstrap::Outcome::Bootstrapped { generated_password: Some(password) } = outcome {
            generated_password = Some(password.clone());
        }
    })
    .await?;
    if let Some((agent, token)) = kubernetes_agent {
        registration::ensure(&app, agent, &token).await?;
    }
    if all_in_one {
        let token = local_agent::ensure(&app).await?;
        let runtime = DockerRuntime::connect_local(DockerOptions::default()).await?;
        let config = streamspace_agent::AgentConfig::new(format!("http://{api_addr}"), token);
        tokio::spawn(streamspace_agent::run(config, std::sync::Arc::new(runtime), shutdown_signal()));
    }
    announce(&app.urls, generated_password.as_deref());
    streamspace_server::run(app, listeners, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn announce(urls: &Urls, generated_password: Option<&str>) {
    // Printed on the console only: the password is never logged and cannot be shown again.
    println!("\n  StreamSpace is running at {}", urls.public_url);
    if let Some(password) = generated_password {
        println!("  First start: created user '{}' with password: {password}", bootstrap::ADMIN_USERNAME);
    }
    println!();
}

impl AgentArgs {
    fn docker_options(&self) -> DockerOptions {
        DockerOptions {
            publish_host: self.publish_host,
            cpu_overcommit: self.cpu_overcommit,
            egress_rules: !self.no_egress_rules,
            egress_deny: self.egress_deny.clone(),
            ..DockerOptions::default()
        }
    }
}

async fn agent_docker(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let elector = args.ha.elector()?;
    let runtime = std::sync::Arc::new(DockerRuntime::connect_local(args.docker_options()).await?);
    let config = args.connect.agent_config();
    match elector {
        Some(elector) => elector.run(config, runtime, shutdown_signal()).await?,
        None => streamspace_agent::run(config, runtime, shutdown_signal()).await?,
    }
    Ok(ExitCode::SUCCESS)
}

impl KubernetesArgs {
    fn kubernetes_options(&self, default_namespace: &str) -> KubernetesOptions {
        let namespace = self.namespace.clone().unwrap_or_else(|| default_namespace.to_string());
        let mut options = KubernetesOptions::new(namespace);
        options.session = SessionOptions {
            egress_deny: self.egress_deny.clone(),
            control_plane: ControlPlanePeers {
                pod_labels: self.control_plane_selector.iter().map(|Label(k, v)| (k.clone(), v.clone())).collect(),
                namespace: self.control_plane_namespace.clone(),
                cidrs: self.control_plane_cidr.clone(),
            },
            cpu_overcommit: self.cpu_overcommit,
            home_claim: self
                .home_size
                .clone()
                .map(|size| HomeClaim { size, storage_class: self.home_storage_class.clone() }),
            ..options.session
        };
        options.capacity = streamspace_proto::hub::Capacity {
            max_sessions: self.max_sessions,
            cpu_millis: self.cpu_millis,
            memory_mb: self.memory_mb,
        };
        options
    }

    fn election(&self) -> Election {
        Election { lease_name: self.lease_name.clone(), identity: self.identity.clone().unwrap_or_else(host_name) }
    }
}

/// The host name, which is the pod's name in a Deployment; a random name where none can be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("streamspace-agent-{}", uuid::Uuid::new_v4()))
}

async fn agent_kubernetes(args: KubernetesArgs) -> anyhow::Result<ExitCode> {
    let kube_config = kube::Config::infer()
        .await
        .map_err(|e| anyhow::anyhow!("cannot find a Kubernetes cluster (in-cluster or KUBECONFIG): {e}"))?;
    let options = args.kubernetes_options(&kube_config.default_namespace);
    let client =
        kube::Client::try_from(kube_config).map_err(|e| anyhow::anyhow!("cannot set up a Kubernetes client: {e}"))?;
    streamspace_k8s::run_agent(client, args.connect.agent_config(), options, args.election(), shutdown_signal())
        .await?;
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

async fn verify_audit(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = Config {
        data_dir: args.store.data_dir,
        database_url: args.store.database_url,
        audit_key: args.store.audit_key,
        key_file: args.store.key_file,
        ..Config::default()
    };
    let key = streamspace_server::keys::existing_audit_key(&config)?;
    let store = streamspace_store::connect(&config.database_url()).await?;
    if args.adopt && streamspace_store::audit::adopt_unkeyed(store.as_ref(), &key).await? {
        println!("audit chain adopted: its SHA-256 links verified, events from now on are keyed");
    }
    match streamspace_store::audit::verify_store(store.as_ref(), &key, args.recorded_head.as_ref()).await? {
        Ok(verified) => {
            println!("audit chain intact: {} events verified", verified.events);
            // Kept elsewhere, the head shows a later rollback of the whole database (ADR 0014).
            println!("chain head: {}", RecordedHead::from(&verified.head));
            Ok(ExitCode::SUCCESS)
        }
        Err(fault) => {
            println!("audit chain BROKEN: {fault}");
            Ok(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};
    use streamspace_proto::hub::Platform;

    use super::*;

    /// The command line without its `STREAMSPACE_*` variables, so that the test's environment
    /// does not stand in for a default.
    fn without_environment(command: clap::Command) -> clap::Command {
        command.mut_args(|arg| arg.env(None)).mut_subcommands(without_environment)
    }

    fn parse(args: &[&str]) -> Command {
        let matches = without_environment(Cli::command()).try_get_matches_from(args).unwrap();
        Cli::from_arg_matches(&matches).unwrap().command
    }

    // Compared through `Debug`, which names every field: a setting added later is covered too.
    #[test]
    fn serve_and_up_without_flags_run_the_default_settings() {
        for subcommand in ["serve", "up"] {
            let (Command::Serve(args) | Command::Up(args)) = parse(&["streamspace", subcommand]) else {
                panic!("{subcommand} parses as itself");
            };
            assert_eq!(format!("{:#?}", args.into_config()), format!("{:#?}", Config::default()), "{subcommand}");
        }
    }

    fn serve_config(args: &[&str]) -> Config {
        let Command::Serve(args) = parse(args) else { panic!("serve parses as itself") };
        args.into_config()
    }

    #[test]
    fn tls_comes_from_files_or_is_self_signed_and_budgets_can_be_set_or_turned_off() {
        let files = serve_config(&["streamspace", "serve", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"]);
        let expected = TlsSource::Files { cert: "/c.pem".into(), key: "/k.pem".into() };
        assert_eq!(files.tls.map(|tls| tls.source), Some(expected));
        let self_signed = serve_config(&["streamspace", "serve", "--tls-self-signed"]);
        assert_eq!(self_signed.tls.map(|tls| tls.source), Some(TlsSource::SelfSigned));
        for incomplete in
            [&["streamspace", "serve", "--tls-cert", "/c.pem"][..], &["streamspace", "serve", "--tls-key", "/k"]]
        {
            assert!(without_environment(Cli::command()).try_get_matches_from(incomplete).is_err(), "{incomplete:?}");
        }
        let both = ["streamspace", "serve", "--tls-self-signed", "--tls-cert", "/c", "--tls-key", "/k"];
        assert!(without_environment(Cli::command()).try_get_matches_from(both).is_err());
        let limits =
            serve_config(&["streamspace", "serve", "--rate-limit-address", "off", "--rate-limit-user", "10/min:20"]);
        assert_eq!(limits.rate_limits.per_address, None);
        assert_eq!(limits.rate_limits.per_user, "10/min:20".parse().ok());
        assert_eq!(limits.rate_limits.per_org, RateLimits::default().per_org);
    }

    #[test]
    fn the_docker_agent_without_flags_runs_the_default_options() {
        let Command::Agent { command: AgentCommand::Docker(args) } =
            parse(&["streamspace", "agent", "docker", "--server", "http://localhost:8000", "--token", "t"])
        else {
            panic!("agent docker parses as itself");
        };
        assert_eq!(format!("{:#?}", args.docker_options()), format!("{:#?}", DockerOptions::default()));
        assert!(args.ha.elector().unwrap().is_none(), "an agent runs alone unless told otherwise");
    }

    #[test]
    fn the_docker_agent_takes_one_url_per_replica_and_its_ha_group() {
        let Command::Agent { command: AgentCommand::Docker(args) } = parse(&[
            "streamspace",
            "agent",
            "docker",
            "--server",
            "http://cp-1:8000,http://cp-2:8000",
            "--token",
            "t",
            "--ha",
            "redis",
            "--ha-redis-url",
            "redis://redis:6379/0",
        ]) else {
            panic!("agent docker parses as itself");
        };
        assert_eq!(args.connect.agent_config().servers, ["http://cp-1:8000", "http://cp-2:8000"]);
        assert!(args.ha.elector().unwrap().is_some());
        let agent = ["streamspace", "agent", "docker", "--server", "http://cp:8000", "--token", "t"];
        for incomplete in [
            &["--ha", "file"][..],
            &["--ha", "redis"],
            &["--ha", "file", "--ha-lease-file", "/l", "--ha-lease-secs", "0"],
        ] {
            let args = [&agent[..], incomplete].concat();
            assert!(without_environment(Cli::command()).try_get_matches_from(&args).is_err(), "{incomplete:?}");
        }
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        let Command::Serve(args) = parse(&[&["streamspace", "serve"], args].concat()) else {
            panic!("serve parses as itself");
        };
        args
    }

    #[test]
    fn no_kubernetes_agent_is_registered_without_a_token() {
        let mut args = serve_args(&["--kubernetes-agent-endpoint-cidrs", "10.244.0.0/16"]);
        assert!(args.kubernetes_agent.take().unwrap().is_none());
    }

    #[test]
    fn the_kubernetes_agent_settings_name_the_agent_its_token_and_its_networks() {
        let token = "ssa_chart-generated-0123456789abcdefgh";
        let mut args = serve_args(&[
            "--kubernetes-agent-token",
            token,
            "--kubernetes-agent-name",
            "cluster-a",
            "--kubernetes-agent-endpoint-cidrs",
            "10.244.0.0/16,fd00:10:244::/56",
        ]);
        let (registration, taken) = args.kubernetes_agent.take().unwrap().unwrap();
        assert_eq!(taken, token);
        assert_eq!((registration.name.as_str(), registration.platform), ("cluster-a", Platform::Kubernetes));
        assert_eq!(registration.endpoint_cidrs, ["10.244.0.0/16", "fd00:10:244::/56"]);
        assert!(registration.labels.is_empty(), "no reserved label: the chart's agent is rotated like any other");
    }

    #[test]
    fn a_short_or_spaced_kubernetes_agent_token_is_refused_without_repeating_it() {
        for token in ["short-secret", "a token with spaces that is long enough!"] {
            let refused = serve_args(&["--kubernetes-agent-token", token]).kubernetes_agent.take().unwrap_err();
            assert!(refused.to_string().contains("at least 32 characters"), "{token}: {refused}");
            assert!(!refused.to_string().contains(token), "the error repeats the token: {refused}");
        }
    }

    #[test]
    fn a_kubernetes_agent_token_from_a_file_loses_its_line_break() {
        let token = "ssa_chart-generated-0123456789abcdefgh";
        let mut args = serve_args(&["--kubernetes-agent-token", &format!("{token}\n")]);
        assert_eq!(args.kubernetes_agent.take().unwrap().unwrap().1, token);
    }

    #[test]
    fn the_kubernetes_agent_without_flags_runs_the_default_options() {
        let Command::Agent { command: AgentCommand::Kubernetes(args) } =
            parse(&["streamspace", "agent", "kubernetes", "--server", "http://localhost:8000", "--token", "t"])
        else {
            panic!("agent kubernetes parses as itself");
        };
        assert_eq!(args.kubernetes_options("sessions"), KubernetesOptions::new("sessions"));
        assert_eq!(args.lease_name, "streamspace-agent");
        assert!(!args.election().identity.is_empty());
    }

    #[test]
    fn the_kubernetes_agent_takes_its_namespace_identity_and_peers_from_flags() {
        let Command::Agent { command: AgentCommand::Kubernetes(args) } = parse(&[
            "streamspace",
            "agent",
            "kubernetes",
            "--server",
            "http://cp:8000",
            "--token",
            "t",
            "--namespace",
            "ss",
            "--identity",
            "agent-0",
            "--control-plane-selector",
            "app=cp,tier=web",
            "--control-plane-cidr",
            "198.51.100.0/24",
            "--home-size",
            "2Gi",
            "--max-sessions",
            "9",
        ]) else {
            panic!("agent kubernetes parses as itself");
        };
        let options = args.kubernetes_options("ignored");
        assert_eq!(options.namespace, "ss");
        assert_eq!(args.election(), Election { lease_name: "streamspace-agent".into(), identity: "agent-0".into() });
        let labels = &options.session.control_plane.pod_labels;
        assert_eq!((labels["app"].as_str(), labels["tier"].as_str(), labels.len()), ("cp", "web", 2));
        assert_eq!(options.session.control_plane.cidrs, ["198.51.100.0/24".parse::<ipnet::IpNet>().unwrap()]);
        assert_eq!(options.session.home_claim, Some(HomeClaim { size: "2Gi".into(), storage_class: None }));
        assert_eq!(options.capacity.max_sessions, 9);
    }

    #[test]
    fn audit_verify_reads_the_default_data_directory() {
        let Command::Admin { command: AdminCommand::Audit { command: AuditCommand::Verify(args) } } =
            parse(&["streamspace", "admin", "audit", "verify"])
        else {
            panic!("admin audit verify parses as itself");
        };
        assert_eq!(args.store.data_dir, Config::default().data_dir);
        assert_eq!(args.store.database_url, Config::default().database_url);
    }
}
