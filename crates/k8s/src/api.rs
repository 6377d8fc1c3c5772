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

pub(crate) fn is_conflict(error: &kube::Error) -> bool {
    status_code(error) == Some(409)
}

/// Creates `object` unless one of its name exists (which is then left as it is).
pub(crate) async fn create_if_absent<K>(api: &Api<K>, object: &K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(error) if is_conflict(&error) => Ok(()),
        Err(error) => {
            Err(anyhow::Error::new(error).context(format!("creating {} {}", K::kind(&()), object.name_any())))
        }
    }
}

/// Creates `desired`, or replaces the object of its name when `differs` says it is not what is desired (an
/// agent started with other options, or someone edited it). A replace that loses a race (409) is left to the
/// next reconcile.
pub(crate) async fn create_or_replace<K>(
    api: &Api<K>,
    desired: &K,
    differs: impl Fn(&K, &K) -> bool,
) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = desired.name_any();
    let Some(current) = get_if_present(api, &name).await? else { return create_if_absent(api, desired).await };
    if !differs(&current, desired) {
        return Ok(());
    }
    let mut replacement = desired.clone();
    replacement.meta_mut().resource_version = current.resource_version();
    match api.replace(&name, &PostParams::default(), &replacement).await {
        Ok(_) => Ok(()),
        Err(error) if is_conflict(&error) => Ok(()),
        Err(error) => Err(anyhow::Error::new(error).context(format!("replacing {} {name}", K::kind(&())))),
    }
}

/// Whether two values say the same once what servers omit is dropped alike (nulls, empty lists and maps), so
/// an object read back is not taken for a different one.
pub(crate) fn same_meaning<T: Serialize>(a: &T, b: &T) -> bool {
    fn pruned(value: serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        match value {
            Value::Null => None,
            Value::Array(items) => {
                let items: Vec<Value> = items.into_iter().filter_map(pruned).collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Value::Object(fields) => {
                let fields: serde_json::Map<String, Value> =
                    fields.into_iter().filter_map(|(key, value)| Some((key, pruned(value)?))).collect();
                (!fields.is_empty()).then_some(Value::Object(fields))
            }
            other => Some(other),
        }
    }
    let json = |value: &T| serde_json::to_value(value).ok().and_then(pruned);
    json(a) == json(b)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_mean_the_same_whatever_empties_a_server_omits() {
        let with_empties = serde_json::json!({"a": 1, "b": [], "c": null, "d": {"e": []}, "f": [[]]});
        assert!(same_meaning(&with_empties, &serde_json::json!({"a": 1})));
        assert!(!same_meaning(&serde_json::json!({"a": 1}), &serde_json::json!({"a": 2})));
        assert!(!same_meaning(&serde_json::json!({"a": [1]}), &serde_json::json!({"a": [1, 2]})));
    }
}
