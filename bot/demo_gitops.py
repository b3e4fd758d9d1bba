"""The demo's GitOps example: one service delivered through Git, self-contained.

`storefront` (team payments) is added to the demo's catalog with `delivery: gitops` in staging:
its desired state is a Kustomize overlay in a bare repository served on loopback by the same
`git http-backend` server the tests use (`integrations.sandbox.git_server`), with a token, and
the GitOps simulator plays Argo CD (`integrations.sandbox.gitops_simulator`: it applies each new
commit to the sandbox cluster and reports it synced and healthy). So `/deploy storefront 1.4.2
to staging` in the demo shows the commit and the controller being followed, and `/forge history
storefront staging` lists the commits. Without `git` (and its http-backend) the demo goes on
without it, and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.catalog import Catalog, parse_catalog
from integrations.sandbox.git_server import GitServer, git_binary
from integrations.sandbox.gitops_simulator import GitOpsSimulator
from integrations.sandbox.kube_api import FakeKube

SERVICE = "storefront"
IMAGE = "registry.example.com/payments/storefront"
REPOSITORY = "platform/desired-state"
OVERLAY = "apps/storefront/overlays/staging/kustomization.yaml"
TOKEN_VARIABLE = "FORGEBOT_DEMO_GIT_TOKEN"
TOKEN = "demo-git-token-0123456789"
LAYOUT = {
    "apps/storefront/base/kustomization.yaml": "resources:\n  - deployment.yaml\n",
    "apps/storefront/base/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: storefront\n"
    ),
    OVERLAY: (
        "# storefront in staging: Argo CD applies this overlay\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "namespace: storefront-staging\n"
        "resources:\n  - ../../base\n"
        "images:\n"
        f"  - name: {IMAGE}\n"
        "    newTag: 1.4.1   # forgebot sets this\n"
    ),
    "README.md": "Desired state of the demo's services (served on loopback).\n",
}
UNAVAILABLE = (
    "GitOps: no GitOps example in this demo: it needs git with its http-backend "
    "(apt-get install git)."
)
READY = (
    "GitOps: storefront is delivered through Git in this demo (a local repository, Argo CD "
    "played by a simulator); try /deploy storefront 1.4.2 to staging."
)


def with_service(catalog_path: Path, repository_url: str) -> Catalog:
    """The demo's catalog: the example catalog and `storefront`, delivered through Git."""
    data: dict[str, Any] = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    data["services"].append(
        {
            "name": SERVICE,
            "team": "payments",
            "image": IMAGE,
            "workloads": {
                "staging": {
                    "cluster": "dev-cluster",
                    "namespace": "storefront-staging",
                    "deployment": SERVICE,
                    "container": "app",
                    "delivery": "gitops",
                    "gitops": {
                        "repository": repository_url,
                        "credentials": f"env:{TOKEN_VARIABLE}",
                        "file": OVERLAY,
                        "kustomize_image": IMAGE,
                        "controller": {"kind": "argocd", "name": "storefront-staging"},
                    },
                }
            },
        }
    )
    return parse_catalog(yaml.safe_dump(data, sort_keys=False), str(catalog_path))


@dataclass
class DemoGitOps:
    """The Git server and the simulated controller, for the demo's lifetime."""

    server: GitServer | None = None
    simulator: GitOpsSimulator | None = None
    note: str = UNAVAILABLE

    def prepare(self, catalog_path: Path, workdir: Path) -> Catalog | None:
        """Start the Git server with the desired state; the catalog that uses it, or None
        without git."""
        if git_binary() is None:
            return None
        os.environ[TOKEN_VARIABLE] = TOKEN  # the catalog names the secret, never the token
        root = workdir / "git"
        root.mkdir(parents=True, exist_ok=True)
        self.server = GitServer(root, token=TOKEN).start()
        url = self.server.create(REPOSITORY, LAYOUT)
        self.note = READY
        return with_service(catalog_path, url)

    def start(self, kube: FakeKube, catalog: Catalog) -> None:
        """Argo CD's part: its Application, and a reconcile every second (in the loop)."""
        if self.server is None:
            return
        self.simulator = GitOpsSimulator(kube, catalog, TOKEN, interval=1.0)
        self.simulator.install()
        self.simulator.start()

    async def stop(self) -> None:
        if self.simulator is not None:
            await self.simulator.stop()
        if self.server is not None:
            self.server.stop()
