"""The Helm chart deploy/helm/streamspace, rendered and linted by Helm's own engine (helm-python-sdk wraps the
Helm 4 library), every object and CRD validated against the Kubernetes JSON schemas of a current release
(kubernetes-validate, offline), and the properties that keep it safe asserted on what Helm renders.

Run with `make test-helm` (scripts/ci/helm-test.sh).
"""

import base64
import json
import pathlib
import re
import shutil

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "streamspace"
KUBERNETES_VERSION = kubernetes_validate.latest_version()
NAMESPACE = "streamspace"
RELEASE = "demo"

# The sets of values the chart is rendered with: the defaults, a trial with the in-chart PostgreSQL and TLS on
# both hosts, an operator who brings the keys, the database URL and bigger pods, and three control-plane
# replicas on an external and on the in-chart PostgreSQL.
VALUE_SETS = {
    "defaults": {},
    "three-replicas-on-external-postgresql": {"controlPlane": {"replicas": 3}},
    "three-replicas-on-in-chart-postgresql": {"controlPlane": {"replicas": 3}, "postgresql": {"enabled": True}},
    "trial-with-postgresql-and-tls": {
        "postgresql": {"enabled": True, "persistence": {"size": "2Gi", "storageClass": "standard"}},
        "ingress": {
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"},
            "tlsSecretName": "streamspace-tls",
            "sessionTlsSecretName": "streamspace-sessions-tls",
        },
        "agent": {"endpointCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"]},
        "controlPlane": {
            "trustedProxies": ["10.244.0.0/16"],
            "tls": {"secretName": "streamspace-pod-tls"},
            "rateLimits": {"perAddress": "50/s:100", "perUser": "off"},
            "outboundCA": {"configMapName": "corp-ca"},
        },
    },
    "existing-secrets-and-custom-resources": {
        "fullnameOverride": "ss",
        "secrets": {"existingSecret": "my-streamspace-keys"},
        "externalDatabase": {"existingSecret": "my-database", "existingSecretKey": "url"},
        "ingress": {"enabled": False},
        "controlPlane": {
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
            "extraEnv": [{"name": "STREAMSPACE_IDLE_TIMEOUT", "value": "1800"}],
        },
        "agent": {
            "replicas": 3,
            "name": "cluster-a",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        },
        "networkPolicy": {
            "controlPlaneIngressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
            ],
            "kubernetesApiTo": [{"ipBlock": {"cidr": "10.96.0.1/32"}}],
        },
    },
}

# The agent's API calls (HELPERS.md, ADR 0021): the most its Role may grant, per API group and resource.
AGENT_VERBS_ALLOWED = {
    ("streamspace.io", "sessions"): {"get", "list", "watch", "create", "patch", "delete"},
    ("streamspace.io", "sessions/status"): {"patch"},
    ("streamspace.io", "templates"): {"get", "create"},
    ("", "pods"): {"get", "list", "watch", "create", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "create", "update", "delete"},
    ("", "services"): {"create", "delete"},
    ("", "secrets"): {"create", "delete"},
    ("", "persistentvolumeclaims"): {"create", "delete"},
    ("", "events"): {"list"},
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},
}

# `streamspace agent kubernetes`'s settings as agreed between the slices (HELPERS.md).
AGENT_SETTINGS = {
    "STREAMSPACE_SERVER",
    "STREAMSPACE_AGENT_TOKEN",
    "STREAMSPACE_NAMESPACE",
    "STREAMSPACE_AGENT_IDENTITY",
    "STREAMSPACE_LEASE_NAME",
    "STREAMSPACE_CONTROL_PLANE_SELECTOR",
    "STREAMSPACE_LOG_FORMAT",
}

# Volume types the `restricted` Pod Security Standard allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}

CRD_FILES = {"sessions.streamspace.io.yaml", "templates.streamspace.io.yaml"}

# What the chart ships for monitoring (through the symbolic links in the chart's files/).
DASHBOARDS = ROOT / "deploy" / "grafana"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "streamspace-rules.yml"


def render(values):
    chart = helm.Chart.load(str(CHART))
    return objects_of(chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True))


def objects_of(manifests):
    objects = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def of_kind(objects, kind):
    return [obj for obj in objects if obj["kind"] == kind]


