"""A protocol-faithful fake Kubernetes API server on loopback, for the demo and the tests.

The official `kubernetes` client talks to it over HTTP exactly as to a real API server:
discovery, CRUD and list (label and field selectors) for the kinds forgebot uses,
`resourceVersion`/`uid`/`creationTimestamp`/`generation`, JSON-merge, strategic-merge and JSON
patches, 409 on stale writes and duplicate creates, `Status` error bodies, namespace deletion
cascading to what it holds, and a small deployment controller (a new ReplicaSet per pod
template with revision annotations; `*:broken` images never become ready).

Tests inject faults through `FakeKube.faults` (latency, 500s, 409 storms, dropped
connections, 403 rules) and read `max_in_flight` to prove a client's concurrency bound.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from core.clock import Clock, SystemClock
from integrations.sandbox.rollouts_controller import RolloutsSimulator
from integrations.sandbox.server_thread import RunningServer, serve_in_thread


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS = [
    Kind("", "v1", "namespaces", "Namespace", namespaced=False),
    Kind("", "v1", "resourcequotas", "ResourceQuota"),
    Kind("", "v1", "limitranges", "LimitRange"),
    Kind("", "v1", "pods", "Pod"),
    Kind("", "v1", "events", "Event"),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "serviceaccounts", "ServiceAccount"),
    Kind("", "v1", "services", "Service"),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    Kind("networking.k8s.io", "v1", "ingresses", "Ingress"),
    Kind("apps", "v1", "deployments", "Deployment"),
    Kind("apps", "v1", "replicasets", "ReplicaSet"),
    Kind("apps", "v1", "statefulsets", "StatefulSet"),
    Kind("batch", "v1", "cronjobs", "CronJob"),
    Kind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    Kind("coordination.k8s.io", "v1", "leases", "Lease"),
    # Custom resources of GitOps controllers (their CRDs: tests/fixtures/crds/).
    Kind("argoproj.io", "v1alpha1", "applications", "Application"),
    Kind("argoproj.io", "v1alpha1", "appprojects", "AppProject"),
    Kind("argoproj.io", "v1alpha1", "rollouts", "Rollout"),
    Kind("argoproj.io", "v1alpha1", "analysisruns", "AnalysisRun"),
    Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization"),
    Kind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease"),
]
_BY_PATH = {(k.group, k.version, k.plural): k for k in KINDS}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
REVISION = "deployment.kubernetes.io/revision"
STATUS_SUBRESOURCE = frozenset({"rollouts", "analysisruns"})
"""Kinds whose `status` is written only through `/status` over HTTP, as their CRDs declare."""


@dataclass(frozen=True)
class Rollout:
    started: float
    replica_set: str
    replicas: int
    broken: bool
    deadline: float


@dataclass
class Faults:
    latency: float = 0.0
    errors_500: int = 0
    conflicts: int = 0
    drops: int = 0
    garbled: int = 0
    """Answered 200 with a body that is not JSON, as a misconfigured proxy's error page is."""
    match: str = ""
    """Only requests whose `METHOD path` contains this string are affected (empty: all)."""
    forbid: list[tuple[str, str, str]] = field(default_factory=list)
    """(verb, plural, namespace or '*') answered with 403."""

    def applies(self, method: str, path: str) -> bool:
        return not self.match or self.match in f"{method} {path}"


class ApiError(Exception):
    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


Key = tuple[str, str, str, str]
"""(group, plural, namespace, name)"""


