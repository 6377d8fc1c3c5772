//! The object store: one JSON object per (group, version, plural, namespace, name), a global resourceVersion,
//! a bounded history of changes for watches, and the cluster's garbage collector.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast};

use crate::kinds::ResourceKind;
use crate::status::ApiError;
use crate::validation;

/// Identifies a resource kind in the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl ResourceRef {
    pub fn of(kind: &ResourceKind) -> Self {
        ResourceRef { group: kind.group.clone(), version: kind.version.clone(), plural: kind.plural.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectKey {
    resource: ResourceRef,
    namespace: String,
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One change to one object, as watches see it.
#[derive(Debug)]
pub struct Change {
    pub revision: u64,
    pub resource: ResourceRef,
    pub change: ChangeType,
    pub object: Value,
    /// The object before a modification, so that a watch with a selector can tell entering from leaving.
    pub previous: Option<Value>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Main,
    Status,
}

/// How a delete treats the object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// What a delete did.
#[derive(Debug)]
pub enum Deletion {
    /// The object is gone; this is its last state.
    Gone(Value),
    /// The object waits for finalizers (it now carries a deletionTimestamp).
    Pending(Value),
}

/// A watch's starting point.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// Synthetic ADDED events for the current objects, then live changes.
    Now,
    /// Every change after this resourceVersion.
    Revision(u64),
}

pub struct WatchStart {
    pub backlog: Vec<Arc<Change>>,
    pub revision: u64,
    pub live: broadcast::Receiver<Arc<Change>>,
}

const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

struct Inner {
    kinds: BTreeMap<ResourceRef, ResourceKind>,
    objects: BTreeMap<ObjectKey, Value>,
    revision: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// The newest revision dropped from the history: watches from before it get 410.
    compacted: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
    garbage: Notify,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let kinds = ResourceKind::builtins().into_iter().map(|kind| (ResourceRef::of(&kind), kind)).collect();
        let (changes, _) = broadcast::channel(4096);
        Store {
            inner: Mutex::new(Inner {
                kinds,
                objects: BTreeMap::new(),
                revision: 0,
                history: VecDeque::new(),
                history_limit,
                compacted: 0,
            }),
            changes,
            garbage: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn register(&self, kind: ResourceKind) {
        self.lock().kinds.insert(ResourceRef::of(&kind), kind);
    }

    pub fn kind(&self, resource: &ResourceRef) -> Option<ResourceKind> {
        self.lock().kinds.get(resource).cloned()
    }

    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.revision;
    }

    pub fn get(&self, kind: &ResourceKind, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.lock().objects.get(&key(kind, namespace, name)).cloned().ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// The objects of a kind (in one namespace, or all when `namespace` is None), and the list's resourceVersion.
    pub fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let resource = ResourceRef::of(kind);
        let items = inner
            .objects
            .iter()
            .filter(|(key, _)| key.resource == resource && namespace.is_none_or(|namespace| key.namespace == namespace))
            .map(|(_, object)| object)
            .filter(|object| keep(object))
            .cloned()
            .collect();
        (items, inner.revision)
    }

    pub fn create(&self, kind: &ResourceKind, namespace: &str, mut object: Value) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let name = name_for_create(&object)?;
        let body_namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(namespace);
        if body_namespace != namespace {
            let message = "the namespace of the provided object does not match the namespace sent on the request";
            return Err(ApiError::bad_request(message));
        }
        let key = key(kind, namespace, &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(kind, &name));
        }
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        if kind.status_subresource {
            strip(&mut object, "status");
        }
        if let Some(status) = &kind.initial_status {
            object["status"] = status.clone();
        }
        let metadata = metadata_mut(&mut object);
        for system_field in ["deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "generateName"] {
            metadata.remove(system_field);
        }
        metadata.insert("name".into(), json!(name));
        if kind.namespaced {
            metadata.insert("namespace".into(), json!(namespace));
        }
        metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        metadata.insert("creationTimestamp".into(), json!(now()));
        if kind.tracks_generation {
            metadata.insert("generation".into(), json!(1));
        }
        validation::validate(kind, &object)?;
        let object = inner.commit(&self.changes, key, ChangeType::Added, object, None);
        drop(inner);
        self.garbage.notify_one();
        Ok(object)
    }

    /// A write of a whole object (PUT), or of the object a patch produced from the stored one.
    pub fn update(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        target: Target,
        produce: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = key(kind, namespace, name);
        let old = inner.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(kind, name))?;
        let proposed = produce(&old)?;
        let new = next_version(kind, &old, proposed, target)?;
        if without_revision(&new) == without_revision(&old) {
            return Ok(old);
        }
        let object = inner.commit(&self.changes, key.clone(), ChangeType::Modified, new, Some(old));
        if is_deleting(&object) && !is_terminating_gracefully(&object) && finalizers(&object).is_empty() {
            inner.remove(&self.changes, &key);
            drop(inner);
            self.garbage.notify_one();
        }
        Ok(object)
    }

    pub fn delete(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        propagation: Propagation,
        preconditions: &Value,
    ) -> Result<Deletion, ApiError> {
        let mut inner = self.lock();
        let key = key(kind, namespace, name);
        let object = inner.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(kind, name))?;
        for (field, pointer) in [("uid", "/metadata/uid"), ("resourceVersion", "/metadata/resourceVersion")] {
            let expected = preconditions.get(field).and_then(Value::as_str);
            if expected.is_some_and(|expected| Some(expected) != object.pointer(pointer).and_then(Value::as_str)) {
                return Err(ApiError::conflict(kind, name));
            }
        }
        if propagation == Propagation::Orphan {
            inner.orphan_dependents(&self.changes, &uid(&object));
        }
        let deletion = inner.delete_object(&self.changes, &key, propagation);
        drop(inner);
        self.garbage.notify_one();
        Ok(deletion)
    }

    /// Starts a pod's graceful termination: it carries a deletionTimestamp until `finish_termination`.
    pub fn begin_termination(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        grace_seconds: u64,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = key(kind, namespace, name);
        let previous = inner.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(kind, name))?;
        if is_deleting(&previous) {
            return Ok(previous);
        }
        let mut object = previous.clone();
        let metadata = metadata_mut(&mut object);
        metadata.insert("deletionTimestamp".into(), json!(now()));
        metadata.insert("deletionGracePeriodSeconds".into(), json!(grace_seconds));
        Ok(inner.commit(&self.changes, key, ChangeType::Modified, object, Some(previous)))
    }

    /// Ends a graceful termination (the kubelet confirming the pod stopped), unless finalizers hold the object.
    pub fn finish_termination(&self, kind: &ResourceKind, namespace: &str, name: &str, expected_uid: &str) {
        let mut inner = self.lock();
        let key = key(kind, namespace, name);
        let Some(previous) = inner.objects.get(&key).cloned().filter(|object| uid(object) == expected_uid) else {
            return;
        };
        let mut object = previous.clone();
        metadata_mut(&mut object).insert("deletionGracePeriodSeconds".into(), json!(0));
        if finalizers(&object).is_empty() {
            inner.remove(&self.changes, &key);
        } else {
            inner.commit(&self.changes, key, ChangeType::Modified, object, Some(previous));
        }
        drop(inner);
        self.garbage.notify_one();
    }

    /// Changes after `since` for a new watch, and the channel that brings the ones after them.
    /// Also returns the revision the backlog reaches, which the live changes continue from.
    pub fn watch(&self, resource: &ResourceRef, since: Since) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        let backlog = match since {
            Since::Revision(revision) if revision < inner.compacted => {
                return Err(ApiError::expired(revision, inner.compacted + 1));
            }
            Since::Revision(revision) => inner
                .history
                .iter()
                .filter(|change| change.revision > revision && change.resource == *resource)
                .cloned()
                .collect(),
            Since::Now => inner
                .objects
                .iter()
                .filter(|(key, _)| key.resource == *resource)
                .map(|(_, object)| {
                    Arc::new(Change {
                        revision: revision_of(object),
                        resource: resource.clone(),
                        change: ChangeType::Added,
                        object: object.clone(),
                        previous: None,
                    })
                })
                .collect(),
        };
        Ok(WatchStart { backlog, revision: inner.revision, live: self.changes.subscribe() })
    }

    /// Runs the cluster's garbage collector until the store is dropped.
    pub async fn collect_garbage_forever(self: Arc<Self>) {
        loop {
            self.garbage.notified().await;
            self.collect_garbage();
        }
    }

    /// One pass of the garbage collector: dependents whose owners are all gone are deleted, and objects in
    /// foreground deletion lose their finalizer once their dependents are gone.
    pub fn collect_garbage(&self) {
        let mut inner = self.lock();
        while inner.collect_once(&self.changes) {}
    }
}

