"""The benchmarks' real Kubernetes: the control plane of the real-server test tier
(integrations/sandbox/kube_cluster.py), seeded through the API as an administrator, with the
bot running as the identity deploy/kubernetes gives it.

The Kubernetes benchmarks take `--kube real` to run against it instead of the sandbox fake
(build the binaries first: scripts/kube-binaries.sh --add-deb-src), or `--kube both`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integrations.sandbox.kube_cluster import (  # noqa: E402
    BinariesMissing,
    LocalCluster,
    find_binaries,
    grant_bot_rights,
    start_local_cluster,
)
from integrations.sandbox.kubelet import FakeKubelet  # noqa: E402


def add_option(parser: Any) -> None:
    parser.add_argument(
        "--kube",
        choices=["fake", "real", "both"],
        default="fake",
        help="the sandbox fake API server, a real kube-apiserver (scripts/kube-binaries.sh), or both",
    )


def backends(choice: str) -> list[str]:
    return ["fake", "real"] if choice == "both" else [choice]


def load_average() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


class RealKube:
    """A started control plane (and, with `kubelet=True`, the fake kubelet running pods)."""

    def __init__(self, *, kubelet: bool) -> None:
        try:
            binaries = find_binaries()
        except BinariesMissing as exc:
            raise SystemExit(f"--kube real: {exc}") from None
        started = time.perf_counter()
        self.cluster: LocalCluster = start_local_cluster(binaries)
        grant_bot_rights(self.cluster)
        self.admin = self.cluster.api_client()
        self.kubelet = FakeKubelet(self.cluster.api_client()).start() if kubelet else None
        print(
            f"real control plane {self.cluster.version} (etcd, kube-apiserver, "
            f"kube-controller-manager{', fake kubelet' if kubelet else ''}) ready in "
            f"{time.perf_counter() - started:.1f} s"
        )

    def kubeconfig(self, path: Path, contexts: list[str]) -> Path:
        return self.cluster.write_kubeconfig(path, contexts)

    def post(self, path: str, body: dict[str, Any]) -> None:
        """Create one object as the administrator (409: it exists, fine)."""
        response = self.admin.call_api(
            *self.admin.param_serialize(
                "POST",
                path,
                body=body,
                header_params={"Content-Type": "application/json"},
                auth_settings=["BearerToken"],
            )
        )
        response.read()
        if response.status not in (200, 201, 202, 409):
            raise RuntimeError(f"POST {path}: {response.status} {response.data[:300]!r}")

    def get(self, path: str) -> dict[str, Any]:
        response = self.admin.call_api(
            *self.admin.param_serialize("GET", path, auth_settings=["BearerToken"])
        )
        response.read()
        body: dict[str, Any] = json.loads(response.data)
        return body

    def in_parallel(self, jobs: Iterable[Callable[[], None]], workers: int = 8) -> None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    def requests_served(self) -> int:
        """All requests the API server has answered so far (every client), from its metrics."""
        response = self.admin.call_api(
            *self.admin.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
        )
        response.read()
        total = 0.0
        for line in response.data.decode().splitlines():
            if line.startswith("apiserver_request_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet.api.close()
        self.admin.close()
        self.cluster.stop()


def deployment(name: str, replicas: int, image: str, *, paused: bool = False) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "paused": paused,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }
