"""The deploy/ directory: Kubernetes manifests valid against the official schema, RBAC that is
exactly what the code calls, alert rules Prometheus accepts, and a dashboard and rules that
query metrics the bot really exports."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from core import metrics
from core.catalog import Catalog, CatalogError, load_catalog, parse_catalog
from integrations.kubernetes import argocd_autosync, manifests
from integrations.kubernetes import gitops as kube_gitops
from integrations.kubernetes.rbac import impersonation, rbac_documents, render
from tests.fixtures import requirements

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"
SCHEMA_VERSION = "1.31"
# Code that talks to the Kubernetes API with the official client (the sandbox fakes excluded).
KUBE_CALLERS = [
    *sorted((ROOT / "integrations" / "kubernetes").glob("*.py")),
    ROOT / "bot/leader.py",
]


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@cache
def built() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/kubernetes` applies: kustomize's output where kubectl is
    installed, otherwise the listed files with the kustomization's namespace set."""
    kustomization = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run(
            [kubectl, "kustomize", str(KUSTOMIZE)], check=True, capture_output=True, text=True
        ).stdout
        return _documents(out)
    docs = []
    for name in kustomization["resources"]:
        for doc in _documents((KUSTOMIZE / name).read_text()):
            if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                doc["metadata"]["namespace"] = kustomization["namespace"]
            docs.append(doc)
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in built() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in KUSTOMIZE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}


@pytest.mark.parametrize("path", sorted(KUSTOMIZE.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_file_validates_strictly(path: Path) -> None:
    if path.name == "kustomization.yaml":
        return
    for doc in _documents(path.read_text()):
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)


def test_the_built_output_validates_strictly() -> None:
    kinds = set()
    for doc in built():
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Job",
        "PodDisruptionBudget",
        "ConfigMap",
    } <= kinds