impl Inner {
    fn commit(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        key: ObjectKey,
        change: ChangeType,
        mut object: Value,
        previous: Option<Value>,
    ) -> Value {
        self.revision += 1;
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(self.revision.to_string()));
        if change == ChangeType::Deleted {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        let record = Arc::new(Change {
            revision: self.revision,
            resource: key.resource,
            change,
            object: object.clone(),
            previous,
        });
        self.history.push_back(record.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.revision;
            }
        }
        // Nobody watching is not an error.
        let _ = changes.send(record);
        object
    }

    fn remove(&mut self, changes: &broadcast::Sender<Arc<Change>>, key: &ObjectKey) -> Option<Value> {
        let object = self.objects.get(key).cloned()?;
        Some(self.commit(changes, key.clone(), ChangeType::Deleted, object, None))
    }

    fn delete_object(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        key: &ObjectKey,
        propagation: Propagation,
    ) -> Deletion {
        let Some(mut object) = self.objects.get(key).cloned() else {
            return Deletion::Gone(Value::Null);
        };
        let foreground = propagation == Propagation::Foreground && self.has_dependents(&uid(&object));
        if finalizers(&object).is_empty() && !foreground {
            return Deletion::Gone(self.remove(changes, key).unwrap_or_default());
        }
        let previous = object.clone();
        let metadata = metadata_mut(&mut object);
        if !metadata.contains_key("deletionTimestamp") {
            metadata.insert("deletionTimestamp".into(), json!(now()));
            metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if foreground {
            let list = metadata.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut().filter(|list| !list.contains(&json!(FOREGROUND_FINALIZER))) {
                list.push(json!(FOREGROUND_FINALIZER));
            }
        }
        if object == previous {
            return Deletion::Pending(object);
        }
        Deletion::Pending(self.commit(changes, key.clone(), ChangeType::Modified, object, Some(previous)))
    }

    fn has_dependents(&self, owner_uid: &str) -> bool {
        self.objects.values().any(|object| owner_uids(object).iter().any(|owner| owner == owner_uid))
    }

    fn orphan_dependents(&mut self, changes: &broadcast::Sender<Arc<Change>>, owner_uid: &str) {
        let dependents: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, object)| owner_uids(object).iter().any(|owner| owner == owner_uid))
            .map(|(key, _)| key.clone())
            .collect();
        for key in dependents {
            let Some(previous) = self.objects.get(&key).cloned() else { continue };
            let mut object = previous.clone();
            if let Some(references) = object.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                references.retain(|reference| reference.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
            self.commit(changes, key, ChangeType::Modified, object, Some(previous));
        }
    }

    /// Returns whether it changed anything (the caller repeats until it does not).
    fn collect_once(&mut self, changes: &broadcast::Sender<Arc<Change>>) -> bool {
        let live: BTreeSet<String> = self.objects.values().map(uid).collect();
        let orphaned: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, object)| !is_deleting(object))
            .filter(|(_, object)| {
                let owners = owner_uids(object);
                !owners.is_empty() && owners.iter().all(|owner| !live.contains(owner))
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut changed = !orphaned.is_empty();
        for key in orphaned {
            self.delete_object(changes, &key, Propagation::Background);
        }
        let foreground_done: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, object)| finalizers(object).contains(&FOREGROUND_FINALIZER.to_string()))
            .filter(|(_, object)| !self.has_dependents(&uid(object)))
            .map(|(key, _)| key.clone())
            .collect();
        for key in foreground_done {
            changed |= self.finish_foreground(changes, &key);
        }
        let foreground_owners: Vec<String> = self
            .objects
            .values()
            .filter(|object| finalizers(object).contains(&FOREGROUND_FINALIZER.to_string()))
            .map(uid)
            .collect();
        let dependents_to_delete: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, object)| !is_deleting(object))
            .filter(|(_, object)| owner_uids(object).iter().any(|owner| foreground_owners.contains(owner)))
            .map(|(key, _)| key.clone())
            .collect();
        changed |= !dependents_to_delete.is_empty();
        for key in dependents_to_delete {
            self.delete_object(changes, &key, Propagation::Background);
        }
        changed
    }

    fn finish_foreground(&mut self, changes: &broadcast::Sender<Arc<Change>>, key: &ObjectKey) -> bool {
        let Some(previous) = self.objects.get(key).cloned() else { return false };
        let mut object = previous.clone();
        if let Some(list) = object.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
            list.retain(|finalizer| finalizer != FOREGROUND_FINALIZER);
        }
        let object = self.commit(changes, key.clone(), ChangeType::Modified, object, Some(previous));
        if finalizers(&object).is_empty() {
            self.remove(changes, key);
        }
        true
    }
}

