"""Off-hours and Argo CD: pause an Application's automated sync while its namespace sleeps.

Argo CD's self-heal would put the replica counts of Git back minutes after off-hours scaled
them to 0. So before a namespace sleeps, every Application deploying into it (found by
`spec.destination.namespace`, across the cluster) has `spec.syncPolicy.automated` removed, and
what it was is kept on the Application itself, in the same merge patch:
`forgebot.io/original-automated` (JSON). The patch is one write, so the original is never lost
and never half-applied. Waking puts `automated` back exactly (prune, selfHeal, allowEmpty as
they were) and removes the annotation. An Application without automated sync, or already
paused by forgebot, is left alone; one whose annotation is gone when it wakes is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.lazy_import import lazy_module
from integrations.kubernetes.gateway import TIMEOUT, KubeGateway

if TYPE_CHECKING:
    from kubernetes import client
else:
    client = lazy_module("kubernetes.client")

ORIGINAL = "forgebot.io/original-automated"
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
PERMISSIONS = frozenset({("list", GROUP, PLURAL), ("patch", GROUP, PLURAL)})
"""The RBAC these calls need (deploy/kubernetes/rbac.yaml grants them)."""


@dataclass(frozen=True)
class Application:
    namespace: str
    name: str
    automated: dict[str, Any] | None
    original: dict[str, Any] | None
    """What forgebot recorded when it paused it (None: not paused by forgebot)."""


def _application(obj: dict[str, Any]) -> Application:
    meta = obj.get("metadata") or {}
    policy = (obj.get("spec") or {}).get("syncPolicy") or {}
    recorded = (meta.get("annotations") or {}).get(ORIGINAL)
    return Application(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        policy.get("automated"),
        json.loads(recorded) if recorded else None,
    )


@dataclass
class ArgoAutoSync:
    kube: KubeGateway

    async def applications(self, cluster: str, namespace: str) -> list[Application]:
        """Argo CD Applications (any namespace) that deploy into `namespace`; none when the
        cluster does not serve Argo CD."""

        def read(api: client.ApiClient) -> list[dict[str, Any]]:
            try:
                response: Any = client.CustomObjectsApi(api).list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=TIMEOUT, _preload_content=False
                )
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    return []
                raise
            items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
            return items

        items = await self.kube._call(cluster, "list", "Argo CD applications", read)
        return [
            _application(item)
            for item in items
            if ((item.get("spec") or {}).get("destination") or {}).get("namespace") == namespace
        ]

    async def _patch(self, cluster: str, app: Application, body: dict[str, Any]) -> None:
        def write(api: client.ApiClient) -> None:
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                GROUP, VERSION, app.namespace, PLURAL, app.name, body, _request_timeout=TIMEOUT
            )

        await self.kube._call(cluster, "update", f"Argo CD application {app.name}", write)

    async def pause(self, cluster: str, namespace: str) -> list[str]:
        """Pause automated sync of the Applications deploying into `namespace`; their names."""
        paused = []
        for app in await self.applications(cluster, namespace):
            if app.automated is None or app.original is not None:
                continue
            await self._patch(
                cluster,
                app,
                {
                    "metadata": {"annotations": {ORIGINAL: json.dumps(app.automated)}},
                    "spec": {"syncPolicy": {"automated": None}},
                },
            )
            paused.append(app.name)
        return paused

    async def resume(self, cluster: str, namespace: str) -> list[str]:
        """Put back the automated sync forgebot paused; the names of the Applications."""
        resumed = []
        for app in await self.applications(cluster, namespace):
            if app.original is None:
                continue
            await self._patch(
                cluster,
                app,
                {
                    "metadata": {"annotations": {ORIGINAL: None}},
                    "spec": {"syncPolicy": {"automated": app.original}},
                },
            )
            resumed.append(app.name)
        return resumed
