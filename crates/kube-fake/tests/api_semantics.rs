//! The fake API server's Kubernetes semantics, checked through a real kube-rs client over HTTP.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use streamspace_kube_fake::kubelet::Kubelet;
use streamspace_kube_fake::{FakeApiServer, FaultRule, Options, ResourceKind, StatusCode};

const NAMESPACE: &str = "default";
const DEADLINE: Duration = Duration::from_secs(10);

fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "session", "image": "streamspace/xterm:1"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.9"},
    }))
    .expect("a valid pod")
}

fn api_error(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn started() -> Result<(FakeApiServer, Client)> {
    let server = FakeApiServer::start().await?;
    let client = server.client()?;
    Ok((server, client))
}

/// A server that serves the custom resource `widgets.example.io` (with a status subresource).
async fn with_widgets() -> Result<(FakeApiServer, Client, Api<DynamicObject>, ApiResource)> {
    let (server, client) = started().await?;
    server.register(ResourceKind::custom("example.io", "v1", "widgets", "Widget").with_status_subresource());
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.io", "v1", "Widget"), "widgets");
    let widgets = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    Ok((server, client, widgets, resource))
}

fn widget(resource: &ApiResource, name: &str, size: i64) -> DynamicObject {
    let mut object = DynamicObject::new(name, resource);
    object.data = json!({"spec": {"size": size}});
    object
}

/// Polls `check` until it holds, failing after the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while !check().await? {
        anyhow::ensure!(tokio::time::Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn create_sets_identity_and_refuses_duplicates_and_get_of_missing_is_not_found() -> Result<()> {
    let (_server, client) = started().await?;
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let created = pods.create(&PostParams::default(), &pod("ss-a", json!({}))).await?;
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some(NAMESPACE));
    let again = pods.create(&PostParams::default(), &pod("ss-a", json!({}))).await.unwrap_err();
    assert_eq!(api_error(again), (409, "AlreadyExists".into()));
    let missing = pods.get("ss-missing").await.unwrap_err();
    assert_eq!(api_error(missing), (404, "NotFound".into()));
    assert!(pods.get_opt("ss-missing").await?.is_none());
    Ok(())
}

/// A server with the lease `agent` held by `holder`.
async fn with_lease_held_by(holder: &str) -> Result<(FakeApiServer, Api<Lease>, Lease)> {
    let (server, client) = started().await?;
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": {"holderIdentity": holder}}))?;
    let created = leases.create(&PostParams::default(), &lease).await?;
    Ok((server, leases, created))
}

fn revision(metadata: &ObjectMeta) -> u64 {
    metadata.resource_version.as_deref().and_then(|revision| revision.parse().ok()).expect("a numeric resourceVersion")
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_a_conflict() -> Result<()> {
    let (_server, leases, first) = with_lease_held_by("a").await?;
    let mut mine = first.clone();
    mine.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    let updated = leases.replace("agent", &PostParams::default(), &mine).await?;
    assert!(revision(&updated.metadata) > revision(&first.metadata));
    let mut theirs = first.clone();
    theirs.spec.as_mut().expect("spec").holder_identity = Some("c".into());
    let stale = leases.replace("agent", &PostParams::default(), &theirs).await.unwrap_err();
    assert_eq!(api_error(stale), (409, "Conflict".into()));
    let patch = Patch::Merge(
        json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "spec": {"holderIdentity": "d"}}),
    );
    let stale_patch = leases.patch("agent", &PatchParams::default(), &patch).await.unwrap_err();
    assert_eq!(api_error(stale_patch), (409, "Conflict".into()));
    assert_eq!(leases.get("agent").await?.spec.and_then(|spec| spec.holder_identity).as_deref(), Some("b"));
    Ok(())
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_resource_version() -> Result<()> {
    let (_server, leases, created) = with_lease_held_by("a").await?;
    let same =
        leases.patch("agent", &PatchParams::default(), &Patch::Merge(json!({"spec": {"holderIdentity": "a"}}))).await?;
    assert_eq!(same.metadata.resource_version, created.metadata.resource_version);
    let strategic = leases
        .patch("agent", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"holderIdentity": "z"}})))
        .await?;
    assert_eq!(strategic.spec.and_then(|spec| spec.holder_identity).as_deref(), Some("z"));
    let apply =
        leases.patch("agent", &PatchParams::apply("test"), &Patch::Apply(json!({"spec": {}}))).await.unwrap_err();
    assert_eq!(api_error(apply).0, 415, "server-side apply is refused loudly, not half-done");
    Ok(())
}