/// The object a write leaves behind: the proposed object with the server-owned parts kept from the old one.
fn next_version(kind: &ResourceKind, old: &Value, mut proposed: Value, target: Target) -> Result<Value, ApiError> {
    let name = old.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let proposed_name = proposed.pointer("/metadata/name").and_then(Value::as_str);
    if proposed_name.is_some_and(|proposed_name| proposed_name != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            proposed_name.unwrap_or_default()
        )));
    }
    let stale = proposed.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_some_and(|revision| {
        !revision.is_empty() && Some(revision) != old.pointer("/metadata/resourceVersion").and_then(Value::as_str)
    });
    if stale {
        return Err(ApiError::conflict(kind, name));
    }
    let mut new = match target {
        Target::Status => {
            let mut new = old.clone();
            match proposed.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => strip(&mut new, "status"),
            }
            new
        }
        Target::Main => {
            if kind.status_subresource {
                match old.get("status") {
                    Some(status) => proposed["status"] = status.clone(),
                    None => strip(&mut proposed, "status"),
                }
            }
            proposed["apiVersion"] = json!(kind.api_version());
            proposed["kind"] = json!(kind.kind);
            proposed
        }
    };
    keep_system_metadata(old, &mut new);
    validation::validate(kind, &new)?;
    validation::validate_pod_update(kind, old, &new)?;
    if kind.tracks_generation && spec_of(kind, &new) != spec_of(kind, old) {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        metadata_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }
    Ok(new)
}

