"""The Kubernetes gateway on the official client: one API client per catalog cluster.

Clusters are kubeconfig contexts of the same name (`KUBECONFIG`), or the in-cluster
configuration when there is no kubeconfig. The client is blocking, so every call runs in a
thread behind one semaphore: the API servers never see more than `concurrency` requests in
flight from this process. Every write is idempotent ("apply": create, or replace what exists),
because provisioning is re-run after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from core import faults
from core.catalog import KubernetesIdentity
from core.errors import Conflict, DependencyUnavailable, ForgebotError, NotFound
from core.lazy_import import lazy_module

if TYPE_CHECKING:
    from kubernetes import client, config
    from kubernetes.client import exceptions as kube_exceptions
else:
    # The Kubernetes client loads on first use (the start-up warm-up, after readiness).
    client = lazy_module("kubernetes.client")
    config = lazy_module("kubernetes.config")
    kube_exceptions = lazy_module("kubernetes.client.exceptions")
from core.metrics import observe_call
from integrations.kubernetes import manifests
from integrations.kubernetes.api_support import ApiNotServed, missing_apis, served
from integrations.kubernetes.errors import translate
from integrations.kubernetes.rollout import RolloutStatus, rollback_template, status_of

log = logging.getLogger(__name__)
T = TypeVar("T")
_READS = frozenset({"get", "list", "dry-run", "read"})
"""Verbs that change nothing (the fault hook's `kube.write` step skips them)."""
TIMEOUT = (3.0, 15.0)  # connect, read
DIAGNOSTICS_TIMEOUT = (2.0, 8.0)
"""A person waits for `/forge status|pods|events|logs`: fail within seconds, not minutes."""


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    phase: str
    resource_version: str


REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Revision:
    number: int
    replica_set: str
    images: dict[str, str]
    created: Any
    replicas: int


@dataclass(frozen=True)
class DeploymentFacts:
    """What the deploy gate needs to know about a Deployment before it changes it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    images: dict[str, str]
    revision: int
    replicas: int
    autoscalers: list[str]
    """Names of the HorizontalPodAutoscalers whose scale target is this Deployment."""
    autoscalers_unknown: str = ""
    """Why `autoscalers` could not be read (a cluster too old to serve autoscaling/v2)."""


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    replicas: int | None
    ready: int | None
    labels: dict[str, str]
    annotations: dict[str, str]
    suspended: bool = False


def _workload(
    kind: str, obj: Any, replicas: int | None, ready: int | None, *, suspended: bool = False
) -> Workload:
    meta = obj.metadata
    return Workload(
        kind,
        meta.name,
        replicas,
        ready or 0 if replicas is not None else None,
        dict(meta.labels or {}),
        dict(meta.annotations or {}),
        suspended,
    )


def _namespace_info(obj: Any) -> NamespaceInfo:
    meta = obj.metadata
    return NamespaceInfo(
        name=meta.name,
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        phase=(obj.status.phase if obj.status else "") or "",
        resource_version=meta.resource_version or "",
    )


class KubeGateway:
    def __init__(
        self,
        clusters: list[str],
        *,
        kubeconfig: str | None = None,
        concurrency: int = 8,
        identity: str = manifests.BOT_IDENTITY,
    ) -> None:
        self.clusters = clusters
        self.identity = identity
        """Who forgebot is in the clusters: the subject of its RoleBinding in the namespaces it
        provisions (`apply_role_binding`)."""
        self._kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        self._semaphore = asyncio.Semaphore(concurrency)
        # Its own threads, as many as the limit: the loop's default pool has min(32, cores + 4)
        # workers, which on a small machine caps calls in flight below the configured limit.
        self._threads = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kube")
        self._clients: dict[tuple[str, str | None, tuple[str, ...]], client.ApiClient] = {}

    def _client(
        self, cluster: str, as_user: str | None = None, as_groups: tuple[str, ...] = ()
    ) -> client.ApiClient:
        if cluster not in self.clusters:
            raise ForgebotError(
                f"unknown cluster {cluster}; the catalog knows {', '.join(self.clusters) or 'none'}"
            )
        key = (cluster, as_user, as_groups)
        if key not in self._clients:
            configuration = client.Configuration()
            try:
                if self._kubeconfig:
                    config.load_kube_config(  # type: ignore[no-untyped-call]
                        config_file=self._kubeconfig,
                        context=cluster,
                        client_configuration=configuration,
                    )
                else:
                    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except (config.ConfigException, OSError) as exc:
                where = (
                    f"the kubeconfig {self._kubeconfig}"
                    if self._kubeconfig
                    else "the in-cluster service account"
                )
                raise DependencyUnavailable(
                    f"Kubernetes is not configured for cluster {cluster}: {where} has no usable "
                    f"context of that name ({exc}); set KUBECONFIG or run in the cluster"
                ) from None
            configuration.retries = 0  # our own retry policy decides; fail fast on a dead cluster
            api = client.ApiClient(configuration)
            if as_user:
                api.set_default_header("Impersonate-User", as_user)  # type: ignore[no-untyped-call]
                # The client keeps one value per header name, so one group can be impersonated.
                for group in as_groups[:1]:
                    api.set_default_header("Impersonate-Group", group)  # type: ignore[no-untyped-call]
            self._clients[key] = api
        return self._clients[key]

    async def _call(
        self,
        cluster: str,
        verb: str,
        what: str,
        fn: Callable[[client.ApiClient], T],
        identity: KubernetesIdentity | None = None,
    ) -> T:
        api = (
            self._client(cluster, identity.user, tuple(identity.groups[:1]))
            if identity is not None
            else self._client(cluster)
        )
        async with self._semaphore:
            with observe_call("kubernetes", verb):
                try:
                    call = functools.partial(contextvars.copy_context().run, fn, api)
                    result = await asyncio.get_running_loop().run_in_executor(self._threads, call)
                    if verb not in _READS:
                        faults.point("kube.write")
                    return result
                except ForgebotError:
                    raise
                except Exception as exc:
                    raise translate(exc, cluster=cluster, verb=verb, what=what) from None

    async def warm(self) -> None:
        """Load each cluster's client and dry-run forgebot's writes, off the request path (see
        `_warm_calls`), and log each API forgebot needs that the cluster lacks (too old); a
        cluster that is down is logged, not fatal."""
        for cluster in self.clusters:
            try:
                # The client's import (about a second of CPU) and the kubeconfig in a thread:
                # on the event loop they held up the first Slack requests after readiness.
                await asyncio.to_thread(self._client, cluster)
                await self._call(cluster, "dry-run", "forgebot's writes", _warm_calls)
                lacking = await self._call(
                    cluster,
                    "get",
                    "the API discovery",
                    functools.partial(_missing_apis, cluster=cluster),
                )
            except ForgebotError as exc:
                log.warning("cluster %s is not reachable at start-up: %s", cluster, exc)
                continue
            for problem in lacking:
                log.warning("%s", problem)

    # --- namespaces ------------------------------------------------------------------------
    async def create_namespace(
        self, cluster: str, name: str, labels: dict[str, str], annotations: dict[str, str]
    ) -> NamespaceInfo:
        body: Any = manifests.namespace(name, labels, annotations)
        created = await self._call(
            cluster,
            "create",
            f"namespace {name}",
            lambda api: client.CoreV1Api(api).create_namespace(body, _request_timeout=TIMEOUT),
        )
        return _namespace_info(created)

    async def get_namespace(self, cluster: str, name: str) -> NamespaceInfo:
        found = await self._call(
            cluster,
            "get",
            f"namespace {name}",
            lambda api: client.CoreV1Api(api).read_namespace(name, _request_timeout=TIMEOUT),
        )
        return _namespace_info(found)

    async def list_namespaces(self, cluster: str, label_selector: str) -> list[NamespaceInfo]:
        found = await self._call(
            cluster,
            "list",
            "namespaces",
            lambda api: client.CoreV1Api(api).list_namespace(
                label_selector=label_selector, _request_timeout=TIMEOUT
            ),
        )
        return [_namespace_info(n) for n in found.items]

    async def patch_namespace(
        self,
        cluster: str,
        name: str,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> NamespaceInfo:
        patch: dict[str, Any] = {"metadata": {}}
        if labels is not None:
            patch["metadata"]["labels"] = labels
        if annotations is not None:
            patch["metadata"]["annotations"] = annotations
        patched = await self._call(
            cluster,
            "patch",
            f"namespace {name}",
            lambda api: client.CoreV1Api(api).patch_namespace(
                name, patch, _request_timeout=TIMEOUT
            ),
        )
        return _namespace_info(patched)

    async def delete_namespace(self, cluster: str, name: str) -> None:
        """Delete a namespace forgebot created, and only such a namespace: one without
        forgebot's label (kube-system, a team's own namespace) is refused here, whatever the
        RBAC allows (the admission policy in docs/security.md refuses it in the cluster too)."""
        found = await self.get_namespace(cluster, name)
        if found.labels.get(manifests.MANAGED_BY) != manifests.MANAGED_BY_VALUE:
            log.error(
                "refused to delete namespace %s on %s: forgebot did not create it", name, cluster
            )
            raise ForgebotError(
                f"refusing to delete namespace {name}: forgebot did not create it "
                f"(no {manifests.MANAGED_BY}={manifests.MANAGED_BY_VALUE} label)"
            )
        await self._call(
            cluster,
            "delete",
            f"namespace {name}",
            lambda api: client.CoreV1Api(api).delete_namespace(name, _request_timeout=TIMEOUT),
        )

    # --- namespace contents (idempotent apply) -----------------------------------------------
    async def _apply(
        self, cluster: str, namespace: str, api_type: Any, kind: str, body: Any, what: str
    ) -> None:
        """Create the object, or patch the one that exists: safe to repeat."""
        name = body["metadata"]["name"]

        def create(api: client.ApiClient) -> Any:
            return getattr(api_type(api), f"create_namespaced_{kind}")(
                namespace, body, _request_timeout=TIMEOUT
            )

        def patch(api: client.ApiClient) -> Any:
            return getattr(api_type(api), f"patch_namespaced_{kind}")(
                name, namespace, body, _request_timeout=TIMEOUT
            )

        try:
            await self._call(cluster, "create", f"{what} in {namespace}", create)
        except Conflict:
            await self._call(cluster, "update", f"{what} in {namespace}", patch)

    async def apply_resource_quota(
        self, cluster: str, namespace: str, cpu: Decimal, memory_gib: Decimal, pods: int
    ) -> None:
        body = manifests.resource_quota(namespace, cpu, memory_gib, pods)
        await self._apply(
            cluster, namespace, client.CoreV1Api, "resource_quota", body, "the resource quota"
        )

    async def apply_limit_range(self, cluster: str, namespace: str) -> None:
        body = manifests.limit_range(namespace)
        await self._apply(
            cluster, namespace, client.CoreV1Api, "limit_range", body, "the limit range"
        )

    async def apply_role_binding(self, cluster: str, namespace: str, group: str) -> None:
        """The team's `edit` binding, and forgebot's own rights on the namespace's workloads
        (off-hours scaling, diagnostics, a preview's Deployment): it has none there otherwise."""
        await self._apply(
            cluster,
            namespace,
            client.RbacAuthorizationV1Api,
            "role_binding",
            manifests.bot_role_binding(namespace, self.identity),
            "forgebot's role binding",
        )
        body = manifests.role_binding(namespace, group)
        await self._apply(
            cluster,
            namespace,
            client.RbacAuthorizationV1Api,
            "role_binding",
            body,
            "the role binding",
        )

    async def apply_network_policy(self, cluster: str, namespace: str) -> None:
        body = manifests.network_policy(namespace)
        await self._apply(
            cluster, namespace, client.NetworkingV1Api, "network_policy", body, "the network policy"
        )

    async def apply_deployment(self, cluster: str, namespace: str, body: dict[str, Any]) -> None:
        """Create the Deployment, or patch it to `body` (a changed image starts a rollout)."""
        await self._apply(
            cluster, namespace, client.AppsV1Api, "deployment", body, "the deployment"
        )

    async def apply_preview_routing(
        self,
        cluster: str,
        namespace: str,
        service: dict[str, Any],
        ingress: dict[str, Any],
        allow: dict[str, Any],
    ) -> None:
        """A preview's Service, Ingress and the network policy letting the ingress through."""
        await self._apply(cluster, namespace, client.CoreV1Api, "service", service, "the service")
        await self._apply(
            cluster, namespace, client.NetworkingV1Api, "ingress", ingress, "the ingress"
        )
        await self._apply(
            cluster,
            namespace,
            client.NetworkingV1Api,
            "network_policy",
            allow,
            "the ingress network policy",
        )

    # --- workloads -------------------------------------------------------------------------
    async def list_workloads(
        self,
        cluster: str,
        namespace: str,
        identity: KubernetesIdentity | None = None,
        *,
        served_only: bool = False,
    ) -> list[Workload]:
        """Deployments, StatefulSets and CronJobs in a namespace, as the identity if given.
        A kind the server does not serve raises `ApiNotServed` (naming the release that
        serves it), unless `served_only`: then that kind is simply absent."""

        def read(api: client.ApiClient) -> list[Workload]:
            apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)
            deployments = apps.list_namespaced_deployment(namespace, _request_timeout=TIMEOUT).items
            stateful = apps.list_namespaced_stateful_set(namespace, _request_timeout=TIMEOUT).items
            try:
                cronjobs = served(
                    cluster,
                    "batch/v1",
                    "cronjobs",
                    lambda: (
                        batch.list_namespaced_cron_job(namespace, _request_timeout=TIMEOUT).items
                    ),
                )
            except ApiNotServed:
                if not served_only:
                    raise
                cronjobs = []  # a server without batch/v1 CronJobs has none forgebot manages
            return (
                [
                    _workload(
                        "Deployment", d, d.spec.replicas, d.status.ready_replicas if d.status else 0
                    )
                    for d in deployments
                ]
                + [
                    _workload(
                        "StatefulSet",
                        t,
                        t.spec.replicas,
                        t.status.ready_replicas if t.status else 0,
                    )
                    for t in stateful
                ]
                + [
                    _workload("CronJob", c, None, None, suspended=bool(c.spec.suspend))
                    for c in cronjobs
                ]
            )

        return await self._call(cluster, "list", f"workloads in {namespace}", read, identity)

    async def revisions(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        identity: KubernetesIdentity | None = None,
    ) -> list[Revision]:
        """The Deployment's ReplicaSets as `kubectl rollout history` sees them, newest first."""

        def read(api: client.ApiClient) -> list[Revision]:
            apps = client.AppsV1Api(api)
            # The models type every field as optional; a server always fills these.
            found: Any = apps.read_namespaced_deployment(
                deployment, namespace, _request_timeout=TIMEOUT
            )
            sets: list[Any] = apps.list_namespaced_replica_set(
                namespace, _request_timeout=TIMEOUT
            ).items
            owned = [
                rs
                for rs in sets
                if any(o.uid == found.metadata.uid for o in rs.metadata.owner_references or [])
            ]
            revisions = [
                Revision(
                    number=int((rs.metadata.annotations or {}).get(REVISION, "0")),
                    replica_set=rs.metadata.name,
                    images={c.name: c.image or "" for c in rs.spec.template.spec.containers},
                    created=rs.metadata.creation_timestamp,
                    replicas=rs.spec.replicas or 0,
                )
                for rs in owned
            ]
            return sorted(revisions, key=lambda r: r.number, reverse=True)

        return await self._call(
            cluster, "list", f"the revisions of {deployment} in {namespace}", read, identity
        )

    async def rollout_status(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        identity: KubernetesIdentity | None = None,
    ) -> RolloutStatus:
        def read(api: client.ApiClient) -> RolloutStatus:
            # Raw JSON: a followed rollout is read every second (see `status_of`).
            found = _json(
                client.AppsV1Api(api).read_namespaced_deployment(
                    deployment, namespace, _request_timeout=TIMEOUT, _preload_content=False
                )
            )
            status = status_of(found, [])
            if not status.failed:
                return status
            # Only a failed rollout needs its pods: they say why (image pull, crash loop...).
            labels = ((found.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            pods = _json(
                client.CoreV1Api(api).list_namespaced_pod(
                    namespace,
                    label_selector=",".join(f"{k}={v}" for k, v in labels.items()),
                    _request_timeout=TIMEOUT,
                    _preload_content=False,
                )
            )
            return status_of(found, list(pods.get("items") or []))

        return await self._call(
            cluster, "get", f"deployment {deployment} in {namespace}", read, identity
        )

    async def rollback(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        revision: int,
        identity: KubernetesIdentity | None = None,
    ) -> None:
        """Put the pod template of `revision` back, with optimistic concurrency."""

        def read(api: client.ApiClient) -> Any:
            apps = client.AppsV1Api(api)
            found: Any = apps.read_namespaced_deployment(
                deployment, namespace, _request_timeout=TIMEOUT
            )
            sets: list[Any] = apps.list_namespaced_replica_set(
                namespace, _request_timeout=TIMEOUT
            ).items
            target = next(
                (
                    rs
                    for rs in sets
                    if any(o.uid == found.metadata.uid for o in rs.metadata.owner_references or [])
                    and (rs.metadata.annotations or {}).get(REVISION) == str(revision)
                ),
                None,
            )
            if target is None:
                raise NotFound(f"revision {revision} of {deployment} no longer exists")
            return found, rollback_template(target.spec.template, api)

        def write(api: client.ApiClient, current: Any) -> Any:
            found, template = current
            body = {
                "metadata": {"resourceVersion": found.metadata.resource_version},
                "spec": {"template": template},
            }
            return client.AppsV1Api(api).patch_namespaced_deployment(
                deployment, namespace, body, _request_timeout=TIMEOUT
            )

        await self.patch_with_retry(cluster, f"deployment {deployment} in {namespace}", read, write)

    async def deployment_facts(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        identity: KubernetesIdentity | None = None,
    ) -> DeploymentFacts:
        def read(api: client.ApiClient) -> DeploymentFacts:
            found = _json(
                client.AppsV1Api(api).read_namespaced_deployment(
                    deployment, namespace, _request_timeout=TIMEOUT, _preload_content=False
                )
            )
            unknown = ""
            try:
                scalers = _json(
                    served(
                        cluster,
                        "autoscaling/v2",
                        "horizontalpodautoscalers",
                        lambda: client.AutoscalingV2Api(
                            api
                        ).list_namespaced_horizontal_pod_autoscaler(
                            namespace, _request_timeout=TIMEOUT, _preload_content=False
                        ),
                    )
                )
            except ApiNotServed as exc:
                # Only informs the deploy gate: say so rather than refuse the deploy.
                scalers, unknown = {}, str(exc)
            meta, spec = found.get("metadata") or {}, found.get("spec") or {}
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
            annotations = dict(meta.get("annotations") or {})
            return DeploymentFacts(
                labels=dict(meta.get("labels") or {}),
                annotations=annotations,
                images={c["name"]: c.get("image") or "" for c in containers},
                revision=int(annotations.get(REVISION, "0")),
                replicas=int(spec["replicas"]) if spec.get("replicas") is not None else 1,
                autoscalers=[
                    h["metadata"]["name"]
                    for h in scalers.get("items") or []
                    if (h.get("spec") or {}).get("scaleTargetRef", {}).get("kind") == "Deployment"
                    and h["spec"]["scaleTargetRef"].get("name") == deployment
                ],
                autoscalers_unknown=unknown,
            )

        return await self._call(
            cluster, "get", f"deployment {deployment} in {namespace}", read, identity
        )

    async def set_image(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        identity: KubernetesIdentity | None = None,
    ) -> bool:
        """Point one container at `image`, with optimistic concurrency. False when it already
        runs that image (a resumed deploy patches nothing and starts no new rollout)."""

        def read(api: client.ApiClient) -> Any:
            found: Any = client.AppsV1Api(api).read_namespaced_deployment(
                deployment, namespace, _request_timeout=TIMEOUT
            )
            names = [c.name for c in found.spec.template.spec.containers]
            if container not in names:
                raise NotFound(
                    f"deployment {deployment} in {namespace} has no container {container} "
                    f"(it has {', '.join(names)}); fix the catalog's workload entry"
                )
            return found

        changed = False

        def write(api: client.ApiClient, found: Any) -> Any:
            nonlocal changed
            changed = False
            containers = api.sanitize_for_serialization(found.spec.template.spec.containers)  # type: ignore[no-untyped-call]
            target = next(c for c in containers if c["name"] == container)
            if target.get("image") == image:
                return found
            target["image"] = image
            changed = True
            # The whole list, so a strategic merge and a plain merge patch mean the same.
            body = {
                "metadata": {"resourceVersion": found.metadata.resource_version},
                "spec": {"template": {"spec": {"containers": containers}}},
            }
            return client.AppsV1Api(api).patch_namespaced_deployment(
                deployment, namespace, body, _request_timeout=TIMEOUT
            )

        await self.patch_with_retry(cluster, f"deployment {deployment} in {namespace}", read, write)
        return changed

    # --- optimistic concurrency ----------------------------------------------------------------
    async def patch_with_retry(
        self,
        cluster: str,
        what: str,
        read: Callable[[client.ApiClient], Any],
        write: Callable[[client.ApiClient, Any], Any],
        attempts: int = 5,
    ) -> Any:
        """Read, modify and write with the read's resourceVersion; on 409 read again (bounded)."""
        for attempt in range(attempts):
            current = await self._call(cluster, "get", what, read)

            def write_current(api: client.ApiClient, seen: Any = current) -> Any:
                return write(api, seen)

            try:
                return await self._call(cluster, "update", what, write_current)
            except Conflict:
                await asyncio.sleep(0.05 * (2**attempt) * (0.5 + random.random()))
        raise Conflict(
            f"{what} on {cluster} kept changing under us ({attempts} attempts); try again"
        )

    # --- read-only diagnostics (pods, events, logs; never Secrets) -----------------------------
    async def read_deployment(
        self,
        cluster: str,
        namespace: str,
        deployment: str,
        identity: KubernetesIdentity | None = None,
    ) -> dict[str, Any]:
        def read(api: client.ApiClient) -> dict[str, Any]:
            return _json(
                client.AppsV1Api(api).read_namespaced_deployment(
                    deployment,
                    namespace,
                    _request_timeout=DIAGNOSTICS_TIMEOUT,
                    _preload_content=False,
                )
            )

        return await self._call(
            cluster, "get", f"deployment {deployment} in {namespace}", read, identity
        )

    async def list_pods(
        self,
        cluster: str,
        namespace: str,
        label_selector: str,
        identity: KubernetesIdentity | None = None,
    ) -> list[dict[str, Any]]:
        def read(api: client.ApiClient) -> list[dict[str, Any]]:
            found = _json(
                client.CoreV1Api(api).list_namespaced_pod(
                    namespace,
                    label_selector=label_selector,
                    _request_timeout=DIAGNOSTICS_TIMEOUT,
                    _preload_content=False,
                )
            )
            return list(found.get("items") or [])

        return await self._call(cluster, "list", f"pods in {namespace}", read, identity)

    async def list_events(
        self, cluster: str, namespace: str, identity: KubernetesIdentity | None = None
    ) -> list[dict[str, Any]]:
        def read(api: client.ApiClient) -> list[dict[str, Any]]:
            found = _json(
                client.CoreV1Api(api).list_namespaced_event(
                    namespace,
                    field_selector="type=Warning",
                    _request_timeout=DIAGNOSTICS_TIMEOUT,
                    _preload_content=False,
                )
            )
            return list(found.get("items") or [])

        return await self._call(cluster, "list", f"events in {namespace}", read, identity)

    async def read_log(
        self,
        cluster: str,
        namespace: str,
        pod: str,
        *,
        container: str,
        since_seconds: int,
        tail_lines: int,
        previous: bool,
        identity: KubernetesIdentity | None = None,
    ) -> str:
        def read(api: client.ApiClient) -> str:
            response = client.CoreV1Api(api).read_namespaced_pod_log(
                pod,
                namespace,
                container=container,
                since_seconds=since_seconds,
                tail_lines=tail_lines,
                previous=previous,
                timestamps=True,
                _request_timeout=DIAGNOSTICS_TIMEOUT,
                _preload_content=False,
            )
            raw: bytes = getattr(response, "data", b"")
            return raw.decode("utf-8", errors="replace")

        return await self._call(cluster, "get", f"the log of {pod} in {namespace}", read, identity)

    async def close(self) -> None:
        # A snapshot: the start-up warm-up may still be adding the next cluster's client.
        clients = list(self._clients.values())
        self._clients.clear()
        for api in clients:
            await asyncio.to_thread(api.close)
        self._threads.shutdown(wait=False)


def _warm_calls(api: client.ApiClient) -> None:
    """The client validates every API call with pydantic, building each method's validator on
    its first call (over a second for `create_namespace`). Server-side dry runs of the writes
    forgebot makes build them without changing anything; `default` exists in every cluster."""
    core, rbac, net = (
        client.CoreV1Api(api),
        client.RbacAuthorizationV1Api(api),
        client.NetworkingV1Api(api),
    )
    body: Any = manifests.namespace("forgebot-warm-up", {}, {})
    core.create_namespace(body, dry_run="All", _request_timeout=TIMEOUT)
    body = manifests.resource_quota("default", Decimal(1), Decimal(1), 1)
    core.create_namespaced_resource_quota("default", body, dry_run="All", _request_timeout=TIMEOUT)
    body = manifests.limit_range("default")
    core.create_namespaced_limit_range("default", body, dry_run="All", _request_timeout=TIMEOUT)
    body = manifests.role_binding("default", "forgebot-warm-up")
    rbac.create_namespaced_role_binding("default", body, dry_run="All", _request_timeout=TIMEOUT)
    body = manifests.network_policy("default")
    net.create_namespaced_network_policy("default", body, dry_run="All", _request_timeout=TIMEOUT)
    # The diagnostics' reads (a person waits for them): a miss or a refusal still builds them.
    apps = client.AppsV1Api(api)
    reads: list[Callable[[], Any]] = [
        lambda: apps.read_namespaced_deployment(
            "forgebot-warm-up", "default", _request_timeout=TIMEOUT, _preload_content=False
        ),
        lambda: core.list_namespaced_pod(
            "default", limit=1, _request_timeout=TIMEOUT, _preload_content=False
        ),
        lambda: core.list_namespaced_event(
            "default",
            field_selector="type=Warning",
            limit=1,
            _request_timeout=TIMEOUT,
            _preload_content=False,
        ),
        lambda: core.read_namespaced_pod_log(
            "forgebot-warm-up",
            "default",
            container="app",
            since_seconds=1,
            tail_lines=1,
            previous=False,
            timestamps=True,
            _request_timeout=TIMEOUT,
            _preload_content=False,
        ),
    ]
    for read in reads:
        with contextlib.suppress(kube_exceptions.ApiException):
            read()


def _missing_apis(api: client.ApiClient, cluster: str) -> list[ApiNotServed]:
    return missing_apis(api, cluster)


def _json(response: Any) -> dict[str, Any]:
    """The body of a call made with `_preload_content=False` (errors have raised already)."""
    body: dict[str, Any] = json.loads(response.data)
    return body


def missing(exc: BaseException) -> bool:
    return isinstance(exc, NotFound) or (
        isinstance(exc, kube_exceptions.ApiException) and exc.status == 404
    )


__all__ = ["DependencyUnavailable", "KubeGateway", "NamespaceInfo"]