class _Objects(dict[Key, dict[str, Any]]):
    """The objects, indexed by (plural, namespace) as well: a cluster of 20,000 Deployments
    (bench/offhours_sweep.py) must not cost a scan of every object per request."""

    def __init__(self) -> None:
        super().__init__()
        self._index: dict[tuple[str, str], set[Key]] = {}
        self._by_plural: dict[str, set[Key]] = {}

    def __setitem__(self, key: Key, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        self._index.setdefault((key[1], key[2]), set()).add(key)
        self._by_plural.setdefault(key[1], set()).add(key)

    def __delitem__(self, key: Key) -> None:
        super().__delitem__(key)
        self._index.get((key[1], key[2]), set()).discard(key)
        self._by_plural.get(key[1], set()).discard(key)

    def clear(self) -> None:
        super().clear()
        self._index.clear()
        self._by_plural.clear()

    def keys_of(self, plural: str, namespace: str | None) -> list[Key]:
        """Keys of one kind (by plural), in one namespace or (None) in all."""
        if namespace is None:
            return list(self._by_plural.get(plural, ()))
        return list(self._index.get((plural, namespace), ()))

    def of(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return [self[key] for key in self.keys_of(plural, namespace)]


class FakeKube:
    """The state of one fake cluster (all named clusters share one fake in the sandbox)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.lock = threading.RLock()
        self.objects = _Objects()
        self.faults = Faults()
        self._rv = itertools.count(1000)
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self.changes: list[Change] = []
        """Every client write that changed something (the fault suite counts side effects)."""
        self.after_write: Callable[[Change], None] | None = None
        """Called on the server's thread after each successful client write, before the
        answer is sent (a test cuts the database there: a fault at a precise step)."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.rollout_seconds = 0.0
        """How long a rollout takes to become ready (0: at once), measured on `clock`."""
        self._rollouts: dict[tuple[str, str], Rollout] = {}
        self._settled: set[tuple[str, str]] = set()
        self.logs: dict[tuple[str, str, str, bool], list[tuple[float, str]]] = {}
        """(namespace, pod, container, previous) -> (unix time, line): what `pods/log` serves."""
        self.rollouts = RolloutsSimulator()
        """Plays the Argo Rollouts controller for `Rollout` objects (canary steps)."""
        self.reset()

    def reset(self) -> None:
        """Empty, as a new cluster: only the `default` namespace exists."""
        with self.lock:
            self.objects.clear()
            self._rollouts = {}
            self._settled = set()
            self.faults = Faults()
            self.requests = []
            self.changes = []
            self.after_write = None
            self.logs = {}
            self.rollouts.reset()
            self.max_in_flight = 0
            self.objects[("", "namespaces", "", "default")] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "default",
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": "1",
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }

    # --- store ---------------------------------------------------------------------------
    def _key(self, kind: Kind, namespace: str, name: str) -> tuple[str, str, str, str]:
        return (kind.group, kind.plural, namespace if kind.namespaced else "", name)

    def _now(self) -> str:
        return self.clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            if kind.plural == "deployments":
                self._refresh(namespace, name)
            if kind.plural == "rollouts":
                self.rollouts.reconcile(self, namespace, name)
            obj = self.objects.get(self._key(kind, namespace, name))
            if obj is None:
                raise ApiError(
                    404,
                    "NotFound",
                    f'{kind.plural}{"." + kind.group if kind.group else ""} "{name}" not found',
                    {"name": name, "group": kind.group, "kind": kind.plural},
                )
            return copy.deepcopy(obj)

    def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        kind = next(k for k in KINDS if k.plural == plural)
        with self.lock:
            found = self.objects.get(self._key(kind, namespace, name))
            return copy.deepcopy(found) if found else None

    def list_page(
        self,
        kind: Kind,
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
        *,
        limit: int = 0,
        after: tuple[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """One page of `limit` items (0: all) after the (namespace, name) `after`, and the
        key of its last item when more follow. Only the page is copied."""
        matchers = _parse_selector(label_selector)
        with self.lock:
            for ns, name in list(self._rollouts):
                if namespace in (None, ns):
                    self._refresh(ns, name)
            if kind.plural in ("rollouts", "analysisruns"):
                for key in self.objects.keys_of("rollouts", namespace):
                    self.rollouts.reconcile(self, key[2], key[3])
            # Pick the kind's objects first and sort only those: a cluster holds thousands.
            chosen = sorted(
                (key, self.objects[key])
                for key in self.objects.keys_of(kind.plural, namespace)
                if key[0] == kind.group
            )
            matched = [
                o
                for key, o in chosen
                if (after is None or (key[2], key[3]) > after)
                and all(m(o["metadata"].get("labels") or {}) for m in matchers)
                and _field_match(o, field_selector)
            ]
            more = None
            if limit and len(matched) > limit:
                matched = matched[:limit]
                more = _key(matched[-1])
            items = [copy.deepcopy(o) for o in matched]
        return items, more

    def list(
        self, kind: Kind, namespace: str | None, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        return self.list_page(kind, namespace, label_selector, field_selector)[0]

    def create(
        self, kind: Kind, namespace: str, body: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        _validate(kind, body)
        with self.lock:
            if kind.namespaced and (self._key(_NS, "", namespace) not in self.objects):
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            key = self._key(kind, namespace, name)
            if key in self.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{kind.plural} "{name}" already exists',
                    {"name": name, "group": kind.group, "kind": kind.plural},
                )
            obj = copy.deepcopy(body)
            obj["kind"], obj["apiVersion"] = kind.kind, kind.api_version
            meta = obj["metadata"]
            meta.update(
                uid=str(uuid.uuid4()),
                creationTimestamp=self._now(),
                resourceVersion=str(next(self._rv)),
            )
            if kind.namespaced:
                meta["namespace"] = namespace
            if "spec" in obj or kind.kind in ("Deployment", "StatefulSet", "ReplicaSet", "CronJob"):
                meta["generation"] = 1
            if kind.kind == "Namespace":
                obj["status"] = {"phase": "Active"}
                obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            if dry_run:
                return obj
            self.objects[key] = obj
            if kind.kind == "Deployment":
                self._reconcile_deployment(obj)
            if kind.kind == "Rollout":
                self.rollouts.reconcile(self, namespace, name)
            return copy.deepcopy(self.objects[key])

    def replace(
        self, kind: Kind, namespace: str, name: str, body: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        with self.lock:
            current = self.get(kind, namespace, name)
            given = (body.get("metadata") or {}).get("resourceVersion")
            if given and given != current["metadata"]["resourceVersion"]:
                raise _conflict(kind, name)
            obj = copy.deepcopy(body)
            obj["kind"], obj["apiVersion"] = kind.kind, kind.api_version
            obj.setdefault("metadata", {})
            for keep in ("uid", "creationTimestamp", "namespace", "generation"):
                if keep in current["metadata"]:
                    obj["metadata"][keep] = current["metadata"][keep]
            obj["metadata"]["name"] = name
            _validate(kind, obj)
            if obj.get("spec") != current.get("spec") and "generation" in current["metadata"]:
                obj["metadata"]["generation"] = current["metadata"]["generation"] + 1
            if "status" not in body and "status" in current:
                obj["status"] = current["status"]
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            if dry_run:
                return obj
            self.objects[self._key(kind, namespace, name)] = obj
            if kind.kind == "Deployment":
                self._reconcile_deployment(obj)
            if kind.kind == "Rollout":
                self.rollouts.reconcile(self, namespace, name)
                return copy.deepcopy(self.objects[self._key(kind, namespace, name)])
            return copy.deepcopy(obj)

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            current = self.get(kind, namespace, name)
            if "json-patch" in content_type:
                patched = _json_patch(current, patch)
            elif "strategic-merge" in content_type:
                patched = _strategic_merge(current, patch)
            else:
                patched = _merge_patch(current, patch)
            given = (
                (patch.get("metadata") or {}).get("resourceVersion")
                if isinstance(patch, dict)
                else None
            )
            if given and given != current["metadata"]["resourceVersion"]:
                raise _conflict(kind, name)
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return self.replace(kind, namespace, name, patched, dry_run=dry_run)

    def delete(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.get(kind, namespace, name)
            del self.objects[self._key(kind, namespace, name)]
            if kind.kind == "Namespace":
                # The namespace controller's work, done at once: everything inside goes too.
                for key in [k for k in self.objects if k[2] == name]:
                    del self.objects[key]
            return obj

    def wrote(self, change: Change) -> None:
        with self.lock:
            self.changes.append(change)
            hook = self.after_write
        if hook is not None:
            hook(change)

    # --- a small deployment controller ------------------------------------------------------
    def _reconcile_deployment(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec", {})
        namespace = meta["namespace"]
        template = spec.get("template", {})
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[
            :10
        ]
        owned = [
            o
            for o in self.objects.of("replicasets", namespace)
            if any(r.get("uid") == meta["uid"] for r in o["metadata"].get("ownerReferences", []))
        ]
        revisions = [int(o["metadata"]["annotations"].get(REVISION, "0")) for o in owned]
        current = next(
            (o for o in owned if o["metadata"]["labels"].get("pod-template-hash") == template_hash),
            None,
        )
        replicas = int(spec.get("replicas", 1))
        if current is None or current["metadata"]["annotations"][REVISION] != str(
            max(revisions, default=0)
        ):
            revision = max(revisions, default=0) + 1
            if current is None:
                labels = {
                    **(template.get("metadata", {}).get("labels") or {}),
                    "pod-template-hash": template_hash,
                }
                rs_template = copy.deepcopy(template)
                rs_template.setdefault("metadata", {})["labels"] = labels
                current = {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"{meta['name']}-{template_hash}",
                        "namespace": namespace,
                        "labels": labels,
                        "annotations": {},
                        "uid": str(uuid.uuid4()),
                        "creationTimestamp": self._now(),
                        "generation": 1,
                        "ownerReferences": [
                            {
                                "apiVersion": "apps/v1",
                                "kind": "Deployment",
                                "name": meta["name"],
                                "uid": meta["uid"],
                                "controller": True,
                            }
                        ],
                    },
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": labels},
                        "template": rs_template,
                    },
                }
            current["metadata"]["annotations"][REVISION] = str(revision)
        for other in owned:
            if other is not current:
                other["spec"]["replicas"] = 0
                other["status"] = {"replicas": 0, "observedGeneration": 1}
                other["metadata"]["resourceVersion"] = str(next(self._rv))
        images = [c.get("image", "") for c in template.get("spec", {}).get("containers", [])]
        current["spec"]["replicas"] = replicas
        current["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[("apps", "replicasets", namespace, current["metadata"]["name"])] = current
        meta.setdefault("annotations", {})[REVISION] = current["metadata"]["annotations"][REVISION]
        self._settled.discard((namespace, meta["name"]))
        self._rollouts[(namespace, meta["name"])] = Rollout(
            started=self.clock.now().timestamp(),
            replica_set=current["metadata"]["name"],
            replicas=replicas,
            broken=any(i.endswith(":broken") for i in images),
            deadline=float(spec.get("progressDeadlineSeconds", 600)),
        )
        self._refresh(namespace, meta["name"])

    def _refresh(self, namespace: str, name: str) -> None:
        """The controller's view of a rollout now: ready replicas grow over `rollout_seconds`;
        an image tagged `broken` never becomes ready and passes its progress deadline."""
        rollout = self._rollouts.get((namespace, name))
        if (namespace, name) in self._settled:
            return  # finished (or past its deadline): nothing changes until the next rollout
        deployment = self.objects.get(("apps", "deployments", namespace, name))
        replica_set = (
            self.objects.get(("apps", "replicasets", namespace, rollout.replica_set))
            if rollout
            else None
        )
        if rollout is None or deployment is None or replica_set is None:
            return
        elapsed = self.clock.now().timestamp() - rollout.started
        done = 1.0 if self.rollout_seconds <= 0 else min(1.0, elapsed / self.rollout_seconds)
        replicas = rollout.replicas
        ready = 0 if rollout.broken else int(replicas * done)
        replica_set["status"] = {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": 1,
        }
        rs_name = rollout.replica_set
        if rollout.broken and elapsed >= rollout.deadline:
            progressing = {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{rs_name}" has timed out progressing.',
            }
        elif ready == replicas:
            progressing = {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
            }
        else:
            progressing = {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{rs_name}" is progressing.',
            }
        deployment["status"] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
            "conditions": [
                {"type": "Available", "status": "True" if ready == replicas else "False"},
                progressing,
            ],
        }
        self._pods(namespace, replica_set, replicas, ready, rollout.broken)
        if (ready == replicas and not rollout.broken) or (
            rollout.broken and elapsed >= rollout.deadline
        ):
            self._settled.add((namespace, name))

    def _pods(
        self, namespace: str, replica_set: dict[str, Any], replicas: int, ready: int, broken: bool
    ) -> None:
        """Pods of the current ReplicaSet, with the container states a rollout is judged by."""
        labels = replica_set["spec"]["selector"]["matchLabels"]
        rs_name = replica_set["metadata"]["name"]
        for key in self.objects.keys_of("pods", namespace):
            owner = self.objects[key]["metadata"].get("ownerReferences", [{}])[0].get("name", "")
            if owner.startswith(rs_name.rsplit("-", 1)[0]) and owner != rs_name:
                del self.objects[key]
        containers = replica_set["spec"]["template"].get("spec", {}).get("containers", [])
        for index in range(replicas):
            name = f"{rs_name}-{index:05d}"
            state: dict[str, Any] = (
                {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{containers[0].get("image", "")}"',
                    }
                }
                if broken
                else {"running": {"startedAt": self._now()}}
                if index < ready
                else {"waiting": {"reason": "ContainerCreating"}}
            )
            self.objects[("", "pods", namespace, name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(next(self._rv)),
                    "creationTimestamp": self._now(),
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": rs_name,
                            "uid": replica_set["metadata"].get("uid", ""),
                            "controller": True,
                        }
                    ],
                },
                "spec": {"containers": containers},
                "status": {
                    "phase": "Running" if index < ready else "Pending",
                    "containerStatuses": [
                        {
                            "name": c.get("name", ""),
                            "image": c.get("image", ""),
                            "imageID": "",
                            "ready": index < ready and not broken,
                            "restartCount": 0,
                            "state": state,
                        }
                        for c in containers
                    ],
                },
            }

    # --- pods, events and logs (read-only diagnostics) --------------------------------------------
    def seed_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        *,
        container: str = "app",
        image: str = "registry.example.com/app:1",
        ready: bool = True,
        restarts: int = 0,
        waiting_reason: str = "",
        last_terminated_reason: str = "",
    ) -> None:
        state: dict[str, Any] = (
            {"waiting": {"reason": waiting_reason}}
            if waiting_reason
            else {"running": {"startedAt": self._now()}}
        )
        status: dict[str, Any] = {
            "name": container,
            "image": image,
            "imageID": "",
            "ready": ready,
            "restartCount": restarts,
            "state": state,
        }
        if last_terminated_reason:
            status["lastState"] = {
                "terminated": {"reason": last_terminated_reason, "exitCode": 137}
            }
        with self.lock:
            self.objects[("", "pods", namespace, name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(labels),
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(next(self._rv)),
                    "creationTimestamp": self._now(),
                },
                "spec": {"containers": [{"name": container, "image": image}]},
                "status": {
                    "phase": "Running" if ready or restarts else "Pending",
                    "containerStatuses": [status],
                },
            }

    def seed_event(
        self,
        namespace: str,
        involved: str,
        reason: str,
        message: str,
        *,
        type_: str = "Warning",
        kind: str = "Pod",
        count: int = 1,
        at: str | None = None,
    ) -> None:
        name = f"{involved}.{uuid.uuid4().hex[:12]}"
        when = at or self._now()
        with self.lock:
            self.objects[("", "events", namespace, name)] = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "resourceVersion": str(next(self._rv)),
                    "creationTimestamp": when,
                },
                "involvedObject": {"kind": kind, "name": involved, "namespace": namespace},
                "reason": reason,
                "message": message,
                "type": type_,
                "count": count,
                "firstTimestamp": when,
                "lastTimestamp": when,
            }

    def seed_logs(
        self,
        namespace: str,
        pod: str,
        lines: Sequence[tuple[float, str]],
        *,
        container: str = "app",
        previous: bool = False,
    ) -> None:
        with self.lock:
            self.logs[(namespace, pod, container, previous)] = list(lines)

    def read_log(self, namespace: str, pod: str, query: Mapping[str, str]) -> str:
        with self.lock:
            found = self.objects.get(("", "pods", namespace, pod))
            if found is None:
                raise ApiError(404, "NotFound", f'pods "{pod}" not found', {"kind": "pods"})
            containers = [c["name"] for c in found["spec"].get("containers", [])]
            container = query.get("container") or (containers[0] if len(containers) == 1 else "")
            if not container:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {pod}, choose one of: "
                    f"[{' '.join(containers)}]",
                )
            if container not in containers:
                raise ApiError(
                    400, "BadRequest", f"container {container} is not valid for pod {pod}"
                )
            previous = query.get("previous") == "true"
            lines = self.logs.get((namespace, pod, container, previous))
            if lines is None and previous:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{pod}" not found',
                )
        chosen = list(lines or [])
        if query.get("sinceSeconds"):
            cutoff = self.clock.now().timestamp() - int(query["sinceSeconds"])
            chosen = [line for line in chosen if line[0] >= cutoff]
        if query.get("tailLines"):
            chosen = chosen[-int(query["tailLines"]) :]
        stamp = query.get("timestamps") == "true"
        return "".join(
            (f"{datetime.fromtimestamp(t, UTC).isoformat()} " if stamp else "") + text + "\n"
            for t, text in chosen
        )

    # --- seeding for the demo and tests ---------------------------------------------------------
    def seed_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        try:
            self.create(_NS, "", {"metadata": {"name": name, "labels": labels or {}}})
        except ApiError as exc:
            if exc.code != 409:
                raise

    def seed_deployment(
        self,
        namespace: str,
        name: str,
        image: str,
        replicas: int = 2,
        container: str = "app",
        progress_deadline_seconds: int = 600,
    ) -> None:
        self.seed_namespace(namespace)
        labels = {"app": name}
        self.create(
            _BY_PATH[("apps", "v1", "deployments")],
            namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "progressDeadlineSeconds": progress_deadline_seconds,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": container, "image": image}]},
                    },
                },
            },
        )

    def seed_rollout(
        self,
        namespace: str,
        name: str,
        image: str,
        steps: Sequence[Mapping[str, Any]] = (),
        replicas: int = 5,
        container: str = "app",
    ) -> None:
        """An Argo Rollouts `Rollout` with a canary of `steps` (`{"setWeight": 20}`,
        `{"pause": {}}`, `{"pause": {"duration": "30s"}}`, `{"analysis": {...}}`), stable on
        `image` (the simulated controller: `integrations/sandbox/rollouts_controller.py`)."""
        self.seed_namespace(namespace)
        labels = {"app": name}
        self.create(
            _BY_PATH[("argoproj.io", "v1alpha1", "rollouts")],
            namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": container, "image": image}]},
                    },
                    "strategy": {"canary": {"steps": [dict(step) for step in steps]}},
                },
            },
        )


