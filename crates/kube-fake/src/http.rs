//! The HTTP face of the fake: the API server's URL layout, verbs and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::faults::{CLIENT_HEADER, Faults};
use crate::kinds::ResourceKind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::store::{Change, ChangeType, Deletion, Propagation, ResourceRef, Since, Store, Target, WatchStart};

/// Everything the handlers share.
pub struct ServerState {
    pub store: Arc<Store>,
    pub faults: Arc<Faults>,
    pub pod_termination: Option<Duration>,
    pub bookmark_interval: Duration,
    /// Changes when open watches must end: the server stops, or the history they resume from is compacted.
    pub close_watches: watch::Receiver<u64>,
}

type Shared = Arc<ServerState>;
type Params = HashMap<String, String>;

pub fn router(state: Shared) -> Router {
    Router::new().route("/version", axum::routing::get(version)).fallback(handle).with_state(state)
}

async fn version() -> Response {
    axum::Json(
        json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-streamspace-kube-fake", "platform": "linux/amd64"}),
    )
    .into_response()
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    state.faults.wait_while_paused().await;
    let client = headers.get(CLIENT_HEADER).and_then(|value| value.to_str().ok());
    if let Some(error) = state.faults.check(&method, uri.path(), client) {
        return error.into_response();
    }
    let request = Request { state: &state, method, headers, params, body };
    match request.serve(uri.path()).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Where a request points: a kind, perhaps a namespace, perhaps one object, perhaps its status.
struct Address {
    kind: ResourceKind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn address(store: &Store, path: &str) -> Result<Address, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::unknown_resource()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(namespace.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, subresource] => (*plural, Some(name.to_string()), Some(*subresource)),
        _ => return Err(ApiError::unknown_resource()),
    };
    let resource = ResourceRef { group: group.into(), version: version.into(), plural: plural.into() };
    let kind = store.kind(&resource).ok_or_else(ApiError::unknown_resource)?;
    let status = match subresource {
        None => false,
        Some("status") if kind.status_subresource => true,
        Some(_) => return Err(ApiError::unknown_resource()),
    };
    if kind.namespaced == namespace.is_none() && (name.is_some() || !kind.namespaced) {
        return Err(ApiError::unknown_resource());
    }
    Ok(Address { kind, namespace, name, status })
}

struct Request<'a> {
    state: &'a ServerState,
    method: Method,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
}

