"""Off-hours and Flux: suspend the reconciliation of what owns a namespace's workloads while it
sleeps, and restore it exactly on wake.

Flux's next reconciliation would put Git's replica counts back after off-hours scaled them to
0. So before a namespace sleeps, every Flux `Kustomization` and `HelmRelease` that owns a
workload in it (named by the labels Flux puts on what it applies,
`kustomize.toolkit.fluxcd.io/name`+`/namespace` and `helm.toolkit.fluxcd.io/name`+`/namespace`,
or deploying into it by `spec.targetNamespace`) gets `spec.suspend: true`, and what
`spec.suspend` was is written on the object in the same merge patch
(`forgebot.io/original-suspend`, JSON: `null` when it was not set), with the namespace it
sleeps for (`forgebot.io/suspended-for`). Waking puts `spec.suspend` back exactly (removed
when it was not set) and removes both annotations. An object a person had already suspended
is left alone, and stays suspended after the wake.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from core.lazy_import import lazy_module
from integrations.kubernetes.gateway import TIMEOUT, KubeGateway

Listed = Sequence[dict[str, Any]] | None
"""Argo CD Applications a sweep already read (passed through to the Argo CD control)."""

if TYPE_CHECKING:
    from kubernetes import client
else:
    client = lazy_module("kubernetes.client")

ORIGINAL = "forgebot.io/original-suspend"
FOR = "forgebot.io/suspended-for"
KINDS = {
    "kustomize": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    "helm": ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
}
PERMISSIONS = frozenset(
    {(verb, group, plural) for group, _, plural in KINDS.values() for verb in ("list", "patch")}
)
"""The RBAC these calls need (deploy/kubernetes/rbac.yaml grants them)."""


@dataclass(frozen=True)
class FluxObject:
    kind: str
    """`kustomize` or `helm`"""
    namespace: str
    name: str
    suspend: Any
    suspended_for: str
    original: str | None

    @property
    def label(self) -> str:
        what = "Kustomization" if self.kind == "kustomize" else "HelmRelease"
        return f"Flux {what} {self.namespace}/{self.name}"


def _flux_object(kind: str, obj: dict[str, Any]) -> FluxObject:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return FluxObject(
        kind,
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        (obj.get("spec") or {}).get("suspend"),
        str(annotations.get(FOR) or ""),
        annotations.get(ORIGINAL),
    )


@dataclass
class FluxSuspend:
    kube: KubeGateway

    async def _list(self, cluster: str) -> list[tuple[FluxObject, dict[str, Any]]]:
        def read(api: client.ApiClient) -> list[tuple[FluxObject, dict[str, Any]]]:
            found = []
            for kind, (group, version, plural) in KINDS.items():
                try:
                    response: Any = client.CustomObjectsApi(api).list_cluster_custom_object(
                        group, version, plural, _request_timeout=TIMEOUT, _preload_content=False
                    )
                except client.exceptions.ApiException as exc:
                    if exc.status == 404:
                        continue  # Flux is not installed (or not this kind)
                    raise
                for item in json.loads(response.data).get("items") or []:
                    found.append((_flux_object(kind, item), item))
            return found

        return await self.kube._call(cluster, "list", "Flux Kustomizations and HelmReleases", read)

    async def _patch(self, cluster: str, obj: FluxObject, body: dict[str, Any]) -> None:
        group, version, plural = KINDS[obj.kind]

        def write(api: client.ApiClient) -> None:
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                group, version, obj.namespace, plural, obj.name, body, _request_timeout=TIMEOUT
            )

        await self.kube._call(cluster, "update", obj.label, write)

    async def owners(self, cluster: str, namespace: str) -> list[FluxObject]:
        """The Flux objects that own a workload in `namespace` or deploy into it."""
        named: set[tuple[str, str, str]] = set()
        # On a server without a kind (CronJobs before 1.21) no Flux object can own one.
        for workload in await self.kube.list_workloads(cluster, namespace, served_only=True):
            labels = workload.labels
            for kind, prefix in (
                ("kustomize", "kustomize.toolkit.fluxcd.io"),
                ("helm", "helm.toolkit.fluxcd.io"),
            ):
                if f"{prefix}/name" in labels:
                    named.add(
                        (kind, labels.get(f"{prefix}/namespace", ""), labels[f"{prefix}/name"])
                    )
        return [
            obj
            for obj, raw in await self._list(cluster)
            if (obj.kind, obj.namespace, obj.name) in named
            or (raw.get("spec") or {}).get("targetNamespace") == namespace
        ]

    async def pause(self, cluster: str, namespace: str, listed: Listed = None) -> list[str]:
        """Suspend the Flux objects behind `namespace`; their names. (`listed` holds the Argo
        CD Applications a sweep already read; Flux's objects are read here.)"""
        paused = []
        for obj in await self.owners(cluster, namespace):
            if obj.suspend is True or obj.original is not None:
                continue  # suspended by a person, or already by us
            await self._patch(
                cluster,
                obj,
                {
                    "metadata": {
                        "annotations": {ORIGINAL: json.dumps(obj.suspend), FOR: namespace}
                    },
                    "spec": {"suspend": True},
                },
            )
            paused.append(obj.label)
        return paused

    async def resume(self, cluster: str, namespace: str, listed: Listed = None) -> list[str]:
        """Put `spec.suspend` back as it was on the objects suspended for `namespace`."""
        resumed = []
        for obj, _ in await self._list(cluster):
            if obj.original is None or obj.suspended_for != namespace:
                continue
            await self._patch(
                cluster,
                obj,
                {
                    "metadata": {"annotations": {ORIGINAL: None, FOR: None}},
                    "spec": {"suspend": json.loads(obj.original)},
                },
            )
            resumed.append(obj.label)
        return resumed


class SyncControl(Protocol):
    async def pause(self, cluster: str, namespace: str, listed: Listed = None) -> list[str]: ...

    async def resume(self, cluster: str, namespace: str, listed: Listed = None) -> list[str]: ...


@dataclass
class GitOpsPauses:
    """Every controller that would undo a sleep, paused in order and resumed in reverse."""

    controls: list[SyncControl]

    async def pause(self, cluster: str, namespace: str, listed: Listed = None) -> list[str]:
        names: list[str] = []
        for control in self.controls:
            names += await control.pause(cluster, namespace, listed)
        return names

    async def resume(self, cluster: str, namespace: str, listed: Listed = None) -> list[str]:
        names: list[str] = []
        for control in reversed(self.controls):
            names += await control.resume(cluster, namespace, listed)
        return names