_NS = _BY_PATH[("", "v1", "namespaces")]


def _conflict(kind: Kind, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.plural} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": kind.group, "kind": kind.plural},
    )


def _validate(kind: Kind, obj: dict[str, Any]) -> None:
    name = obj.get("metadata", {}).get("name", "")
    pattern = (
        DNS_LABEL
        if kind.kind in ("Namespace", "Deployment", "StatefulSet", "CronJob")
        else DNS_SUBDOMAIN
    )
    if (
        not name
        or len(name) > (63 if pattern is DNS_LABEL else 253)
        or pattern.fullmatch(name) is None
    ):
        raise ApiError(
            422,
            "Invalid",
            f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
            {
                "name": name,
                "kind": kind.kind,
                "causes": [{"reason": "FieldValueInvalid", "field": "metadata.name"}],
            },
        )
    spec = obj.get("spec") or {}
    if kind.kind in ("Deployment", "StatefulSet") and int(spec.get("replicas", 1)) < 0:
        raise ApiError(
            422,
            "Invalid",
            f'{kind.kind}.apps "{name}" is invalid: spec.replicas: Invalid value: '
            f"{spec['replicas']}: must be greater than or equal to 0",
            {"name": name, "kind": kind.kind},
        )
    if kind.kind == "HorizontalPodAutoscaler":
        # As the API server validates autoscaling/v2 (without the HPAScaleToZero gate).
        low, high = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 0))
        problem = (
            f"spec.minReplicas: Invalid value: {low}: must be greater than or equal to 1"
            if low < 1
            else f"spec.maxReplicas: Invalid value: {high}: must be greater than or equal to "
            "`minReplicas`"
            if high < low
            else ""
        )
        if problem:
            raise ApiError(
                422,
                "Invalid",
                f'HorizontalPodAutoscaler.autoscaling "{name}" is invalid: {problem}',
                {"name": name, "kind": kind.kind},
            )
    if kind.kind == "Deployment":
        selector = (spec.get("selector") or {}).get("matchLabels")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            raise ApiError(
                422,
                "Invalid",
                f'Deployment.apps "{name}" is invalid: spec.selector: Required value',
                {"name": name, "kind": "Deployment"},
            )
        if any(labels.get(k) != v for k, v in selector.items()):
            raise ApiError(
                422,
                "Invalid",
                f'Deployment.apps "{name}" is invalid: spec.template.metadata.labels: '
                "Invalid value: `selector` does not match template `labels`",
                {"name": name, "kind": "Deployment"},
            )