def component_of(obj):
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def named(objects, kind, component):
    found = [obj for obj in of_kind(objects, kind) if component_of(obj) == component]
    assert len(found) == 1, f"one {kind} of the {component}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def workloads(objects):
    return [obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def env_of(container):
    return {item["name"]: item for item in container.get("env", [])}


def selects(selector, labels):
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def ports_towards(egress_rules, labels):
    """The ports egress rules open towards pods with these labels by naming them (not by opening everything)."""
    towards = [rule for rule in egress_rules
               if any("podSelector" in peer and selects(peer["podSelector"], labels) for peer in rule.get("to", []))]
    return [port["port"] for rule in towards for port in rule["ports"]]


def pod_labels(objects, component):
    workload = next(w for w in workloads(objects) if component_of(w) == component)
    return workload["spec"]["template"]["metadata"]["labels"]


@pytest.fixture(params=sorted(VALUE_SETS), scope="module")
def value_set(request):
    return request.param, VALUE_SETS[request.param], render(VALUE_SETS[request.param])


def test_the_chart_lints_clean_in_strict_mode(value_set):
    name, values, _ = value_set
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["errors"] == [], f"{name}: {report}"
    # Severity 1 is information (such as "icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], f"{name}: {report}"


def test_every_rendered_object_matches_the_kubernetes_schemas(value_set):
    name, _, objects = value_set
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding"} <= kinds, f"{name}: {kinds}"
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except jsonschema.ValidationError as err:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} against Kubernetes {KUBERNETES_VERSION}: "
                        f"{err.message} at {list(err.path)}")


def test_crds_in_the_chart_are_the_two_streamspace_crds_match_the_schemas_and_the_agent_may_use_them():
    crds = helm.Chart.load(str(CHART)).crds
    files = {pathlib.PurePath(crd["name"]).name for crd in crds}
    assert files <= CRD_FILES, f"only the generator's CRDs live in crds/: {files}"
    assert files == {path.name for path in (CHART / "crds").glob("*.yaml")}, "Helm installs every CRD file"
    role = named(render({}), "Role", "agent")
    granted = {resource for rule in role["rules"] if "streamspace.io" in rule["apiGroups"]
               for resource in rule["resources"]}
    for crd in crds:
        obj = yaml.safe_load(crd["data"])
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert obj["kind"] == "CustomResourceDefinition"
        assert obj["spec"]["group"] == "streamspace.io"
        assert obj["spec"]["scope"] == "Namespaced"
        plural = obj["spec"]["names"]["plural"]
        assert f"{plural}.streamspace.io.yaml" == pathlib.PurePath(crd["name"]).name
        # The agent writes a Session's status; nothing writes a Template's.
        has_status = plural == "sessions"
        needed = {plural, f"{plural}/status"} if has_status else {plural}
        assert needed <= granted, f"the agent's Role covers {needed}"
        for version in obj["spec"]["versions"]:
            assert ("status" in version.get("subresources", {})) == has_status, f"{crd['name']} {version['name']}"


def test_every_pod_meets_the_restricted_pod_security_standard(value_set):
    name, _, objects = value_set
    for workload in workloads(objects):
        what = f"{name}: {workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, what
        assert pod["securityContext"].get("runAsUser", 1) != 0, what
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", what
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(field), f"{what}: {field}"
        for volume in pod.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUME_TYPES, f"{what}: volume {volume['name']} is {kinds}"
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, what
            assert not security.get("privileged"), what
            assert security["capabilities"]["drop"] == ["ALL"], what
            assert not security["capabilities"].get("add"), what
            assert security["readOnlyRootFilesystem"] is True, what
            assert security.get("runAsUser", 1) != 0, what
            assert container["resources"]["requests"], f"{what}: resource requests"
            assert container["resources"]["limits"]["memory"], f"{what}: a memory limit"
            assert not [port for port in container.get("ports", []) if "hostPort" in port], what