impl Request<'_> {
    async fn serve(self, path: &str) -> Result<Response, ApiError> {
        let address = address(&self.state.store, path)?;
        let namespace = address.namespace.clone().unwrap_or_default();
        let target = if address.status { Target::Status } else { Target::Main };
        let store = &self.state.store;
        let kind = &address.kind;
        match (&self.method, address.name.as_deref()) {
            (&Method::GET, Some(name)) => ok(store.get(kind, &namespace, name)?),
            (&Method::GET, None) if self.flag("watch") => self.watch(&address),
            (&Method::GET, None) => self.list(&address),
            (&Method::POST, None) if address.namespace.is_some() || !kind.namespaced => {
                let created = store.create(kind, &namespace, self.json_body()?)?;
                Ok((StatusCode::CREATED, axum::Json(created)).into_response())
            }
            (&Method::PUT, Some(name)) => {
                let object = self.json_body()?;
                ok(store.update(kind, &namespace, name, target, |_| Ok(object))?)
            }
            (&Method::PATCH, Some(name)) => {
                let patch = self.patch_kind(kind)?;
                let body = self.json_body()?;
                ok(store.update(kind, &namespace, name, target, |old| patch.apply(kind, old, &body))?)
            }
            (&Method::DELETE, Some(name)) if !address.status => self.delete(kind, &namespace, name),
            (&Method::DELETE, None) => self.delete_collection(&address),
            (method, _) => Err(ApiError::method_not_allowed(method.as_str())),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.params.get(name).is_some_and(|value| value == "true" || value == "1")
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|error| ApiError::bad_request(format!("the request body is not JSON: {error}")))
    }

    fn patch_kind(&self, kind: &ResourceKind) -> Result<PatchKind, ApiError> {
        let content_type =
            self.headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" if kind.strategic_merge_is_json_merge => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    fn filter(&self, address: &Address) -> Result<Selection, ApiError> {
        let text = |name: &str| self.params.get(name).map(String::as_str).unwrap_or_default();
        Ok(Selection {
            resource: ResourceRef::of(&address.kind),
            namespace: address.namespace.clone(),
            labels: LabelSelector::parse(text("labelSelector"))?,
            fields: FieldSelector::parse(text("fieldSelector"), &address.kind)?,
        })
    }

    fn list(&self, address: &Address) -> Result<Response, ApiError> {
        let selection = self.filter(address)?;
        let (items, revision) =
            self.state.store.list(&address.kind, address.namespace.as_deref(), |object| selection.selects(object));
        self.list_response(&address.kind, items, revision)
    }

    fn list_response(&self, kind: &ResourceKind, items: Vec<Value>, revision: u64) -> Result<Response, ApiError> {
        ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        }))
    }

    fn delete_options(&self) -> Result<DeleteOptions, ApiError> {
        let options = if self.body.is_empty() { json!({}) } else { self.json_body()? };
        let option =
            |field: &str| options.get(field).and_then(Value::as_str).or(self.params.get(field).map(String::as_str));
        let propagation = match option("propagationPolicy") {
            None | Some("Background") => Propagation::Background,
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some(other) => return Err(ApiError::bad_request(format!("unknown propagationPolicy {other:?}"))),
        };
        let immediate = options.get("gracePeriodSeconds").and_then(Value::as_u64) == Some(0);
        let preconditions = options.get("preconditions").cloned().unwrap_or(Value::Null);
        Ok(DeleteOptions { propagation, immediate, preconditions })
    }

    fn delete(&self, kind: &ResourceKind, namespace: &str, name: &str) -> Result<Response, ApiError> {
        let options = self.delete_options()?;
        match self.delete_object(kind, namespace, name, &options)? {
            Deletion::Gone(object) => {
                let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
                ok(status::deleted(kind, name, uid))
            }
            Deletion::Pending(object) => ok(object),
        }
    }

    /// Deletes every object the selectors pick, answering with the list of what was deleted.
    fn delete_collection(&self, address: &Address) -> Result<Response, ApiError> {
        let options = self.delete_options()?;
        let selection = self.filter(address)?;
        let (items, _) =
            self.state.store.list(&address.kind, address.namespace.as_deref(), |object| selection.selects(object));
        let mut deleted = Vec::new();
        for item in items {
            let namespace = item.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
            let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            match self.delete_object(&address.kind, namespace, name, &options) {
                Ok(Deletion::Gone(object) | Deletion::Pending(object)) => deleted.push(object),
                // Deleted meanwhile by someone else: nothing left to do for it.
                Err(error) if error.code == StatusCode::NOT_FOUND => {}
                Err(error) => return Err(error),
            }
        }
        self.list_response(&address.kind, deleted, self.state.store.revision())
    }

    fn delete_object(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deletion, ApiError> {
        if let Some(termination) = self.state.pod_termination.filter(|_| kind.pod_spec_rules && !options.immediate) {
            return self.terminate_pod(kind, namespace, name, termination);
        }
        self.state.store.delete(kind, namespace, name, options.propagation, &options.preconditions)
    }

    /// Pods stop gracefully: they carry a deletionTimestamp until the kubelet's grace period ends.
    fn terminate_pod(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        termination: Duration,
    ) -> Result<Deletion, ApiError> {
        let object = self.state.store.begin_termination(kind, namespace, name, termination.as_secs().max(1))?;
        let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string();
        let (store, kind, namespace, name) =
            (self.state.store.clone(), kind.clone(), namespace.to_string(), name.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(termination).await;
            store.finish_termination(&kind, &namespace, &name, &uid);
        });
        Ok(Deletion::Pending(object))
    }

    fn watch(&self, address: &Address) -> Result<Response, ApiError> {
        let selection = self.filter(address)?;
        let since = match self.params.get("resourceVersion").map(String::as_str) {
            None | Some("" | "0") => Since::Now,
            Some(revision) => Since::Revision(
                revision.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {revision:?}")))?,
            ),
        };
        let timeout = self
            .params
            .get("timeoutSeconds")
            .and_then(|seconds| seconds.parse().ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        let (sender, receiver) = mpsc::channel(256);
        let stream = WatchStream {
            selection,
            kind: address.kind.clone(),
            sender,
            faults: self.state.faults.clone(),
            close: self.state.close_watches.clone(),
            bookmarks: self.flag("allowWatchBookmarks").then_some(self.state.bookmark_interval),
            initial_events_end: self.flag("sendInitialEvents"),
            timeout,
        };
        match self.state.store.watch(&ResourceRef::of(&address.kind), since) {
            Ok(start) => {
                tokio::spawn(stream.run(start));
            }
            Err(expired) => {
                // The real server answers 200 and sends the 410 as the stream's first event.
                let line = event_line("ERROR", &expired.to_status());
                tokio::spawn(async move { stream.sender.send(Ok(line)).await });
            }
        }
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(ReceiverStream::new(receiver)))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
    }
}

