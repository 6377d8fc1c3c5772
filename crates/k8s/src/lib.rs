//! The Kubernetes runtime for the StreamSpace agent.

pub mod crd;
pub mod observe;
pub mod reconcile;

pub use crd::{CRD_DIR, Session, SessionSpec, SessionStatus, Template, TemplateSpec, crd_files, crds_yaml};