@dataclass(frozen=True)
class _Requirement:
    """One term of a label selector: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def __call__(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op in ("=", "in"):
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # "!=" and "notin"


def _parse_selector(selector: str) -> list[_Requirement]:
    requirements: list[_Requirement] = []
    for raw in re.split(r",(?![^()]*\))", selector) if selector else []:
        term = raw.strip()
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            values = frozenset(v.strip() for v in m.group(3).split(","))
            requirements.append(_Requirement(m.group(1), m.group(2), values))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(_Requirement(key.strip(), "!=", frozenset({value.strip()})))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            requirements.append(_Requirement(key.strip(), "=", frozenset({value.strip()})))
        elif term.startswith("!"):
            requirements.append(_Requirement(term[1:], "!exists"))
        else:
            requirements.append(_Requirement(term, "exists"))
    return requirements


def _field_match(obj: dict[str, Any], selector: str) -> bool:
    for term in selector.split(",") if selector else []:
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name" and obj["metadata"]["name"] != value.strip():
            return False
        if (
            key.strip() == "metadata.namespace"
            and obj["metadata"].get("namespace") != value.strip()
        ):
            return False
    return True


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "conditions": "type",
}


def _strategic_merge(target: Any, patch: Any, key: str = "") -> Any:
    if isinstance(patch, list) and isinstance(target, list) and key in _MERGE_KEYS:
        merge_key = _MERGE_KEYS[key]
        merged: list[Any] = copy.deepcopy(target)
        for item in patch:
            match = next(
                (i for i, t in enumerate(merged) if t.get(merge_key) == item.get(merge_key)), None
            )
            if item.get("$patch") == "delete":
                if match is not None:
                    merged.pop(match)
            elif match is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[match] = _strategic_merge(merged[match], item)
        return merged
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, value in patch.items():
        if value is None:
            result.pop(k, None)
        else:
            result[k] = _strategic_merge(result.get(k), value, k)
    return result


def _json_patch(target: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902: add, remove, replace, test (copy and move are not used by forgebot)."""
    doc = copy.deepcopy(target)
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        if op["op"] == "test":
            actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if actual != op["value"]:
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: test failed at {op['path']}",
                )
        elif op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op["op"] == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
    return doc