fn keep_system_metadata(old: &Value, new: &mut Value) {
    if is_deleting(old) {
        // A deleting object may lose finalizers, not gain them.
        let old_finalizers = finalizers(old);
        let kept: Vec<Value> = finalizers(new)
            .into_iter()
            .filter(|finalizer| old_finalizers.contains(finalizer))
            .map(Value::from)
            .collect();
        metadata_mut(new).insert("finalizers".into(), Value::Array(kept));
    }
    let metadata = metadata_mut(new);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(value) => metadata.insert(field.into(), value.clone()),
            None => metadata.remove(field),
        };
    }
}

/// What `metadata.generation` follows: everything but metadata (and status when it is a subresource).
fn spec_of(kind: &ResourceKind, object: &Value) -> Value {
    let mut content = object.clone();
    strip(&mut content, "metadata");
    if kind.status_subresource {
        strip(&mut content, "status");
    }
    content
}

fn name_for_create(object: &Value) -> Result<String, ApiError> {
    if let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str).filter(|name| !name.is_empty()) {
        return Ok(name.to_string());
    }
    match object.pointer("/metadata/generateName").and_then(Value::as_str) {
        Some(prefix) => {
            let suffix: String = uuid::Uuid::new_v4().simple().to_string().chars().take(5).collect();
            Ok(format!("{prefix}{suffix}"))
        }
        None => Err(ApiError::bad_request("name or generateName is required")),
    }
}

fn key(kind: &ResourceKind, namespace: &str, name: &str) -> ObjectKey {
    let namespace = if kind.namespaced { namespace.to_string() } else { String::new() };
    ObjectKey { resource: ResourceRef::of(kind), namespace, name: name.to_string() }
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().unwrap_or_else(|| unreachable!("metadata was just made an object"))
}

fn strip(object: &mut Value, field: &str) {
    if let Some(map) = object.as_object_mut() {
        map.remove(field);
    }
}

fn without_revision(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    copy
}

fn uid(object: &Value) -> String {
    object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string()
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|references| {
            references.iter().filter_map(|reference| reference.get("uid")?.as_str().map(String::from)).collect()
        })
        .unwrap_or_default()
}

fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|finalizer| finalizer.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// A pod the kubelet is still stopping: it goes away when its grace period ends, not on its next write.
fn is_terminating_gracefully(object: &Value) -> bool {
    object.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_u64).is_some_and(|grace| grace > 0)
}

fn is_deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some_and(|timestamp| !timestamp.is_null())
}

pub fn revision_of(object: &Value) -> u64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|revision| revision.parse().ok())
        .unwrap_or(0)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}