def test_the_control_plane_is_probed_and_runs_serve_with_settings_the_binary_has(value_set):
    name, values, objects = value_set
    deployment = named(objects, "Deployment", "control-plane")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    source = (ROOT / "crates" / "cli" / "src" / "main.rs").read_text()
    settings = set(re.findall(r'env = "(STREAMSPACE_[A-Z_]+)"', source))
    env = env_of(container)
    extra = {item["name"] for item in values.get("controlPlane", {}).get("extraEnv", [])}
    own = {key for key in env if key.startswith("STREAMSPACE_")} - extra
    assert own <= settings, f"{name}: settings `streamspace serve` does not have: {own - settings}"
    for secret in ("STREAMSPACE_JWT_SECRET", "STREAMSPACE_AUDIT_KEY", "STREAMSPACE_ADMIN_PASSWORD",
                   "STREAMSPACE_KUBERNETES_AGENT_TOKEN"):
        assert "secretKeyRef" in env[secret]["valueFrom"], f"{name}: {secret} comes from a Secret"
    database_url = env["STREAMSPACE_DATABASE_URL"]
    if "value" in database_url:
        assert "$(POSTGRES_PASSWORD)" in database_url["value"], "no password in the pod spec"
        assert "secretKeyRef" in env["POSTGRES_PASSWORD"]["valueFrom"]
    else:
        assert "secretKeyRef" in database_url["valueFrom"]
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    data_dir = env["STREAMSPACE_DATA_DIR"]["value"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts[data_dir]["name"]], "the data directory is writable"
    # Keys it would otherwise generate afresh at each start into the emptyDir (losing every MFA secret).
    for key in ("seal.key", "session.key"):
        mount = mounts[f"{data_dir}/{key}"]
        assert "secret" in volumes[mount["name"]] and mount["subPath"] == key, f"{name}: {key} from the keys Secret"


# The keys the control plane generates into its data directory unless a setting gives them (`Keys::load` in
# crates/server/src/keys.rs), with the settings that can. A key left to it would differ on every replica (each has
# its own emptyDir) and a replica would refuse to start on the fingerprints the first one recorded.
KEY_SETTINGS = {"jwt": "STREAMSPACE_JWT_SECRET", "audit": "STREAMSPACE_AUDIT_KEY"}


def keys_the_binary_would_generate():
    """{key name: file in the data directory}, as keys.rs names them."""
    source = (ROOT / "crates" / "server" / "src" / "keys.rs").read_text()
    constants = dict(re.findall(r'const (\w+): &str = "([^"]+)";', source))
    files = {name: constants.get(file, file) for name, file in re.findall(r'key\("(\w+)", "?([\w.]+)"?\)', source)}
    assert {"seal", "audit"} <= set(files), f"keys.rs no longer reads as expected: {files}"
    return files


def test_every_control_plane_replica_reads_every_key_from_the_one_keys_secret(value_set):
    name, values, objects = value_set
    deployment = named(objects, "Deployment", "control-plane")
    assert deployment["spec"]["replicas"] == values.get("controlPlane", {}).get("replicas", 1)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    data_dir = env["STREAMSPACE_DATA_DIR"]["value"]
    secrets = set()
    for key, file in keys_the_binary_would_generate().items():
        if KEY_SETTINGS.get(key) in env:
            secrets.add(env[KEY_SETTINGS[key]]["valueFrom"]["secretKeyRef"]["name"])
            continue
        mount = mounts.get(f"{data_dir}/{file}")
        assert mount, f"{name}: the {key} key would be generated into each replica's own data directory"
        secret = volumes[mount["name"]]["secret"]
        assert {"key": file, "path": mount["subPath"]} in secret["items"], f"{name}: {file}"
        secrets.add(secret["secretName"])
    generated = [secret["metadata"]["name"] for secret in of_kind(objects, "Secret") if component_of(secret) == "keys"]
    assert secrets == {values.get("secrets", {}).get("existingSecret") or generated[0]}, name
    # Keys derived from a key file would replace the seal and session keys an existing install already uses.
    assert "STREAMSPACE_KEY_FILE" not in env, name


