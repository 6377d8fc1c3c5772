//! The Kubernetes runtime for the StreamSpace agent (ADR 0021).
//!
//! - Each session is a `Session` object (`streamspace.io/v1alpha1`, [`crd`]) written by the runtime from the
//!   control plane's spec, and a pod, Service, NetworkPolicy and Secret (and a home claim when configured), all
//!   named `ss-<session id>`, labelled with the session and the agent, and owned by the `Session`.
//! - [`reconcile`] holds the pure rules that shape those objects, [`observe`] the reading of pod status and
//!   kubelet events; the [`controller`] applies them to every `Session` of the agent.
//! - [`lease`] elects one active agent among replicas on a `coordination.k8s.io/v1` Lease.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use streamspace_k8s::{KubernetesOptions, KubernetesRuntime};
//!
//! let client = kube::Client::try_default().await?;
//! let runtime = Arc::new(KubernetesRuntime::new(client.clone(), KubernetesOptions::new("streamspace")));
//! let config = streamspace_agent::AgentConfig::new("http://streamspace:8000", "agent-token");
//! streamspace_agent::run(config, runtime, std::future::pending()).await
//! # }
//! ```

mod agent;
mod api;
pub mod controller;
pub mod crd;
pub mod lease;
pub mod observe;
pub mod reconcile;
mod runtime;

pub use agent::{Election, run_agent};
pub use controller::{Reconciler, run_controller};
pub use crd::{CRD_DIR, Session, SessionSpec, SessionStatus, Template, TemplateSpec, crd_files, crds_yaml};
pub use lease::{LeaderElector, LeaseTimings};
pub use reconcile::{ControlPlanePeers, HomeClaim, SessionOptions};
pub use runtime::{KubernetesOptions, KubernetesRuntime};