# --- HTTP -----------------------------------------------------------------------------------------


def _discovery(fake: FakeKube) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/version")
    @routes.get("/version/")
    async def version(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-forgebot-sandbox",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.22.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    @routes.get("/api")
    async def api(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        )

    @routes.get("/apis")
    async def apis(_: web.Request) -> web.Response:
        groups = sorted({(k.group, k.version) for k in KINDS if k.group})
        return web.json_response(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                        "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                    }
                    for g, v in groups
                ],
            }
        )

    return routes


def _resource_list(group: str, version: str) -> dict[str, Any]:
    kinds = [k for k in KINDS if k.group == group and k.version == version]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [
            {
                "name": k.plural,
                "singularName": k.kind.lower(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update"],
            }
            for k in kinds
        ],
    }


def build_app(fake: FakeKube) -> web.Application:
    @web.middleware
    async def faults(
        request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
            fake.requests.append(
                (
                    request.method,
                    request.path,
                    {
                        k: v
                        for k, v in request.headers.items()
                        if k.lower().startswith("impersonate-")
                    },
                    request.query_string,
                )
            )
        try:
            f = fake.faults
            if f.latency:
                await asyncio.sleep(f.latency)
            if f.applies(request.method, request.path):
                if f.drops > 0:
                    f.drops -= 1
                    assert request.transport is not None
                    request.transport.abort()
                    raise web.HTTPInternalServerError()
                if f.garbled > 0:
                    f.garbled -= 1
                    return web.Response(
                        text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
                    )
                if f.errors_500 > 0:
                    f.errors_500 -= 1
                    return web.json_response(
                        ApiError(500, "InternalError", "injected failure").status(), status=500
                    )
                if f.conflicts > 0 and request.method in ("PUT", "PATCH", "POST"):
                    f.conflicts -= 1
                    return web.json_response(
                        ApiError(
                            409, "Conflict", "injected conflict: the object has been modified"
                        ).status(),
                        status=409,
                    )
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return web.json_response(exc.status(), status=exc.code)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    app = web.Application(middlewares=[faults], client_max_size=10 * 1024 * 1024)
    app.add_routes(_discovery(fake))

    def kind_of(request: web.Request) -> Kind:
        info = request.match_info
        kind = _BY_PATH.get((info.get("group", ""), info["version"], info["plural"]))
        if kind is None:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({info['plural']})",
            )
        return kind

    def check_forbidden(request: web.Request, verb: str, kind: Kind, namespace: str) -> None:
        for rule_verb, plural, ns in fake.faults.forbid:
            if rule_verb in (verb, "*") and plural in (kind.plural, "*") and ns in (namespace, "*"):
                who = request.headers.get(
                    "Impersonate-User", "system:serviceaccount:forgebot:forgebot"
                )
                where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{kind.plural} is forbidden: User "{who}" cannot {verb} resource '
                    f'"{kind.plural}" in API group "{kind.group}"{where}',
                    {"kind": kind.plural},
                )

    async def collection(request: web.Request) -> web.Response:
        kind = kind_of(request)
        namespace = request.match_info.get("namespace", "")
        if request.method == "GET":
            check_forbidden(request, "list", kind, namespace)
            limit, after = _paging(request.query.get("limit"), request.query.get("continue"))
            items, more = fake.list_page(
                kind,
                namespace if namespace or not kind.namespaced else None,
                request.query.get("labelSelector", ""),
                request.query.get("fieldSelector", ""),
                limit=limit,
                after=after,
            )
            metadata = {"resourceVersion": str(next(fake._rv))}
            if more is not None:
                metadata["continue"] = base64.urlsafe_b64encode(json.dumps(more).encode()).decode()
            return web.json_response(
                {
                    "kind": f"{kind.kind}List",
                    "apiVersion": kind.api_version,
                    "metadata": metadata,
                    "items": items,
                }
            )
        check_forbidden(request, "create", kind, namespace)
        body = await request.json()
        dry = request.query.get("dryRun") == "All"
        created = fake.create(kind, namespace, body, dry_run=dry)
        if not dry:
            fake.wrote(Change("create", kind.plural, namespace, created["metadata"]["name"]))
        return web.json_response(created, status=201)

    async def item(request: web.Request) -> web.Response:
        kind = kind_of(request)
        namespace, name = request.match_info.get("namespace", ""), request.match_info["name"]
        sub = request.match_info.get("sub", "")
        dry = request.query.get("dryRun") == "All"
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            request.method
        )
        if verb is None:
            raise ApiError(
                405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}"
            )
        check_forbidden(request, verb, kind, namespace)
        if request.method == "GET" and kind.plural == "pods" and sub == "log":
            check_forbidden(request, "get", Kind("", "v1", "pods/log", "Pod"), namespace)
            return web.Response(
                text=fake.read_log(namespace, name, request.query), content_type="text/plain"
            )
        if request.method == "GET":
            obj = fake.get(kind, namespace, name)
            if sub == "scale":
                return web.json_response(_scale(obj))
            return web.json_response(obj)
        if request.method == "DELETE":
            deleted = fake.delete(kind, namespace, name)
            fake.wrote(Change("delete", kind.plural, namespace, name))
            return web.json_response(deleted)
        body = await request.json()
        before = _content(fake.get(kind, namespace, name))
        response = _write(request, kind, namespace, name, sub, body, dry)
        if not dry:
            changed = _content(fake.get(kind, namespace, name)) != before
            fake.wrote(Change("change" if changed else "same", kind.plural, namespace, name))
        return response

    def _write(
        request: web.Request,
        kind: Kind,
        namespace: str,
        name: str,
        sub: str,
        body: Any,
        dry: bool,
    ) -> web.Response:
        if kind.plural in STATUS_SUBRESOURCE and isinstance(body, dict):
            # As the API server does for a CRD with the status subresource: `/status` writes
            # only the status, the object itself everything but the status.
            current = fake.get(kind, namespace, name)
            if sub == "status":
                body = {
                    **({"metadata": body["metadata"]} if "metadata" in body else {}),
                    "status": body.get("status"),
                }
                if request.method == "PUT":
                    body = {**current, "status": body.get("status")}
            else:
                body = {k: v for k, v in body.items() if k != "status"}
                if request.method == "PUT":
                    body["status"] = current.get("status")
        if sub == "scale":
            replicas = body.get("spec", {}).get("replicas")
            patched = fake.patch(
                kind,
                namespace,
                name,
                "application/merge-patch+json",
                {"spec": {"replicas": replicas}},
            )
            return web.json_response(_scale(patched))
        if request.method == "PUT":
            return web.json_response(fake.replace(kind, namespace, name, body, dry_run=dry))
        return web.json_response(
            fake.patch(kind, namespace, name, request.content_type, body, dry_run=dry)
        )

    async def resources(request: web.Request) -> web.Response:
        return web.json_response(
            _resource_list(request.match_info.get("group", ""), request.match_info["version"])
        )

    for prefix in ("/api/{version}", "/apis/{group}/{version}"):
        # Namespaced paths first: `/namespaces/x/pods` must not read as `namespaces/x` + `pods`.
        app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}", collection)
        app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}/{name}", item)
        app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}/{name}/{sub}", item)
        app.router.add_get(prefix, resources)
        app.router.add_get(prefix + "/", resources)  # the client's get_api_resources() asks so
        app.router.add_route("*", prefix + "/{plural}", collection)
        app.router.add_route("*", prefix + "/{plural}/{name}", item)
        app.router.add_route("*", prefix + "/{plural}/{name}/{sub}", item)
    return app


