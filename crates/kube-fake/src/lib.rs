//! An in-process fake Kubernetes API server for tests.
//!
//! No Kubernetes API server can run where these tests run, so the agent's real kube-rs code talks over real
//! HTTP to this one. It keeps Kubernetes semantics for the subset the agent uses (resourceVersion conflicts,
//! 404/409 `Status` objects, watches from a resourceVersion with a bounded history, the status subresource,
//! label and field selectors, owner-reference garbage collection, finalizers); ADR 0022 says what it does not.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use streamspace_kube_fake::{FakeApiServer, kubelet::Kubelet};
//!
//! let server = FakeApiServer::start().await?;
//! // Custom resources are served once registered: `server.register(ResourceKind::from_definition(&crd)...)`.
//! let client = server.client()?;
//! // ... the code under test creates a pod through `client`; the test plays its node:
//! Kubelet::new(client, "default").start("ss-1", "10.244.0.9").await?;
//! # Ok(())
//! # }
//! ```

pub mod docker_kubelet;
mod faults;
mod http;
mod kinds;
pub mod kubelet;
mod selector;
mod status;
mod store;
mod validation;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use axum::http::{Method, StatusCode};
pub use faults::{FaultRule, Faults};
pub use kinds::{NameRule, ResourceKind};

/// How a fake server behaves where a real cluster's behaviour depends on its configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many changes watches can resume from; older resourceVersions get 410 Expired.
    pub history_limit: usize,
    /// When set, a deleted pod stays (with a deletionTimestamp) this long before it is gone, as a kubelet
    /// stopping its containers keeps it; when None, pods go at once.
    pub pod_termination: Option<Duration>,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { history_limit: 1000, pod_termination: None, bookmark_interval: Duration::from_secs(5) }
    }
}

/// A running fake API server on 127.0.0.1, stopped when dropped.
pub struct FakeApiServer {
    address: SocketAddr,
    store: Arc<store::Store>,
    faults: Arc<Faults>,
    close_watches: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeApiServer {
    pub async fn start() -> std::io::Result<Self> {
        FakeApiServer::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let store = Arc::new(store::Store::new(options.history_limit));
        let faults = Arc::new(Faults::default());
        let (close_watches, watches_closed) = watch::channel(0);
        let state = Arc::new(http::ServerState {
            store: store.clone(),
            faults: faults.clone(),
            pod_termination: options.pod_termination,
            bookmark_interval: options.bookmark_interval,
            close_watches: watches_closed,
        });
        let router = http::router(state);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the fake API server stopped");
            }
        });
        let collector = tokio::spawn(store.clone().collect_garbage_forever());
        Ok(FakeApiServer { address, store, faults, close_watches, tasks: vec![server, collector] })
    }

    /// Serves one more kind, as installing a CustomResourceDefinition would.
    pub fn register(&self, kind: ResourceKind) {
        self.store.register(kind);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kube-rs configuration for this server: plain HTTP, no credentials, namespace `default`.
    pub fn config(&self) -> kube::Config {
        let url = self.url().parse().unwrap_or_else(|error| unreachable!("a socket address is a URL: {error}"));
        kube::Config::new(url)
    }

    /// A new kube-rs client of this server (each has its own connections, like another process would).
    pub fn client(&self) -> kube::Result<kube::Client> {
        kube::Client::try_from(self.config())
    }

    /// A client whose requests carry `name`, so that faults can hit it alone (`FaultRule::from_client`), as
    /// when one replica's network fails.
    pub fn client_named(&self, name: &str) -> kube::Result<kube::Client> {
        let mut config = self.config();
        let value = HeaderValue::from_str(name).map_err(|error| kube::Error::HttpError(error.into()))?;
        config.headers.push((HeaderName::from_static(faults::CLIENT_HEADER), value));
        kube::Client::try_from(config)
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Forgets the change history, as etcd's compaction does, and ends every open watch: a client that resumes
    /// from a resourceVersion before now gets 410 Expired and must list again.
    pub fn compact(&self) {
        self.store.compact();
        self.close_watches.send_modify(|generation| *generation += 1);
    }

    /// The newest resourceVersion.
    pub fn revision(&self) -> u64 {
        self.store.revision()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.close_watches.send_modify(|generation| *generation += 1);
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}