def _container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("kind,name", [("Deployment", "forgebot"), ("Job", "forgebot-db-upgrade")])
def test_pods_run_locked_down(kind: str, name: str) -> None:
    pod = _one(kind, name)["spec"]["template"]["spec"]
    container = _container(pod)
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a writable /tmp on a read-only root"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # Secrets only by reference, never inline.
    for env in container["env"]:
        if env["name"] in ("FORGEBOT_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
            assert "secretKeyRef" in env["valueFrom"], env["name"]
        assert "value" not in env or not re.search(r"xox|postgres(ql)?://", env["value"])


def test_the_deployment_is_highly_available_and_probed() -> None:
    deployment = _one("Deployment", "forgebot")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = _container(spec["template"]["spec"])
    assert container["args"] == ["serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in container["env"]}
    assert env["FORGEBOT_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    shutdown = float(env["FORGEBOT_SHUTDOWN_SECONDS"]["value"])
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert shutdown + pre_stop < spec["template"]["spec"]["terminationGracePeriodSeconds"]
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["selector"] == spec["selector"] and pdb["spec"]["minAvailable"] == 1
    service = _one("Service", "forgebot")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    paths = {p["path"] for rule in _one("Ingress")["spec"]["rules"] for p in rule["http"]["paths"]}
    assert "/slack/events" in paths and "/metrics" not in paths
    job = _container(_one("Job", "forgebot-db-upgrade")["spec"]["template"]["spec"])
    assert job["args"] == ["db", "upgrade"]


def test_the_catalog_config_map_is_a_valid_catalog(tmp_path: Path) -> None:
    config_map = _one("ConfigMap")
    path = tmp_path / "catalog.yaml"
    path.write_text(config_map["data"]["catalog.yaml"])
    assert load_catalog(path).teams


# --- RBAC: exactly what the code calls ----------------------------------------------------
_VERBS = {
    "read": "get",
    "list": "list",
    "create": "create",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
}
_API_CLASSES = [
    getattr(client, name) for name in dir(client) if name.endswith("Api") and name[0].isupper()
]


def _endpoint(method: str) -> tuple[str, str, str] | None:
    """(verb, API group, resource[/subresource]) of a kubernetes client method, read from the
    client's own request serializer; None if no API class has that method."""
    for api in _API_CLASSES:
        serializer = getattr(api, f"_{method}_serialize", None)
        if serializer is None:
            continue
        source = inspect.getsource(serializer)
        path = re.search(r"resource_path='([^']+)'", source)
        assert path is not None, method
        parts = [p for p in path.group(1).split("/") if p]
        group = "" if parts[0] == "api" else parts[1]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if rest[:2] == ["namespaces", "{namespace}"]:
            rest = rest[2:]
        resource = rest[0]
        if len(rest) == 3:  # resource/{name}/subresource
            resource += "/" + rest[2]
        prefix = method.split("_", 1)[0]
        verb = "deletecollection" if method.startswith("delete_collection") else _VERBS[prefix]
        return verb, group, resource
    return None


def _methods_called(source: str) -> set[str]:
    called = set(re.findall(r"\.((?:read|list|create|patch|replace|delete)_\w+)\(", source))
    # `_apply(cluster, ns, client.CoreV1Api, "resource_quota", ...)` builds method names from
    # templates such as f"create_namespaced_{kind}".
    templates = re.findall(r'f"(\w+_)\{kind\}"', source)
    kinds = re.findall(r'client\.\w+Api,\s*"(\w+)"', source)
    called |= {template + kind for template in templates for kind in kinds}
    # Off-hours scaling: `getattr(api, f"patch_namespaced_{suffix}")` with the suffixes that
    # `_api` pairs with each client (`client.AppsV1Api(api), "stateful_set"`).
    templates = re.findall(r'f"(\w+_)\{suffix\}"', source)
    suffixes = re.findall(r'client\.\w+Api\(api\),\s*"(\w+)"', source)
    called |= {template + suffix for template in templates for suffix in suffixes}
    return called


def used_permissions() -> set[tuple[str, str, str]]:
    used: set[tuple[str, str, str]] = set()
    for path in KUBE_CALLERS:
        source = path.read_text()
        for method in _methods_called(source):
            endpoint = _endpoint(method)
            # CustomObjectsApi's group and resource are arguments ("{group}"): the modules that
            # call it declare their permissions (added below).
            if endpoint is not None and endpoint[1] != "{group}":
                used.add(endpoint)
        if "Impersonate-User" in source:
            used.add(("impersonate", "", "users"))
        if "Impersonate-Group" in source:
            used.add(("impersonate", "", "groups"))
    # GitOps controllers' objects are read through CustomObjectsApi, whose group and resource
    # are arguments rather than method names: the module declares what it reads.
    used |= kube_gitops.PERMISSIONS | argocd_autosync.PERMISSIONS
    return used


def granted(kind: str, name: str) -> set[tuple[str, str, str]]:
    rules = _one(kind, name)["rules"]
    return {
        (verb, group, resource)
        for rule in rules
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_rbac_grants_exactly_the_verbs_the_code_uses() -> None:
    used = used_permissions()
    assert ("patch", "apps", "deployments") in used and ("create", "", "namespaces") in used
    leases = {p for p in used if p[2] == "leases"}
    assert leases == {
        (verb, "coordination.k8s.io", "leases") for verb in ("get", "create", "update")
    }
    cluster = granted("ClusterRole", "forgebot")
    if not any(impersonation(_shipped_catalog())):
        # The shipped catalog names no `kubernetes:` identity: no impersonation is granted.
        used -= {("impersonate", "", "users"), ("impersonate", "", "groups")}
    # Binding a team to a ClusterRole needs `bind` on that role (RBAC escalation check).
    binds = {("bind", "rbac.authorization.k8s.io", "clusterroles")}
    role_ref = manifests.role_binding("x", "g")["roleRef"]
    assert role_ref["kind"] == "ClusterRole"
    missing = (used - leases) - cluster
    assert not missing, f"add to deploy/kubernetes/rbac.yaml (ClusterRole): {sorted(missing)}"
    extra = cluster - (used - leases) - binds
    assert not extra, f"granted but never called (least privilege): {sorted(extra)}"
    bind_rule = next(r for r in _one("ClusterRole", "forgebot")["rules"] if "bind" in r["verbs"])
    assert bind_rule["resourceNames"] == [role_ref["name"]]
    assert granted("Role", "forgebot-leader-election") == leases


def test_the_service_account_is_bound_to_its_roles() -> None:
    for kind, role in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = _one(kind)
        assert binding["roleRef"]["kind"] == role
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "forgebot", "namespace": "forgebot"}
        ]
    deployment = _one("Deployment", "forgebot")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "forgebot"
    lease_rule = next(r for r in _one("Role")["rules"] if "resourceNames" in r)
    assert lease_rule["resourceNames"] == ["forgebot-scheduler"]


# --- Dockerfile ---------------------------------------------------------------------------
def test_the_image_is_multi_stage_non_root_and_built_from_the_lock_file() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    assert "uv sync --locked --no-dev" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, re.M)
    assert 'ENTRYPOINT ["forgebot"]' in dockerfile and 'CMD ["serve"]' in dockerfile


# --- alerts and dashboard -------------------------------------------------------------------
def _exported_names() -> set[str]:
    names: set[str] = set()
    for collector in list(metrics.REGISTRY._collector_to_names):
        for family in collector.describe():
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
    return names


def _queries() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yaml").read_text())
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return exprs


def test_alert_rules_pass_promtool() -> None:
    promtool = requirements.binary("promtool", "the `prometheus` package")
    result = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "prometheus-rules.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_query_metrics_the_bot_exports() -> None:
    exported = _exported_names()
    queried = {name for expr in _queries() for name in re.findall(r"\bforgebot_\w+", expr)}
    assert queried, "no forgebot metric queried"
    assert queried <= exported, f"not exported by core/metrics.py: {sorted(queried - exported)}"
    families = {n.removesuffix("_total") for n in exported}
    dashboard_text = (DEPLOY / "grafana-dashboard.json").read_text()
    wanted = {
        "forgebot_commands",
        "forgebot_ack_seconds",
        "forgebot_slack_api_calls",
        "forgebot_slack_api_retries",
        "forgebot_dependency_seconds",
        "forgebot_job_runs",
        "forgebot_scheduler_leader",
    }
    assert wanted <= families
    for name in wanted:
        assert name in dashboard_text, f"the dashboard has no panel for {name}"


def test_every_label_a_query_groups_by_exists() -> None:
    labels: set[str] = {"le", "instance"}
    for collector in list(metrics.REGISTRY._collector_to_names):
        labels |= set(getattr(collector, "_labelnames", ()))
    for expr in _queries():
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for label in (part.strip() for part in group.split(",")):
                assert label in labels, f"{label} in {expr}"


def _shipped_catalog() -> Catalog:
    config_map = yaml.safe_load((KUSTOMIZE / "catalog.yaml").read_text())
    return parse_catalog(config_map["data"]["catalog.yaml"], "deploy/kubernetes/catalog.yaml")


def test_the_shipped_rbac_is_generated_from_the_shipped_catalog() -> None:
    """`forgebot manifests` output, byte for byte: regenerate it when the catalog changes."""
    assert (KUSTOMIZE / "rbac.yaml").read_text() == render(_shipped_catalog()), (
        "run: forgebot manifests --catalog <the catalog in catalog.yaml> > deploy/kubernetes/rbac.yaml"
    )


def _with_identity(identity: str) -> str:
    """The example catalog with the payments team acting as `identity` in Kubernetes."""
    line = "    kubernetes_group: payments-devs"
    text = (ROOT / "catalog.example.yaml").read_text()
    assert line in text
    return text.replace(line, f"    kubernetes: {identity}\n{line}", 1)


def _allows(rules: list[dict[str, Any]], verb: str, group: str, resource: str, name: str) -> bool:
    """Kubernetes RBAC's rule match (no wildcards are ever generated)."""
    return any(
        verb in r["verbs"]
        and group in r["apiGroups"]
        and resource in r["resources"]
        and ("resourceNames" not in r or name in r["resourceNames"])
        for r in rules
    )


def test_impersonation_is_limited_to_the_identities_the_catalog_names() -> None:
    text = _with_identity("{user: payments-bot, groups: [payments-devs]}")
    catalog = parse_catalog(text, "catalog.example.yaml")
    assert impersonation(catalog) == (["payments-bot"], ["payments-devs"])
    rules = rbac_documents(catalog)[0]["rules"]
    assert _allows(rules, "impersonate", "", "users", "payments-bot")
    assert _allows(rules, "impersonate", "", "groups", "payments-devs")
    for group in ("system:masters", "system:nodes", "search-devs"):
        assert not _allows(rules, "impersonate", "", "groups", group), group
    for user in ("system:admin", "kubernetes-admin", "system:kube-controller-manager"):
        assert not _allows(rules, "impersonate", "", "users", user), user
    # Every call the code makes is allowed by the generated rules (names aside).
    for verb, group, resource in used_permissions():
        if resource == "leases":
            continue
        name = {"users": "payments-bot", "groups": "payments-devs", "clusterroles": "edit"}.get(
            resource, "anything"
        )
        assert _allows(rules, verb, group, resource, name), (verb, group, resource)
    for doc in rbac_documents(catalog):
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)


@pytest.mark.parametrize(
    "identity",
    ['{user: "system:admin"}', '{user: team-bot, groups: ["system:masters"]}'],
)
def test_the_catalog_refuses_to_name_a_control_plane_identity(identity: str) -> None:
    text = _with_identity(identity)
    with pytest.raises(CatalogError, match="never impersonates"):
        parse_catalog(text, "catalog.example.yaml")