@dataclass(frozen=True)
class Change:
    """One client write: `create`, `change` (its content changed), `same` (re-applied as it
    was) or `delete`, of one object."""

    verb: str
    plural: str
    namespace: str
    name: str


def _content(obj: dict[str, Any]) -> Any:
    """What a write can change: all but the status and the server's bookkeeping."""
    meta = obj.get("metadata", {})
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return json.dumps(
        [rest, meta.get("labels"), meta.get("annotations")], sort_keys=True, default=str
    )


def _scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "resourceVersion": meta["resourceVersion"],
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0)},
    }


@dataclass
class RunningFakeKube:
    server: RunningServer
    state: FakeKube

    @property
    def url(self) -> str:
        return self.server.url

    def write_kubeconfig(self, path: Path, contexts: list[str]) -> Path:
        """A kubeconfig with one context (and cluster) per name, all served by this fake."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": contexts[0] if contexts else "",
            "clusters": [{"name": c, "cluster": {"server": self.url}} for c in contexts],
            "users": [{"name": "forgebot", "user": {"token": "sandbox-token"}}],
            "contexts": [
                {"name": c, "context": {"cluster": c, "user": "forgebot"}} for c in contexts
            ],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def stop(self) -> None:
        self.server.stop()


def _paging(limit: str | None, token: str | None) -> tuple[int, tuple[str, str] | None]:
    """`?limit=&continue=` as the API server pages a list (items sorted by namespace and
    name): the token names the last item returned, so a page never repeats or skips one."""
    after = None
    if token:
        try:
            namespace, name = json.loads(base64.urlsafe_b64decode(token))
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid continue token") from None
        after = (str(namespace), str(name))
    size = int(limit) if limit and limit.isdigit() else 0
    return size, after


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def start_fake_kube(clock: Clock | None = None) -> RunningFakeKube:
    fake = FakeKube(clock)
    return RunningFakeKube(serve_in_thread(build_app(fake)), fake)