fn ok(object: Value) -> Result<Response, ApiError> {
    Ok(axum::Json(object).into_response())
}

/// What a delete request asks for.
struct DeleteOptions {
    propagation: Propagation,
    /// `gracePeriodSeconds: 0`: a pod goes at once, without its termination grace period.
    immediate: bool,
    preconditions: Value,
}

enum PatchKind {
    Merge,
    Json,
}

impl PatchKind {
    fn apply(&self, kind: &ResourceKind, old: &Value, patch: &Value) -> Result<Value, ApiError> {
        let mut object = old.clone();
        match self {
            PatchKind::Merge => json_patch::merge(&mut object, patch),
            PatchKind::Json => {
                let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|error| ApiError::bad_request(format!("invalid JSON patch: {error}")))?;
                json_patch::patch(&mut object, &operations).map_err(|error| {
                    let name = old.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                    ApiError::invalid(kind, name, "patch", &error.to_string())
                })?;
            }
        }
        Ok(object)
    }
}

/// Which objects a list or watch selects.
struct Selection {
    resource: ResourceRef,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selection {
    fn selects(&self, object: &Value) -> bool {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        self.namespace.as_deref().is_none_or(|wanted| wanted == namespace)
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    /// The event a watcher with this selection sees for a change: an object that starts or stops matching
    /// a selector is ADDED or DELETED for it, as the real server reports.
    fn event_type(&self, change: &Change) -> Option<&'static str> {
        if change.resource != self.resource {
            return None;
        }
        let selected_now = self.selects(&change.object);
        match change.change {
            ChangeType::Added => selected_now.then_some("ADDED"),
            ChangeType::Deleted => selected_now.then_some("DELETED"),
            ChangeType::Modified => {
                let selected_before = change.previous.as_ref().is_some_and(|previous| self.selects(previous));
                match (selected_before, selected_now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

fn event_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

struct WatchStream {
    selection: Selection,
    kind: ResourceKind,
    sender: mpsc::Sender<Result<Bytes, Infallible>>,
    faults: Arc<Faults>,
    close: watch::Receiver<u64>,
    bookmarks: Option<Duration>,
    initial_events_end: bool,
    timeout: Duration,
}

impl WatchStream {
    async fn run(mut self, start: WatchStart) {
        let WatchStart { backlog, revision, mut live } = start;
        for change in &backlog {
            if !self.send_change(change).await {
                return;
            }
        }
        if self.initial_events_end && !self.send(event_line("BOOKMARK", &self.bookmark(revision, true))).await {
            return;
        }
        let mut seen = revision;
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut bookmark_timer = tokio::time::interval(self.bookmarks.unwrap_or(Duration::from_secs(3600)));
        bookmark_timer.tick().await;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(change) => {
                        seen = seen.max(change.revision);
                        self.faults.wait_while_paused().await;
                        if !self.send_change(&change).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let expired = ApiError::expired(seen, seen + 1).to_status();
                        self.send(event_line("ERROR", &expired)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bookmark_timer.tick(), if self.bookmarks.is_some() => {
                    if !self.send(event_line("BOOKMARK", &self.bookmark(seen, false))).await {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = self.close.changed() => return,
                _ = self.sender.closed() => return,
            }
        }
    }

    async fn send_change(&self, change: &Change) -> bool {
        match self.selection.event_type(change) {
            Some(event_type) => self.send(event_line(event_type, &change.object)).await,
            None => true,
        }
    }

    async fn send(&self, line: Bytes) -> bool {
        self.sender.send(Ok(line)).await.is_ok()
    }

    fn bookmark(&self, revision: u64, initial_events_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": metadata})
    }
}
