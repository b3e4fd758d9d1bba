"""Scaling operations for off-hours: read what a namespace runs, and patch replica counts,
CronJob suspension and HPA minimums with optimistic concurrency.

Every call goes through the gateway's thread + semaphore (`KubeGateway._call`), so a sweep over
hundreds of namespaces never has more requests in flight than the configured limit. Reads and
patches skip the client's model deserialisation (`_preload_content=False`): a sweep only needs a
handful of fields, and building full models for thousands of objects costs more CPU than the
requests themselves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.lazy_import import lazy_module
from integrations.kubernetes.api_support import ApiNotServed, served
from integrations.kubernetes.gateway import TIMEOUT, KubeGateway

if TYPE_CHECKING:
    from kubernetes import client
    from kubernetes.client import exceptions as kube_exceptions
else:
    client = lazy_module("kubernetes.client")
    kube_exceptions = lazy_module("kubernetes.client.exceptions")

MERGE_PATCH = "application/merge-patch+json"
PAGE_SIZE = 500
"""Objects per page of a cluster-wide list (kubectl's default chunk size)."""

DEPLOYMENT = "Deployment"
STATEFUL_SET = "StatefulSet"
CRON_JOB = "CronJob"
HPA = "HorizontalPodAutoscaler"


@dataclass(frozen=True)
class Scalable:
    """The fields of one object that off-hours reads and writes."""

    kind: str
    name: str
    resource_version: str
    annotations: dict[str, str] = field(default_factory=dict)
    replicas: int | None = None
    """Deployments and StatefulSets: spec.replicas (the API defaults it to 1)."""
    suspended: bool = False
    """CronJobs: spec.suspend."""
    min_replicas: int | None = None
    """HPAs: spec.minReplicas (the API defaults it to 1)."""


_SERVED_AS = {
    DEPLOYMENT: ("apps/v1", "deployments"),
    STATEFUL_SET: ("apps/v1", "statefulsets"),
    CRON_JOB: ("batch/v1", "cronjobs"),
    HPA: ("autoscaling/v2", "horizontalpodautoscalers"),
}


class KindsNotServed(ApiNotServed):
    """Some kinds' APIs are missing on the cluster (it is too old); `found` holds what the
    served kinds listed, so a sweep can still act on those and report the rest."""

    def __init__(self, lacking: list[ApiNotServed], found: list[Scalable]) -> None:
        first = lacking[0]
        super().__init__(first.cluster, first.group_version, first.resource)
        self.args = ("; ".join(str(e) for e in lacking),)
        self.kinds = [
            k
            for k, served_as in _SERVED_AS.items()
            if any((e.group_version, e.resource) == served_as for e in lacking)
        ]
        self.found = found

    def __str__(self) -> str:
        return str(self.args[0])


def _api(kind: str, api: client.ApiClient) -> tuple[Any, str]:
    if kind == DEPLOYMENT:
        return client.AppsV1Api(api), "deployment"
    if kind == STATEFUL_SET:
        return client.AppsV1Api(api), "stateful_set"
    if kind == CRON_JOB:
        return client.BatchV1Api(api), "cron_job"
    if kind == HPA:
        return client.AutoscalingV2Api(api), "horizontal_pod_autoscaler"
    raise ValueError(f"off-hours does not scale {kind}")


def _namespace_lister(api: client.ApiClient) -> Callable[..., Any]:
    return client.CoreV1Api(api).list_namespace


def _all_namespaces(kind: str) -> Callable[[client.ApiClient], Callable[..., Any]]:
    def lister(api: client.ApiClient) -> Callable[..., Any]:
        target, suffix = _api(kind, api)
        return getattr(target, f"list_{suffix}_for_all_namespaces")  # type: ignore[no-any-return]

    return lister


def _raw(response: Any) -> Any:
    """The body of an unpreloaded response; errors raise as the preloaded call would."""
    status = int(getattr(response, "status", 200))
    if status >= 400:
        raise kube_exceptions.ApiException(http_resp=response)
    return json.loads(response.data or b"{}")


def _scalable(kind: str, obj: dict[str, Any]) -> Scalable:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    return Scalable(
        kind=kind,
        name=str(meta.get("name", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        annotations=dict(meta.get("annotations") or {}),
        replicas=int(spec.get("replicas", 1)) if kind in (DEPLOYMENT, STATEFUL_SET) else None,
        suspended=bool(spec.get("suspend", False)) if kind == CRON_JOB else False,
        min_replicas=int(spec.get("minReplicas", 1)) if kind == HPA else None,
    )


@dataclass(frozen=True)
class NamespaceMeta:
    labels: dict[str, str]
    annotations: dict[str, str]
    phase: str


@dataclass
class ClusterSnapshot:
    """One off-hours pass's read of a cluster: every namespace, and every scalable object by
    namespace, from a few paged cluster-wide lists instead of four lists per namespace."""

    namespaces: dict[str, NamespaceMeta] = field(default_factory=dict)
    scalables: dict[str, list[Scalable]] = field(default_factory=dict)
    calls: int = 0
    """List requests the snapshot took (pages included)."""
    lacking: list[ApiNotServed] = field(default_factory=list)
    """Kinds the cluster does not serve (too old): their namespaces report it, once each."""


class ScalingGateway:
    """Off-hours' view of a cluster, on top of the shared gateway's clients and limits."""

    KINDS = (DEPLOYMENT, STATEFUL_SET, CRON_JOB, HPA)

    def __init__(self, kube: KubeGateway, *, page_size: int = PAGE_SIZE) -> None:
        self.kube = kube
        self.page_size = page_size

    async def namespace_annotations(self, cluster: str, namespace: str) -> dict[str, str]:
        """Raises NotFound when the namespace is gone."""
        info = await self.kube.get_namespace(cluster, namespace)
        return info.annotations

    async def annotated_namespaces(
        self, cluster: str, annotation: str
    ) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """(name, labels, annotations) of the namespaces carrying `annotation` (annotations
        cannot be selected on the server, so all namespaces are listed and filtered here)."""
        found = await self.kube.list_namespaces(cluster, "")
        return [
            (n.name, n.labels, n.annotations)
            for n in found
            if annotation in n.annotations and n.phase != "Terminating"
        ]

    async def list_scalables(self, cluster: str, namespace: str) -> list[Scalable]:
        """Every object off-hours scales. On a cluster too old to serve some of the kinds,
        raises KindsNotServed carrying what the others listed."""

        def lister(kind: str) -> Callable[[client.ApiClient], list[Scalable]]:
            def read(api: client.ApiClient) -> list[Scalable]:
                target, suffix = _api(kind, api)
                listed = served(
                    cluster,
                    *_SERVED_AS[kind],
                    lambda: _raw(
                        getattr(target, f"list_namespaced_{suffix}")(
                            namespace, _request_timeout=TIMEOUT, _preload_content=False
                        )
                    ),
                )
                return [_scalable(kind, item) for item in listed.get("items") or []]

            return read

        results = await asyncio.gather(
            *(
                self.kube._call(cluster, "list", f"{kind}s in {namespace}", lister(kind))
                for kind in self.KINDS
            ),
            return_exceptions=True,
        )
        found: list[Scalable] = []
        lacking: list[ApiNotServed] = []
        for result in results:
            if isinstance(result, ApiNotServed):
                lacking.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                found.extend(result)
        if lacking:
            raise KindsNotServed(lacking, found)
        return found

    async def snapshot(self, cluster: str) -> ClusterSnapshot:
        """Every namespace and scalable object of `cluster`, read as raw JSON in pages of
        `page_size` (memory stays bounded by a page, whatever the cluster's size)."""
        snapshot = ClusterSnapshot()

        async def namespaces() -> None:
            async for items in self._pages(cluster, "namespaces", _namespace_lister, snapshot):
                for item in items:
                    meta = item.get("metadata") or {}
                    snapshot.namespaces[str(meta.get("name", ""))] = NamespaceMeta(
                        labels=dict(meta.get("labels") or {}),
                        annotations=dict(meta.get("annotations") or {}),
                        phase=str((item.get("status") or {}).get("phase") or ""),
                    )

        async def objects(kind: str) -> None:
            pages = self._pages(
                cluster, f"{kind}s", _all_namespaces(kind), snapshot, _SERVED_AS[kind]
            )
            try:
                async for items in pages:
                    for item in items:
                        namespace = str((item.get("metadata") or {}).get("namespace", ""))
                        snapshot.scalables.setdefault(namespace, []).append(_scalable(kind, item))
            except ApiNotServed as exc:
                snapshot.lacking.append(exc)

        await asyncio.gather(namespaces(), *(objects(kind) for kind in self.KINDS))
        return snapshot

    async def _pages(
        self,
        cluster: str,
        what: str,
        lister: Callable[[client.ApiClient], Callable[..., Any]],
        snapshot: ClusterSnapshot,
        served_as: tuple[str, str] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        token: str | None = None
        while True:

            def page(api: client.ApiClient, token: str | None = token) -> Any:
                options: dict[str, Any] = {"limit": self.page_size}
                if token:
                    options["_continue"] = token

                def call() -> Any:
                    return lister(api)(_request_timeout=TIMEOUT, _preload_content=False, **options)

                return _raw(served(cluster, *served_as, call) if served_as else call())

            body = await self.kube._call(cluster, "list", f"{what} in all namespaces", page)
            snapshot.calls += 1
            yield list(body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue") or None
            if token is None:
                return

    async def read(self, cluster: str, namespace: str, kind: str, name: str) -> Scalable:
        def read(api: client.ApiClient) -> Scalable:
            target, suffix = _api(kind, api)
            response = getattr(target, f"read_namespaced_{suffix}")(
                name, namespace, _request_timeout=TIMEOUT, _preload_content=False
            )
            return _scalable(kind, _raw(response))

        return await self.kube._call(cluster, "get", f"{kind} {name} in {namespace}", read)

    async def patch(
        self, cluster: str, namespace: str, kind: str, name: str, body: dict[str, Any]
    ) -> Scalable:
        """A JSON merge patch. With `metadata.resourceVersion` in the body the server refuses
        it (409, raised as Conflict) if the object changed since it was read."""

        def write(api: client.ApiClient) -> Scalable:
            target, suffix = _api(kind, api)
            response = getattr(target, f"patch_namespaced_{suffix}")(
                name,
                namespace,
                body,
                _request_timeout=TIMEOUT,
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
            return _scalable(kind, _raw(response))

        return await self.kube._call(cluster, "patch", f"{kind} {name} in {namespace}", write)
