"""What a GitOps controller says about a commit: Argo CD `Application` or Flux `Kustomization` /
`HelmRelease`, read as custom objects through the gateway's bounded thread pool.

`controller_status` judges one commit:

- Argo CD: done when `status.sync.revision` is the commit, `status.sync.status` is `Synced` and
  `status.health.status` is `Healthy`; failed when the sync operation for the commit ended
  `Failed`/`Error` (`status.operationState`), or the application is `Degraded` at the commit.
- Flux Kustomization: done when `status.lastAppliedRevision` names the commit (`main@sha1:<id>`
  in Flux v2, `main/<id>` before) and the `Ready` condition is `True`; failed when `Ready` is
  `False` for an attempt at the commit (`lastAttemptedRevision`) with a failure reason.
- Flux HelmRelease: the same on `Ready`, where the attempted and applied revisions are the chart
  version, which carries the commit as build metadata (`0.3.0+<id>`) when the chart comes from
  the repository with `reconcileStrategy: Revision`.

The message is always the controller's own words, so a timeout says what it said last.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.catalog_gitops import GitOpsController
from core.lazy_import import lazy_module
from integrations.kubernetes.gateway import TIMEOUT, KubeGateway

if TYPE_CHECKING:
    from kubernetes import client
else:
    client = lazy_module("kubernetes.client")

_RESOURCES = {
    "argocd": ("argoproj.io", "v1alpha1", "applications"),
    "flux-kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    "flux-helmrelease": ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
}
PERMISSIONS = frozenset(
    {("get", group, plural) for group, _, plural in _RESOURCES.values()}
    | {("get", "argoproj.io", "appprojects")}
)
"""The RBAC these reads need (deploy/kubernetes/rbac.yaml grants exactly these)."""
_FLUX_FAILURES = {
    "ReconciliationFailed",
    "BuildFailed",
    "HealthCheckFailed",
    "ArtifactFailed",
    "InstallFailed",
    "UpgradeFailed",
    "TestFailed",
    "RollbackFailed",
}


@dataclass(frozen=True)
class ControllerStatus:
    applied: bool
    """The controller has applied the commit and reports it healthy/ready."""
    failed: bool
    summary: str
    """Short state for the progress line, e.g. `OutOfSync, Progressing, sync Running`."""
    message: str
    """The controller's own message, shown on failure and on timeout."""


def _names_commit(revision: str, commit: str) -> bool:
    if not revision or not commit:
        return False
    tail = revision.rsplit(":", 1)[-1].rsplit("/", 1)[-1].rsplit("+", 1)[-1]
    return len(tail) >= 7 and (commit.startswith(tail) or tail.startswith(commit))


def argocd_status(app: dict[str, Any], commit: str) -> ControllerStatus:
    status = app.get("status") or {}
    sync, health = status.get("sync") or {}, status.get("health") or {}
    operation = status.get("operationState") or {}
    sync_status, health_status = sync.get("status", "Unknown"), health.get("status", "Unknown")
    phase = operation.get("phase", "")
    op_revision = (
        (operation.get("syncResult") or {}).get("revision")
        or ((operation.get("operation") or {}).get("sync") or {}).get("revision")
        or ""
    )
    summary = f"{sync_status}, {health_status}" + (f", sync {phase}" if phase else "")
    message = str(operation.get("message") or health.get("message") or "")
    at_commit = _names_commit(str(sync.get("revision") or ""), commit)
    if phase in ("Failed", "Error") and _names_commit(str(op_revision), commit):
        return ControllerStatus(False, True, summary, message or f"sync {phase}")
    if at_commit and health_status == "Degraded":
        return ControllerStatus(False, True, summary, message or "the application is Degraded")
    done = at_commit and sync_status == "Synced" and health_status == "Healthy"
    return ControllerStatus(done, False, summary, message)


def flux_status(obj: dict[str, Any], commit: str) -> ControllerStatus:
    status = obj.get("status") or {}
    ready = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"),
        {"status": "Unknown", "reason": "Progressing", "message": ""},
    )
    applied = str(status.get("lastAppliedRevision") or "")
    attempted = str(status.get("lastAttemptedRevision") or "")
    observed = int(status.get("observedGeneration") or 0) >= int(
        (obj.get("metadata") or {}).get("generation") or 0
    )
    summary = f"Ready={ready.get('status')} ({ready.get('reason', '')})"
    message = str(ready.get("message") or "")
    if (
        ready.get("status") == "False"
        and ready.get("reason") in _FLUX_FAILURES
        and _names_commit(attempted, commit)
    ):
        return ControllerStatus(False, True, summary, message)
    done = observed and ready.get("status") == "True" and _names_commit(applied, commit)
    return ControllerStatus(done, False, summary, message)


