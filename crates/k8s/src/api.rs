//! The few API calls the agent makes, with Kubernetes' answers for "already there" and "already gone" turned
//! into success: every operation of the runtime is idempotent.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    status_code(error) == Some(404)
}

/// Creates `object` unless one of its name exists (which is then left as it is).
pub(crate) async fn create_if_absent<K>(api: &Api<K>, object: &K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(error) if status_code(&error) == Some(409) => Ok(()),
        Err(error) => {
            Err(anyhow::Error::new(error).context(format!("creating {} {}", K::kind(&()), object.name_any())))
        }
    }
}

/// Deletes the object called `name`; one that is already gone is fine. Dependents go in the background (the
/// garbage collector), and the agent deletes the ones it knows itself, so a cluster without one ends clean too.
pub(crate) async fn delete_if_present<K>(api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(anyhow::Error::new(error).context(format!("deleting {} {name}", K::kind(&())))),
    }
}

/// Reads the object called `name`, `None` if there is none.
pub(crate) async fn get_if_present<K>(api: &Api<K>, name: &str) -> anyhow::Result<Option<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name)
        .await
        .map_err(|error| anyhow::Error::new(error).context(format!("reading {} {name}", K::kind(&()))))
}
