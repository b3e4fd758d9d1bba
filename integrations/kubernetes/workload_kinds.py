"""The gateway that knows which catalog workloads are Argo Rollouts `Rollout`s.

Deploys, rollbacks, history and the follow loop name a workload by cluster, namespace and
name; for the workloads the catalog declares `kind: Rollout`, this gateway reads and patches
the Rollout (`integrations.kubernetes.rollouts_crd`) instead of a Deployment, so none of
those callers needs to know the difference. A Rollout's revisions are its ReplicaSets, as for
a Deployment, with the `rollout.argoproj.io/revision` annotation (`kubectl argo rollouts undo`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from core.catalog import Catalog, KubernetesIdentity
from core.errors import NotFound
from core.lazy_import import lazy_module
from integrations.kubernetes.gateway import TIMEOUT, DeploymentFacts, KubeGateway, Revision
from integrations.kubernetes.manifests import BOT_IDENTITY
from integrations.kubernetes.rollout import RolloutStatus
from integrations.kubernetes.rollouts_crd import REVISION, RolloutsApi

if TYPE_CHECKING:
    from kubernetes import client
else:
    client = lazy_module("kubernetes.client")

Key = tuple[str, str, str]
"""(cluster, namespace, name)"""


def rollout_workloads(catalog: Catalog) -> frozenset[Key]:
    """The catalog's workloads that are `Rollout`s."""
    return frozenset(
        (w.cluster, w.namespace, w.deployment)
        for service in catalog.services
        for w in service.workloads.values()
        if w.is_rollout
    )


class RolloutAwareKube(KubeGateway):
    def __init__(
        self,
        clusters: list[str],
        *,
        rollouts: Iterable[Key] = (),
        kubeconfig: str | None = None,
        concurrency: int = 8,
        identity: str = BOT_IDENTITY,
    ) -> None:
        super().__init__(
            clusters, kubeconfig=kubeconfig, concurrency=concurrency, identity=identity
        )
        self.rollout_keys = frozenset(rollouts)
        self.rollouts = RolloutsApi(self)

    def is_rollout(self, cluster: str, namespace: str, name: str) -> bool:
        return (cluster, namespace, name) in self.rollout_keys

    async def deployment_facts(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        identity: KubernetesIdentity | None = None,
    ) -> DeploymentFacts:
        if self.is_rollout(cluster, namespace, deployment):
            return await self.rollouts.facts(cluster, namespace, deployment)
        return await super().deployment_facts(cluster, namespace, deployment, identity)

    async def set_image(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        identity: KubernetesIdentity | None = None,
    ) -> bool:
        if self.is_rollout(cluster, namespace, deployment):
            return await self.rollouts.set_image(cluster, namespace, deployment, container, image)
        return await super().set_image(cluster, namespace, deployment, container, image, identity)

    async def rollout_status(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        identity: KubernetesIdentity | None = None,
    ) -> RolloutStatus:
        if self.is_rollout(cluster, namespace, deployment):
            return await self.rollouts.status(cluster, namespace, deployment)
        return await super().rollout_status(cluster, namespace, deployment, identity)

    async def _owned_sets(
        self, cluster: str, namespace: str, name: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        found = await self.rollouts.get(cluster, namespace, name)
        uid = (found.get("metadata") or {}).get("uid")

        def read(api: client.ApiClient) -> list[dict[str, Any]]:
            response: Any = client.AppsV1Api(api).list_namespaced_replica_set(
                namespace, _request_timeout=TIMEOUT, _preload_content=False
            )
            items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
            return [
                rs
                for rs in items
                if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])
            ]

        return found, await self._call(cluster, "list", f"the revisions of {name}", read)

    async def revisions(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        identity: KubernetesIdentity | None = None,
    ) -> list[Revision]:
        if not self.is_rollout(cluster, namespace, deployment):
            return await super().revisions(cluster, namespace, deployment, identity)
        _, sets = await self._owned_sets(cluster, namespace, deployment)
        found = [
            Revision(
                number=int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0),
                replica_set=rs["metadata"]["name"],
                images={
                    c["name"]: c.get("image") or ""
                    for c in rs["spec"]["template"]["spec"].get("containers") or []
                },
                created=rs["metadata"].get("creationTimestamp"),
                replicas=int(rs["spec"].get("replicas") or 0),
            )
            for rs in sets
        ]
        return sorted(found, key=lambda r: r.number, reverse=True)

    async def rollback(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        revision: int,
        identity: KubernetesIdentity | None = None,
    ) -> None:
        """`kubectl argo rollouts undo --to-revision`: the old ReplicaSet's pod template (without
        its hash label) back on the Rollout, guarded by the resourceVersion read."""
        if not self.is_rollout(cluster, namespace, deployment):
            await super().rollback(cluster, namespace, deployment, revision, identity)
            return
        found, sets = await self._owned_sets(cluster, namespace, deployment)
        target = next(
            (
                rs
                for rs in sets
                if (rs["metadata"].get("annotations") or {}).get(REVISION) == str(revision)
            ),
            None,
        )
        if target is None:
            raise NotFound(f"revision {revision} of {deployment} no longer exists")
        template = json.loads(json.dumps(target["spec"]["template"]))
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.pop("rollouts-pod-template-hash", None)
        template.setdefault("metadata", {})["labels"] = labels
        await self.rollouts.replace_template(cluster, namespace, deployment, found, template)
