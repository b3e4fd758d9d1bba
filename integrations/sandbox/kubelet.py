"""A stand-in for kube-scheduler and the kubelet on a real API server, as kwok does.

It registers a Node, binds every unscheduled pod to it, and reports each bound pod's status:
Running and Ready, or, for an image tagged `broken` (the sandbox fake's convention),
Pending with `ImagePullBackOff`, so a rollout passes its progress deadline as it would with a
bad image. Pods being deleted are removed at once (a kubelet confirms the deletion). Without
it, the real controllers create pods that stay Pending for ever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
NODE = "forgebot-fake-node"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def broken(image: str) -> bool:
    return image.endswith(":broken")


def _pod_status(pod: dict[str, Any]) -> dict[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    failing = any(broken(c.get("image", "")) for c in containers)
    now = _now()
    statuses = []
    for c in containers:
        image = c.get("image", "")
        state: dict[str, Any] = (
            {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image}"',
                }
            }
            if broken(image)
            else {"running": {"startedAt": now}}
        )
        statuses.append(
            {
                "name": c.get("name", ""),
                "image": image,
                "imageID": "" if broken(image) else f"fake://{image}",
                "ready": not failing,
                "started": not broken(image),
                "restartCount": 0,
                "state": state,
            }
        )
    ready = "False" if failing else "True"
    return {
        "phase": "Pending" if failing else "Running",
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
            {"type": "Ready", "status": ready, "lastTransitionTime": now},
        ],
        "containerStatuses": statuses,
    }


class FakeKubelet:
    """Call `sync()` for one pass, or `start()` to run passes in a thread until `stop()`."""

    def __init__(self, api: client.ApiClient, node: str = NODE, interval: float = 0.2) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.node = node
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()
        self.errors = 0

    def register_node(self) -> None:
        body: Any = {
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}},
            "status": {
                "capacity": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
                "allocatable": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            },
        }
        with contextlib.suppress(ApiException):
            self.core.create_node(body, _preload_content=False)

    def _pods(self) -> list[dict[str, Any]]:
        response: Any = self.core.list_pod_for_all_namespaces(_preload_content=False)
        items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
        return items

    def sync(self) -> int:
        """One pass; returns how many pods it changed."""
        changed = 0
        for pod in self._pods():
            meta, spec = pod["metadata"], pod.get("spec") or {}
            name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
            try:
                if meta.get("deletionTimestamp"):
                    self.core.delete_namespaced_pod(
                        name, namespace, grace_period_seconds=0, _preload_content=False
                    )
                    self._reported.discard(uid)
                    changed += 1
                elif not spec.get("nodeName"):
                    binding: Any = {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": name, "namespace": namespace},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
                    }
                    self.core.create_namespaced_pod_binding(
                        name, namespace, binding, _preload_content=False
                    )
                    changed += 1
                elif spec.get("nodeName") == self.node and uid not in self._reported:
                    self.core.patch_namespaced_pod_status(
                        name,
                        namespace,
                        {"status": _pod_status(pod)},
                        _content_type="application/merge-patch+json",
                        _preload_content=False,
                    )
                    self._reported.add(uid)
                    changed += 1
            except ApiException as exc:
                if exc.status not in (404, 409):  # gone or changed meanwhile: next pass
                    self.errors += 1
                    log.warning(
                        "fake kubelet: %s %s/%s: %s", exc.status, namespace, name, exc.reason
                    )
        return changed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # the API server restarting, a dropped connection
                self.errors += 1
                log.warning("fake kubelet pass failed: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> FakeKubelet:
        self.register_node()
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