def judge(controller: GitOpsController, obj: dict[str, Any], commit: str) -> ControllerStatus:
    if controller.kind == "argocd":
        return argocd_status(obj, commit)
    return flux_status(obj, commit)


@dataclass(frozen=True)
class SyncWindow:
    """An Argo CD sync window (AppProject `spec.syncWindows`) that applies to an application,
    or a suspended Flux object (`schedule` empty)."""

    kind: str
    schedule: str
    duration: str
    time_zone: str
    manual_sync: bool

    def describe(self) -> str:
        if not self.schedule:
            return self.kind
        zone = f" {self.time_zone}" if self.time_zone else " UTC"
        manual = ", manual syncs allowed" if self.manual_sync else ""
        return f"{self.kind} `{self.schedule}`{zone} for {self.duration}{manual}"


def windows_for(app: dict[str, Any], project: dict[str, Any]) -> list[SyncWindow]:
    """The project's windows that match the application (by name, destination namespace or
    cluster, with Argo CD's glob patterns)."""
    name = str((app.get("metadata") or {}).get("name") or "")
    destination = (app.get("spec") or {}).get("destination") or {}
    found = []
    for window in (project.get("spec") or {}).get("syncWindows") or []:
        matches = (
            any(fnmatch.fnmatchcase(name, p) for p in window.get("applications") or [])
            or any(
                fnmatch.fnmatchcase(str(destination.get("namespace") or ""), p)
                for p in window.get("namespaces") or []
            )
            or any(
                fnmatch.fnmatchcase(
                    str(destination.get("server") or destination.get("name") or ""), p
                )
                for p in window.get("clusters") or []
            )
        )
        if matches:
            found.append(
                SyncWindow(
                    str(window.get("kind") or "deny"),
                    str(window.get("schedule") or ""),
                    str(window.get("duration") or ""),
                    str(window.get("timeZone") or ""),
                    bool(window.get("manualSync")),
                )
            )
    return found


async def sync_windows(
    kube: KubeGateway, cluster: str, controller: GitOpsController
) -> list[SyncWindow]:
    """Argo CD: the windows of the Application's AppProject that apply to it. Flux has no
    windows; a suspended object is reported as one that never syncs."""
    group, version, plural = _RESOURCES[controller.kind]

    def read(api: client.ApiClient) -> list[SyncWindow]:
        objects = client.CustomObjectsApi(api)
        response: Any = objects.get_namespaced_custom_object(
            group,
            version,
            controller.where,
            plural,
            controller.name,
            _request_timeout=TIMEOUT,
            _preload_content=False,
        )
        found: dict[str, Any] = json.loads(response.data)
        if controller.kind != "argocd":
            suspended = bool((found.get("spec") or {}).get("suspend"))
            return [SyncWindow("suspended (spec.suspend)", "", "", "", False)] if suspended else []
        project_name = str((found.get("spec") or {}).get("project") or "default")
        response = objects.get_namespaced_custom_object(
            "argoproj.io",
            "v1alpha1",
            controller.where,
            "appprojects",
            project_name,
            _request_timeout=TIMEOUT,
            _preload_content=False,
        )
        return windows_for(found, json.loads(response.data))

    return await kube._call(cluster, "get", f"the sync windows of {controller.label}", read)


async def controller_status(
    kube: KubeGateway, cluster: str, controller: GitOpsController, commit: str
) -> ControllerStatus:
    group, version, plural = _RESOURCES[controller.kind]

    def read(api: client.ApiClient) -> dict[str, Any]:
        response: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            group,
            version,
            controller.where,
            plural,
            controller.name,
            _request_timeout=TIMEOUT,
            _preload_content=False,
        )
        found: dict[str, Any] = json.loads(response.data)
        return found

    obj = await kube._call(cluster, "get", controller.label, read)
    return judge(controller, obj, commit)