def test_the_control_plane_rolls_one_replica_at_a_time_and_keeps_serving_while_it_leaves(value_set):
    name, _, objects = value_set
    deployment = named(objects, "Deployment", "control-plane")
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, name
    pod = deployment["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and 0 < int(command[1]) < pod.get("terminationGracePeriodSeconds", 30), name
    dockerfile = (ROOT / "images" / "streamspace" / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:", dockerfile, re.M), "the image has coreutils' sleep"


def test_a_disruption_budget_keeps_all_but_one_control_plane_replica_through_a_drain(value_set):
    name, values, objects = value_set
    budgets = [budget for budget in of_kind(objects, "PodDisruptionBudget") if component_of(budget) == "control-plane"]
    if values.get("controlPlane", {}).get("replicas", 1) == 1:
        assert budgets == [], f"{name}: a budget for one replica would block every node drain"
        return
    [budget] = budgets
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"], name
    assert selects(budget["spec"]["selector"], pod_labels(objects, "control-plane")), name
    assert not selects(budget["spec"]["selector"], pod_labels(objects, "agent")), name


def test_control_plane_replicas_prefer_different_nodes(value_set):
    name, _, objects = value_set
    affinity = named(objects, "Deployment", "control-plane")["spec"]["template"]["spec"]["affinity"]
    [preferred] = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname", name
    assert selects(term["labelSelector"], pod_labels(objects, "control-plane")), name
    assert not selects(term["labelSelector"], pod_labels(objects, "agent")), name
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity["podAntiAffinity"], "a preference only"


def test_an_affinity_in_values_replaces_the_default_spread():
    zone = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}]}}}
    deployment = named(render({"controlPlane": {"affinity": zone}}), "Deployment", "control-plane")
    assert deployment["spec"]["template"]["spec"]["affinity"] == zone


@pytest.mark.parametrize("values", [
    {"controlPlane": {"replicas": 3}, "externalDatabase": {"existingSecret": ""}},
    {"controlPlane": {"replicas": 2, "extraEnv": [{"name": "STREAMSPACE_DATABASE_URL",
                                                   "value": "sqlite:///data/streamspace.db?mode=rwc"}]}},
])
def test_several_replicas_without_a_shared_postgresql_refuse_to_render(values):
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    replicas = values["controlPlane"]["replicas"]
    assert f"controlPlane.replicas is {replicas}: the replicas share one PostgreSQL database" in str(refused.value)


def test_several_replicas_may_take_their_postgresql_url_from_extra_env():
    url = {"name": "STREAMSPACE_DATABASE_URL", "value": "postgres://db.example.com/streamspace"}
    deployment = named(render({"controlPlane": {"replicas": 2, "extraEnv": [url]}}), "Deployment", "control-plane")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"][-1] == url


def test_tls_rate_limits_and_the_outbound_ca_reach_the_control_plane_as_its_own_settings(value_set):
    name, values, objects = value_set
    settings = values.get("controlPlane", {})
    pod = named(objects, "Deployment", "control-plane")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    volumes = {v["name"]: v for v in pod["volumes"]}

    def mounted_from(path):
        """The volume a file lies in, mounted whole (a subPath mount would never see a renewal)."""
        mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        assert "subPath" not in mount, f"{name}: {path} is updated in place"
        return volumes[mount["name"]]

    tls_secret = settings.get("tls", {}).get("secretName")
    scheme = "HTTPS" if tls_secret else "HTTP"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == scheme, f"{name}: {probe}"
    if tls_secret:
        for variable, key in (("STREAMSPACE_TLS_CERT", "tls.crt"), ("STREAMSPACE_TLS_KEY", "tls.key")):
            path = env[variable]["value"]
            assert path.endswith("/" + key) and mounted_from(path)["secret"]["secretName"] == tls_secret
        for ingress in of_kind(objects, "Ingress"):
            assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    else:
        assert "STREAMSPACE_TLS_CERT" not in env and "STREAMSPACE_TLS_KEY" not in env

    limits = settings.get("rateLimits", {})
    for setting, variable in (("perAddress", "ADDRESS"), ("perUser", "USER"), ("perOrg", "ORG")):
        rendered = env.get(f"STREAMSPACE_RATE_LIMIT_{variable}", {}).get("value")
        assert rendered == (limits.get(setting) or None), f"{name}: {setting}"

    config_map = settings.get("outboundCA", {}).get("configMapName")
    if config_map:
        assert mounted_from(env["STREAMSPACE_OUTBOUND_CA"]["value"])["configMap"]["name"] == config_map
    else:
        assert "STREAMSPACE_OUTBOUND_CA" not in env