#[tokio::test]
async fn the_status_subresource_separates_spec_writes_from_status_writes() -> Result<()> {
    let (_server, client) = started().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let created = pods.create(&PostParams::default(), &pod("ss-a", json!({}))).await?;
    let status = created.status.clone().expect("a status");
    assert_eq!(status.phase.as_deref(), Some("Pending"), "a client cannot create a pod Running");
    assert_eq!(status.pod_ip, None);

    let through_main = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Running"}}));
    let labelled = pods.patch("ss-a", &PatchParams::default(), &through_main).await?;
    assert_eq!(labelled.status.and_then(|status| status.phase).as_deref(), Some("Pending"));
    assert_eq!(labelled.metadata.labels.as_ref().and_then(|labels| labels.get("x").cloned()).as_deref(), Some("y"));

    let through_status = Patch::Merge(json!({"metadata": {"labels": {"x": "z"}}, "status": {"phase": "Running"}}));
    let running = pods.patch_status("ss-a", &PatchParams::default(), &through_status).await?;
    assert_eq!(running.status.and_then(|status| status.phase).as_deref(), Some("Running"));
    assert_eq!(running.metadata.labels.as_ref().and_then(|labels| labels.get("x").cloned()).as_deref(), Some("y"));
    assert!(revision(&running.metadata) > revision(&labelled.metadata));

    let new_command =
        Patch::Merge(json!({"spec": {"containers": [{"name": "session", "image": "x", "command": ["sh"]}]}}));
    let forbidden = pods.patch("ss-a", &PatchParams::default(), &new_command).await.unwrap_err();
    assert_eq!(api_error(forbidden), (422, "Invalid".into()));

    let ready = Kubelet::new(client, NAMESPACE).run_ready("ss-a", "10.1.2.3").await?;
    let ready_condition = ready.status.and_then(|status| status.conditions).unwrap_or_default();
    assert!(ready_condition.iter().any(|condition| condition.type_ == "Ready" && condition.status == "True"));
    Ok(())
}

#[tokio::test]
async fn custom_resources_bump_generation_on_spec_changes_only() -> Result<()> {
    let (_server, _, widgets, resource) = with_widgets().await?;
    let created = widgets.create(&PostParams::default(), &widget(&resource, "w", 1)).await?;
    assert_eq!(created.metadata.generation, Some(1));
    let status = Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 99}}));
    let with_status = widgets.patch_status("w", &PatchParams::default(), &status).await?;
    assert_eq!(with_status.metadata.generation, Some(1));
    assert_eq!(with_status.data["spec"]["size"], 1, "a status write leaves the spec alone");
    assert_eq!(with_status.data["status"]["phase"], "Ready");
    let labels = Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}));
    assert_eq!(widgets.patch("w", &PatchParams::default(), &labels).await?.metadata.generation, Some(1));
    let spec = Patch::Merge(json!({"spec": {"size": 2}, "status": {"phase": "Gone"}}));
    let resized = widgets.patch("w", &PatchParams::default(), &spec).await?;
    assert_eq!(resized.metadata.generation, Some(2));
    assert_eq!(resized.data["status"]["phase"], "Ready", "a spec write leaves the status alone");
    Ok(())
}