def test_the_default_image_is_this_version_of_the_image_the_repository_builds():
    """The chart's default image is what the release workflow publishes for this version
    (ghcr.io/<owner>/streamspace:<version>, images/streamspace), and the pods run it as that image expects:
    its user, its writable data directory, its ports. The image smoke test runs the built image the same way."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    workspace_version = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    assert chart["appVersion"] == workspace_version, "the default tag is the binary's version"
    dockerfile = (ROOT / "images" / "streamspace" / "Dockerfile").read_text()
    user, group = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M).groups()
    image_data_dir = re.search(r"STREAMSPACE_DATA_DIR=(\S+)", dockerfile).group(1)
    assert re.search(rf"^VOLUME {re.escape(image_data_dir)}$", dockerfile, re.M), "the image's data dir is a volume"
    exposed = {int(port) for port in re.search(r"^EXPOSE ([\d ]+)$", dockerfile, re.M).group(1).split()}
    objects = render({})
    for component in ("control-plane", "agent"):
        pod = named(objects, "Deployment", component)["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == f"ghcr.io/streamspace/streamspace:{chart['appVersion']}"
        security = pod["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (int(user), int(group),
                                                                                      int(group)), component
    container = named(objects, "Deployment", "control-plane")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["STREAMSPACE_DATA_DIR"]["value"] == image_data_dir
    assert {port["containerPort"] for port in container["ports"]} == exposed


def test_the_agent_runs_replicated_against_the_control_plane_service_with_its_pod_identity(value_set):
    name, values, objects = value_set
    agent = named(objects, "Deployment", "agent")
    assert agent["spec"]["replicas"] == values.get("agent", {}).get("replicas", 2)
    pod = agent["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["agent", "kubernetes"]
    env = env_of(container)
    assert set(env) <= AGENT_SETTINGS, f"{name}: {set(env) - AGENT_SETTINGS}"
    service = named(objects, "Service", "control-plane")
    api_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert env["STREAMSPACE_SERVER"]["value"] == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{api_port}"
    assert env["STREAMSPACE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["STREAMSPACE_AGENT_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The control plane registers the agent with the very token the agent presents.
    plane = env_of(named(objects, "Deployment", "control-plane")["spec"]["template"]["spec"]["containers"][0])
    assert env["STREAMSPACE_AGENT_TOKEN"]["valueFrom"] == plane["STREAMSPACE_KUBERNETES_AGENT_TOKEN"]["valueFrom"]
    assert plane["STREAMSPACE_KUBERNETES_AGENT_NAME"]["value"] == values.get("agent", {}).get("name", "kubernetes")
    # Session NetworkPolicies admit the pods this selector picks: this release's control plane and nothing else.
    selector = dict(pair.split("=", 1) for pair in env["STREAMSPACE_CONTROL_PLANE_SELECTOR"]["value"].split(","))
    plane_labels = named(objects, "Deployment", "control-plane")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= plane_labels.items(), f"{name}: {selector} picks no control-plane pod"
    assert selector["app.kubernetes.io/instance"] == RELEASE
    cidrs = values.get("agent", {}).get("endpointCIDRs")
    networks = plane.get("STREAMSPACE_KUBERNETES_AGENT_ENDPOINT_CIDRS", {}).get("value")
    assert networks == (",".join(cidrs) if cidrs else None)
    account = named(objects, "ServiceAccount", "agent")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    # A node drain or a node's death leaves a replica to lead.
    budget = named(objects, "PodDisruptionBudget", "agent")
    assert budget["spec"]["maxUnavailable"] == 1 and selects(budget["spec"]["selector"], pod_labels(objects, "agent"))
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert selects(spread["labelSelector"], pod_labels(objects, "agent"))


def test_the_agent_role_grants_no_verb_beyond_its_api_calls(value_set):
    name, _, objects = value_set
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding"), "namespaced only"
    role = named(objects, "Role", "agent")
    granted = {}
    for rule in role["rules"]:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    for (group, resource), verbs in granted.items():
        allowed = AGENT_VERBS_ALLOWED.get((group, resource))
        assert allowed is not None, f"{name}: the agent may not touch {group or 'core'}/{resource}"
        assert verbs <= allowed, f"{name}: {group or 'core'}/{resource} grants {verbs - allowed} beyond its calls"
    missing = set(AGENT_VERBS_ALLOWED) - set(granted)
    assert not missing, f"{name}: the agent needs {missing}"
    binding = named(objects, "RoleBinding", "agent")
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["roleRef"] == role_ref
    account = named(objects, "ServiceAccount", "agent")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]


def secret_refs(objects):
    """Every (Secret name, key) a pod reads, from its environment or as a file."""
    refs = set()
    for workload in workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                refs |= {(volume["secret"]["secretName"], item["key"]) for item in volume["secret"]["items"]}
    return refs


def test_generated_keys_are_long_random_and_kept_on_uninstall():
    objects = render({})
    keys = named(objects, "Secret", "keys")
    assert keys["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    decoded = {key: base64.b64decode(value) for key, value in keys["data"].items()}
    decoded |= {key: value.decode() for key, value in decoded.items() if not key.endswith(".key")}
    assert set(decoded) == {"jwt-secret", "audit-key", "admin-password", "agent-token", "seal.key", "session.key"}
    for key in ("jwt-secret", "audit-key", "agent-token"):
        assert len(decoded[key]) >= 32 and decoded[key].isalnum(), key
    assert len(decoded["admin-password"]) >= 16
    # The control plane reads these two as files of exactly 32 bytes (crates/server/src/keys.rs).
    assert len(decoded["seal.key"]) == len(decoded["session.key"]) == 32
    # Random at each fresh install (offline rendering has no cluster to look the old Secret up in).
    again = {key: base64.b64decode(value) for key, value in named(render({}), "Secret", "keys")["data"].items()}
    assert all(again[key] != decoded[key] for key in decoded)
    template = (CHART / "templates" / "secret-keys.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in template, "upgrades reuse the Secret in the cluster"


LOOKUP = 'lookup "v1" "Secret" .Release.Namespace $name'


def upgrade_of_an_install_with_defaults(tmp_path, values):
    """The keys Secret of an install with the default values, and the objects of its upgrade with `values`.
    Offline, Helm's lookup finds nothing: a copy of the chart whose lookup reads the Secret from a chart file
    instead runs the rest of the real template against a Secret "in the cluster"."""
    chart = tmp_path / "streamspace"
    shutil.copytree(CHART, chart)
    template = chart / "templates" / "secret-keys.yaml"
    assert template.read_text().count(LOOKUP) == 1, "upgrades look the Secret up in the cluster"
    template.write_text(template.read_text().replace(LOOKUP, '.Files.Get "in-cluster.json" | fromJson'))
    installed = named(render({}), "Secret", "keys")
    (chart / "in-cluster.json").write_text(json.dumps(installed))
    upgraded = helm.Chart.load(str(chart)).render(values, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    return installed, objects_of(upgraded)


def test_an_upgrade_keeps_every_key_the_cluster_has_and_adds_only_the_missing(tmp_path):
    installed, upgraded = upgrade_of_an_install_with_defaults(tmp_path, VALUE_SETS["trial-with-postgresql-and-tls"])
    data = named(upgraded, "Secret", "keys")["data"]
    assert {key: data[key] for key in installed["data"]} == installed["data"], "every key kept"
    assert set(data) - set(installed["data"]) == {"postgres-password"}, "the in-chart PostgreSQL's password added"
    assert len(base64.b64decode(data["postgres-password"])) >= 32


def test_a_single_replica_install_scaled_to_three_keeps_its_keys_for_every_replica(tmp_path):
    installed, upgraded = upgrade_of_an_install_with_defaults(tmp_path, {"controlPlane": {"replicas": 3}})
    keys = named(upgraded, "Secret", "keys")
    assert keys["data"] == installed["data"], "the data sealed and signed so far stays readable"
    deployment = named(upgraded, "Deployment", "control-plane")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    name = keys["metadata"]["name"]
    assert {(name, key) for key in ("jwt-secret", "audit-key", "seal.key", "session.key")} <= secret_refs(upgraded)
    assert {volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume} == {name}


def test_every_secret_a_pod_reads_is_rendered_or_named_in_values(value_set):
    name, values, objects = value_set
    rendered = {(s["metadata"]["name"], key) for s in of_kind(objects, "Secret") for key in s.get("data", {})}
    declared = set()
    existing_keys = values.get("secrets", {}).get("existingSecret")
    if existing_keys:
        assert not [secret for secret in of_kind(objects, "Secret") if component_of(secret) == "keys"]
        keys = {"jwt-secret", "audit-key", "admin-password", "agent-token", "seal.key", "session.key",
                "postgres-password"}
        declared |= {(existing_keys, key) for key in keys}
    database = {"existingSecret": "streamspace-database", "existingSecretKey": "database-url",
                **values.get("externalDatabase", {})}
    declared.add((database["existingSecret"], database["existingSecretKey"]))
    tls_secret = values.get("controlPlane", {}).get("tls", {}).get("secretName")
    if tls_secret:
        declared |= {(tls_secret, "tls.crt"), (tls_secret, "tls.key")}
    missing = secret_refs(objects) - rendered - declared
    assert not missing, f"{name}: pods read Secrets nobody provides: {missing}"
    if values.get("postgresql", {}).get("enabled"):
        assert ("demo-streamspace-keys", "postgres-password") in rendered


def test_network_policies_select_the_pods_they_are_about(value_set):
    name, values, objects = value_set
    policies = {component_of(policy): policy for policy in of_kind(objects, "NetworkPolicy")}
    components = {component_of(workload) for workload in workloads(objects)}
    assert set(policies) == components, f"{name}: one policy for each workload"
    labels = {component: pod_labels(objects, component) for component in components}
    for component, policy in policies.items():
        chosen = {c for c, pod in labels.items() if selects(policy["spec"]["podSelector"], pod)}
        assert chosen == {component}, f"{name}: the {component} policy selects {chosen}"
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    plane = named(objects, "Deployment", "control-plane")["spec"]["template"]["spec"]["containers"][0]
    open_ports = {port["port"] for port in policies["control-plane"]["spec"]["ingress"][0]["ports"]}
    assert open_ports == {port["containerPort"] for port in plane["ports"]}, f"{name}: the API and session ports"
    assert "ingress" not in policies["agent"]["spec"], "nothing may connect to the agent"
    api_port = values.get("controlPlane", {}).get("apiPort", 8000)
    assert ports_towards(policies["agent"]["spec"]["egress"], labels["control-plane"]) == [api_port]
    session_pod = {"app.kubernetes.io/managed-by": "streamspace", "streamspace.io/session": "x"}
    assert ports_towards(policies["control-plane"]["spec"]["egress"], session_pod) == [8080], "the streamers"
    if "postgresql" in policies:
        sources = policies["postgresql"]["spec"]["ingress"][0]["from"]
        admitted = [c for c, pod in labels.items() if any(selects(peer["podSelector"], pod) for peer in sources)]
        assert admitted == ["control-plane"], f"{name}: PostgreSQL admits {admitted}"


def test_services_and_ingresses_route_to_the_control_plane_ports(value_set):
    name, values, objects = value_set
    service = named(objects, "Service", "control-plane")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(objects, "control-plane"))
    assert not selects({"matchLabels": service["spec"]["selector"]}, pod_labels(objects, "agent"))
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert ports == {"http", "sessions"}
    ingresses = of_kind(objects, "Ingress")
    if not values.get("ingress", {}).get("enabled", True):
        assert ingresses == []
        return
    routes = {}
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            backend = rule["http"]["paths"][0]["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            routes[rule["host"]] = backend["port"]["name"]
        for tls in ingress["spec"].get("tls", []):
            assert set(tls["hosts"]) <= {rule["host"] for rule in ingress["spec"]["rules"]}
    assert routes == {"streamspace.example.com": "http", "*.sessions.example.com": "sessions"}
    tls = {host: t["secretName"] for i in ingresses for t in i["spec"].get("tls", []) for host in t["hosts"]}
    expected = {}
    if values.get("ingress", {}).get("tlsSecretName"):
        expected["streamspace.example.com"] = values["ingress"]["tlsSecretName"]
    if values.get("ingress", {}).get("sessionTlsSecretName"):
        expected["*.sessions.example.com"] = values["ingress"]["sessionTlsSecretName"]
    assert tls == expected


def test_the_in_chart_postgresql_keeps_its_data_on_a_volume():
    objects = render(VALUE_SETS["trial-with-postgresql-and-tls"])
    statefulset = named(objects, "StatefulSet", "postgresql")
    assert statefulset["spec"]["replicas"] == 1
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    env = env_of(container)
    assert env["PGDATA"]["value"].startswith(mounts[claim["metadata"]["name"]] + "/")
    service = named(objects, "Service", "postgresql")
    plane = env_of(named(objects, "Deployment", "control-plane")["spec"]["template"]["spec"]["containers"][0])
    assert f"@{service['metadata']['name']}:5432/" in plane["STREAMSPACE_DATABASE_URL"]["value"]
    assert not of_kind(render({}), "StatefulSet"), "external PostgreSQL by default"


def test_notes_tell_where_the_admin_password_and_the_session_hosts_are(value_set):
    name, values, _ = value_set
    chart = helm.Chart.load(str(CHART))
    notes = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)["streamspace/templates/NOTES.txt"]
    keys = values.get("secrets", {}).get("existingSecret") or f"{RELEASE}-streamspace-keys"
    assert f"get secret {keys}" in notes and "admin-password" in notes, notes
    assert "*.sessions.example.com" in notes, notes
    replicas = values.get("controlPlane", {}).get("replicas", 1)
    assert (f"runs {replicas} replicas on one PostgreSQL database" in notes) == (replicas > 1), notes


@pytest.mark.parametrize("values, complaint", [
    ({"agent": {"replicas": "two"}}, "/agent/replicas"),
    ({"agent": {"endpointCIDRs": ["10.244.0.0"]}}, "/agent/endpointCIDRs/0"),
    ({"containerSecurityContext": {"allowPrivilegeEscalation": True, "capabilities": {"drop": ["ALL"]}}},
     "allowPrivilegeEscalation"),
    ({"podSecurityContext": {"runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}}}, "runAsNonRoot"),
    ({"publicUrl": "streamspace.example.com"}, "/publicUrl"),
    ({"ingres": {"enabled": False}}, "ingres"),
    ({"monitoring": {"prometheusRule": {"enabled": "yes"}}}, "/monitoring/prometheusRule/enabled"),
    ({"controlPlane": {"rateLimits": {"perUser": "lots"}}}, "/controlPlane/rateLimits/perUser"),
    ({"controlPlane": {"tls": {"secret": "x"}}}, "/controlPlane/tls"),
    ({"controlPlane": {"replicas": 0}}, "/controlPlane/replicas"),
    ({"controlPlane": {"replicas": "3"}}, "/controlPlane/replicas"),
])
def test_the_values_schema_refuses_mistakes(values, complaint):
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    assert complaint in str(refused.value)


def test_without_any_database_the_chart_says_what_is_missing():
    with pytest.raises(helm.HelmError) as refused:
        render({"externalDatabase": {"existingSecret": ""}})
    assert "externalDatabase.existingSecret, externalDatabase.url or postgresql.enabled" in str(refused.value)


def monitoring_objects(objects, kind):
    return [obj for obj in of_kind(objects, kind) if component_of(obj) == "monitoring"]


def test_the_dashboards_ship_in_a_configmap_for_grafanas_sidecar(value_set):
    name, _, objects = value_set
    [dashboards] = monitoring_objects(objects, "ConfigMap")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1", name
    assert dashboards["metadata"]["annotations"]["grafana_folder"] == "StreamSpace", name
    shipped = {key: json.loads(text) for key, text in dashboards["data"].items()}
    assert shipped == {path.name: json.loads(path.read_text()) for path in DASHBOARDS.glob("*.json")}, name
    assert shipped, "at least the platform overview"


def test_the_dashboards_configmap_follows_its_values():
    values = {"monitoring": {"dashboards": {"label": "dashboards", "labelValue": "streamspace", "namespace": "grafana",
                                            "folderAnnotation": ""}}}
    [dashboards] = monitoring_objects(render(values), "ConfigMap")
    assert dashboards["metadata"]["labels"]["dashboards"] == "streamspace"
    assert dashboards["metadata"]["namespace"] == "grafana"
    assert "annotations" not in dashboards["metadata"]
    assert monitoring_objects(render({"monitoring": {"dashboards": {"enabled": False}}}), "ConfigMap") == []


def test_prometheus_operator_objects_need_their_crds_unless_forced():
    # Rendered offline, the cluster has no Prometheus Operator: `auto` renders nothing.
    for kind in ("PrometheusRule", "ServiceMonitor"):
        assert monitoring_objects(render({}), kind) == [], kind
    off = {"monitoring": {"prometheusRule": {"enabled": False}, "serviceMonitor": {"enabled": False}}}
    assert [obj for obj in render(off) if obj["apiVersion"].startswith("monitoring.coreos.com")] == []


def test_the_prometheus_rule_carries_the_repositorys_alert_rules():
    values = {"monitoring": {"prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}}}
    [rule] = monitoring_objects(render(values), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load(ALERT_RULES.read_text())


def test_the_service_monitor_scrapes_the_control_plane_services_http_port():
    objects = render({"monitoring": {"serviceMonitor": {"enabled": True, "interval": "15s"}}})
    [monitor] = monitoring_objects(objects, "ServiceMonitor")
    service = named(objects, "Service", "control-plane")
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s"}
    assert "http" in {port["name"] for port in service["spec"]["ports"]}