#[tokio::test]
async fn names_and_labels_are_validated_like_a_real_cluster() -> Result<()> {
    let (_server, client) = started().await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let service: Service =
        serde_json::from_value(json!({"metadata": {"name": "0f8c2d9e"}, "spec": {"ports": [{"port": 8080}]}}))?;
    let refused = services.create(&PostParams::default(), &service).await.unwrap_err();
    assert_eq!(api_error(refused), (422, "Invalid".into()));
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let bad_label = pods
        .create(&PostParams::default(), &pod("ss-b", json!({"streamspace.io/session": "not valid!"})))
        .await
        .unwrap_err();
    assert_eq!(api_error(bad_label), (422, "Invalid".into()));
    Ok(())
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors() -> Result<()> {
    let (_server, client) = started().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    for (name, labels) in [
        ("ss-1", json!({"app": "streamspace", "tier": "session"})),
        ("ss-2", json!({"app": "streamspace", "tier": "proxy"})),
        ("ss-3", json!({"app": "other"})),
    ] {
        pods.create(&PostParams::default(), &pod(name, labels)).await?;
    }
    Api::<Pod>::namespaced(client.clone(), "elsewhere")
        .create(&PostParams::default(), &pod("ss-1", json!({"app": "streamspace"})))
        .await?;
    let names = |selector: ListParams| {
        let pods = pods.clone();
        async move {
            Ok::<_, anyhow::Error>(
                pods.list(&selector).await?.items.into_iter().filter_map(|pod| pod.metadata.name).collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(names(ListParams::default().labels("app=streamspace")).await?, ["ss-1", "ss-2"]);
    assert_eq!(names(ListParams::default().labels("app=streamspace,tier!=proxy")).await?, ["ss-1"]);
    assert_eq!(names(ListParams::default().labels("tier in (proxy,db)")).await?, ["ss-2"]);
    assert_eq!(names(ListParams::default().labels("tier")).await?, ["ss-1", "ss-2"]);
    assert_eq!(names(ListParams::default().labels("!tier")).await?, ["ss-3"]);
    assert_eq!(names(ListParams::default().fields("metadata.name=ss-2")).await?, ["ss-2"]);
    let everywhere = Api::<Pod>::all(client).list(&ListParams::default().labels("app=streamspace")).await?;
    assert_eq!(everywhere.items.len(), 3);
    pods.delete_collection(&DeleteParams::default(), &ListParams::default().labels("tier")).await?;
    assert_eq!(names(ListParams::default()).await?, ["ss-3"]);
    Ok(())
}

#[tokio::test]
async fn a_watch_resumes_after_a_resource_version_and_expires_when_too_old() -> Result<()> {
    let server = FakeApiServer::start_with(Options { history_limit: 4, ..Options::default() }).await?;
    let pods: Api<Pod> = Api::namespaced(server.client()?, NAMESPACE);
    pods.create(&PostParams::default(), &pod("ss-a", json!({"app": "s"}))).await?;
    let listed = pods.list(&ListParams::default()).await?;
    let since = listed.metadata.resource_version.clone().expect("a list resourceVersion");
    pods.create(&PostParams::default(), &pod("ss-b", json!({"app": "s"}))).await?;
    pods.patch("ss-a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})))
        .await?;
    pods.delete("ss-b", &DeleteParams::default()).await?;

    let events: Vec<(String, String)> = pods
        .watch(&WatchParams::default().labels("app=s"), &since)
        .await?
        .take(3)
        .map(|event| match event.expect("a watch event") {
            WatchEvent::Added(pod) => ("ADDED".into(), pod.metadata.name.unwrap_or_default()),
            WatchEvent::Modified(pod) => ("MODIFIED".into(), pod.metadata.name.unwrap_or_default()),
            WatchEvent::Deleted(pod) => ("DELETED".into(), pod.metadata.name.unwrap_or_default()),
            other => (format!("{other:?}"), String::new()),
        })
        .collect()
        .await;
    let expected = [("ADDED", "ss-b"), ("DELETED", "ss-a"), ("DELETED", "ss-b")];
    assert_eq!(
        events,
        expected.map(|(kind, name)| (kind.to_string(), name.to_string())),
        "ss-a leaving the selector is a DELETED for this watch"
    );

    for name in ["ss-c", "ss-d", "ss-e", "ss-f"] {
        pods.create(&PostParams::default(), &pod(name, json!({}))).await?;
    }
    let mut too_old = pods.watch(&WatchParams::default(), &since).await?.boxed();
    match too_old.next().await {
        Some(Ok(WatchEvent::Error(status))) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn kube_runtime_watcher_lists_then_sees_live_changes() -> Result<()> {
    watcher_sees_the_initial_state_then_live_changes(watcher::Config::default()).await
}

#[tokio::test]
async fn kube_runtime_watcher_with_streaming_lists_sees_live_changes() -> Result<()> {
    watcher_sees_the_initial_state_then_live_changes(watcher::Config::default().streaming_lists()).await
}

async fn watcher_sees_the_initial_state_then_live_changes(config: watcher::Config) -> Result<()> {
    let (_server, client) = started().await?;
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    pods.create(&PostParams::default(), &pod("ss-a", json!({}))).await?;
    let mut stream = watcher::watcher(pods.clone(), config).boxed();
    let mut seen_initial = false;
    let mut seen_live = false;
    let writer = pods.clone();
    let outcome = tokio::time::timeout(DEADLINE, async {
        while let Some(event) = stream.try_next().await? {
            match event {
                watcher::Event::InitApply(pod) => assert_eq!(pod.metadata.name.as_deref(), Some("ss-a")),
                watcher::Event::InitDone => {
                    seen_initial = true;
                    writer.create(&PostParams::default(), &pod("ss-b", json!({}))).await?;
                }
                watcher::Event::Apply(pod) if pod.metadata.name.as_deref() == Some("ss-b") => {
                    seen_live = true;
                    break;
                }
                _ => {}
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    outcome??;
    assert!(seen_initial && seen_live);
    Ok(())
}

fn owned_pod(name: &str, owner: &DynamicObject) -> Pod {
    let mut pod = pod(name, json!({}));
    pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "example.io/v1", "kind": "Widget", "name": owner.metadata.name, "uid": owner.metadata.uid, "controller": true,
    })).expect("an owner reference")]);
    pod
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents_unless_orphaned() -> Result<()> {
    let (_server, client, widgets, resource) = with_widgets().await?;
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let owner = widgets.create(&PostParams::default(), &widget(&resource, "owner", 1)).await?;
    pods.create(&PostParams::default(), &owned_pod("ss-owned", &owner)).await?;
    let keeper = widgets.create(&PostParams::default(), &widget(&resource, "keeper", 1)).await?;
    pods.create(&PostParams::default(), &owned_pod("ss-kept", &keeper)).await?;

    widgets.delete("owner", &DeleteParams::background()).await?;
    eventually("the owned pod to be collected", || async { Ok(pods.get_opt("ss-owned").await?.is_none()) }).await?;

    widgets.delete("keeper", &DeleteParams::orphan()).await?;
    let kept = pods.get("ss-kept").await?;
    assert_eq!(kept.metadata.owner_references.unwrap_or_default().len(), 0, "orphaned dependents lose the reference");
    Ok(())
}

#[tokio::test]
async fn foreground_deletion_and_finalizers_hold_the_owner_until_done() -> Result<()> {
    let (_server, client, widgets, resource) = with_widgets().await?;
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let owner = widgets.create(&PostParams::default(), &widget(&resource, "owner", 1)).await?;
    let mut dependent = owned_pod("ss-dependent", &owner);
    dependent.metadata.finalizers = Some(vec!["example.io/cleanup".into()]);
    pods.create(&PostParams::default(), &dependent).await?;

    let started = widgets.delete("owner", &DeleteParams::foreground()).await?;
    assert!(started.is_left(), "the owner waits for its dependents");
    eventually("the dependent to be marked for deletion", || async {
        Ok(pods.get("ss-dependent").await?.metadata.deletion_timestamp.is_some())
    })
    .await?;
    assert!(widgets.get("owner").await?.metadata.deletion_timestamp.is_some());

    pods.patch("ss-dependent", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await?;
    eventually("the dependent and then the owner to go", || async {
        Ok(pods.get_opt("ss-dependent").await?.is_none() && widgets.get_opt("owner").await?.is_none())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn graceful_pod_termination_holds_the_name_until_the_pod_is_gone() -> Result<()> {
    let options = Options { pod_termination: Some(Duration::from_secs(1)), ..Options::default() };
    let server = FakeApiServer::start_with(options).await?;
    let pods: Api<Pod> = Api::namespaced(server.client()?, NAMESPACE);
    pods.create(&PostParams::default(), &pod("ss-a", json!({}))).await?;
    let terminating = pods.delete("ss-a", &DeleteParams::default()).await?;
    assert!(terminating.left().is_some_and(|pod| pod.metadata.deletion_timestamp.is_some()));
    let too_soon = pods.create(&PostParams::default(), &pod("ss-a", json!({}))).await.unwrap_err();
    assert_eq!(api_error(too_soon), (409, "AlreadyExists".into()));
    eventually("the pod to go", || async { Ok(pods.get_opt("ss-a").await?.is_none()) }).await?;
    pods.create(&PostParams::default(), &pod("ss-a", json!({}))).await?;
    Ok(())
}

#[tokio::test]
async fn injected_failures_and_a_pause_reach_the_client() -> Result<()> {
    let (server, client) = started().await?;
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    server.faults().inject(FaultRule::next(2, "/leases", StatusCode::INTERNAL_SERVER_ERROR));
    for _ in 0..2 {
        let failed = leases.get_opt("agent").await.unwrap_err();
        assert_eq!(api_error(failed), (500, "InternalError".into()));
    }
    assert!(leases.get_opt("agent").await?.is_none());
    assert_eq!(server.faults().injected(), 2);

    server.faults().inject(FaultRule::always("/leases", StatusCode::INTERNAL_SERVER_ERROR).from_client("replica-b"));
    let replica_b: Api<Lease> = Api::namespaced(server.client_named("replica-b")?, NAMESPACE);
    assert_eq!(api_error(replica_b.get_opt("agent").await.unwrap_err()).0, 500, "only replica-b's requests fail");
    assert!(leases.get_opt("agent").await?.is_none());
    server.faults().clear();

    server.faults().pause();
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": {}}))?;
    let writer = leases.clone();
    let held = tokio::spawn(async move { writer.create(&PostParams::default(), &lease).await });
    tokio::time::timeout(DEADLINE, server.faults().wait_for_held(1)).await?;
    assert_eq!(server.revision(), 0, "a held request has not reached the store");
    server.faults().resume();
    held.await??;
    assert!(leases.get_opt("agent").await?.is_some());
    Ok(())
}

/// A custom resource declared the way the agent declares its own, from a Rust type.
#[derive(kube::CustomResource, serde::Serialize, serde::Deserialize, Debug, Clone)]
#[kube(
    group = "example.io",
    version = "v1beta1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus",
    schema = "disabled"
)]
struct GadgetSpec {
    colour: String,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
struct GadgetStatus {
    ready: bool,
}

#[tokio::test]
async fn a_custom_resource_definition_from_a_rust_type_is_served_as_declared() -> Result<()> {
    use kube::CustomResourceExt;
    let (server, client) = started().await?;
    server.register(ResourceKind::from_definition(&Gadget::crd()).expect("a usable definition"));
    let gadgets: Api<Gadget> = Api::namespaced(client, NAMESPACE);
    let mut gadget = Gadget::new("g", GadgetSpec { colour: "red".into() });
    gadget.status = Some(GadgetStatus { ready: true });
    let created = gadgets.create(&PostParams::default(), &gadget).await?;
    assert!(created.status.is_none(), "the declared status subresource drops status on create");
    let status = Patch::Merge(json!({"status": {"ready": true}}));
    let ready = gadgets.patch_status("g", &PatchParams::default(), &status).await?;
    assert!(ready.status.is_some_and(|status| status.ready));
    assert_eq!(ready.spec.colour, "red");
    Ok(())
}

#[tokio::test]
async fn custom_resources_are_validated_against_their_definitions_schema() -> Result<()> {
    use kube::CustomResourceExt;
    let (server, client) = started().await?;
    let mut definition = Gadget::crd();
    definition.spec.versions[0].schema = Some(serde_json::from_value(json!({"openAPIV3Schema": {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "required": ["colour"], "properties": {
                "colour": {"type": "string", "pattern": "^[a-z]+$"},
            }},
            "status": {"type": "object", "nullable": true, "properties": {"ready": {"type": "boolean"}}},
        },
    }}))?);
    server.register(ResourceKind::from_definition(&definition).expect("a usable definition"));
    let gadgets: Api<Gadget> = Api::namespaced(client, NAMESPACE);
    let refused = gadgets.create(&PostParams::default(), &Gadget::new("g", GadgetSpec { colour: "Red!".into() })).await;
    match refused.unwrap_err() {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(status.message.contains("spec.colour"), "{}", status.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    gadgets.create(&PostParams::default(), &Gadget::new("g", GadgetSpec { colour: "red".into() })).await?;
    let bad_status = Patch::Merge(json!({"status": {"ready": "yes"}}));
    let refused = gadgets.patch_status("g", &PatchParams::default(), &bad_status).await.unwrap_err();
    assert_eq!(api_error(refused), (422, "Invalid".into()));
    Ok(())
}

#[tokio::test]
async fn the_test_kubelet_runs_every_new_pod_with_its_own_address() -> Result<()> {
    let (_server, client) = started().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let kubelet = Kubelet::new(client.clone(), NAMESPACE).run_every_pod("app=s");
    for name in ["ss-1", "ss-2"] {
        pods.create(&PostParams::default(), &pod(name, json!({"app": "s"}))).await?;
    }
    pods.create(&PostParams::default(), &pod("ss-other", json!({"app": "other"}))).await?;
    let addresses = || async {
        let listed = pods.list(&ListParams::default().labels("app=s")).await?;
        Ok::<_, anyhow::Error>(listed.items.into_iter().filter_map(|pod| pod.status?.pod_ip).collect::<Vec<_>>())
    };
    eventually("both pods to run", || async { Ok(addresses().await?.len() == 2) }).await?;
    let mut addresses = addresses().await?;
    addresses.sort();
    assert_eq!(addresses, ["10.244.0.1", "10.244.0.2"]);
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, NAMESPACE);
    let pulls = events.list(&ListParams::default().fields("involvedObject.name=ss-1,reason=Pulled")).await?;
    assert_eq!(pulls.items.len(), 1);
    assert_eq!(pods.get("ss-other").await?.status.and_then(|status| status.pod_ip), None);
    kubelet.abort();
    Ok(())
}

#[tokio::test]
async fn a_watcher_whose_resource_version_was_compacted_lists_again() -> Result<()> {
    // No bookmarks, so the watcher's resourceVersion stays behind the writes it does not select.
    let options = Options { bookmark_interval: Duration::from_secs(3600), ..Options::default() };
    let server = FakeApiServer::start_with(options).await?;
    let pods: Api<Pod> = Api::namespaced(server.client()?, NAMESPACE);
    pods.create(&PostParams::default(), &pod("ss-a", json!({"app": "s"}))).await?;
    let mut stream = watcher::watcher(pods.clone(), watcher::Config::default().labels("app=s")).boxed();
    let mut lists = 0;
    let mut seen_b = false;
    let outcome = tokio::time::timeout(DEADLINE, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => lists += 1,
                Ok(watcher::Event::InitDone) if lists == 1 => {
                    pods.create(&PostParams::default(), &pod("ss-unseen", json!({"app": "other"}))).await?;
                    server.compact();
                    pods.create(&PostParams::default(), &pod("ss-b", json!({"app": "s"}))).await?;
                }
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) if pod.name_any() == "ss-b" => {
                    seen_b = true;
                }
                _ => {}
            }
            if lists == 2 && seen_b {
                break;
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    outcome.context("the watcher did not list again after the compaction")??;
    Ok(())
}
