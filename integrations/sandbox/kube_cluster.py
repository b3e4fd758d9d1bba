"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

The real-server test tier and the benchmarks run forgebot against it, as envtest does for
controller-runtime: the API server's own validation, RBAC, admission, optimistic concurrency
and the real Deployment, ReplicaSet, namespace, quota and service-account controllers. There is
no scheduler and no kubelet; `integrations.sandbox.kubelet.FakeKubelet` plays both.

The binaries come from `scripts/kube-binaries.sh` (built from Debian's source package into a
cache folder outside the clone); etcd from the `etcd-server` package, found on PATH. Every
process binds 127.0.0.1 on a free port and keeps its data in a temporary folder.

Two identities: `admin` (system:masters) for the tests' own setup, and the bot, authenticated
as the ServiceAccount that `deploy/kubernetes` binds to its ClusterRole and Roles, which
`grant_bot_rights` loads from those manifests: the bot runs with exactly the rights it ships.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

BUILD_COMMAND = "scripts/kube-binaries.sh --add-deb-src"


def cache_root() -> Path:
    """Where scripts/kube-binaries.sh builds (FORGEBOT_KUBE_CACHE, or the user's cache)."""
    return Path(
        os.environ.get("FORGEBOT_KUBE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "forgebot" / "kube"
    )


BUILD_MARK = ".forgebot-build"
"""Written by scripts/kube-binaries.sh next to the binaries it built with today's fixes."""

BOT_RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


class BinariesMissing(RuntimeError):
    """What is missing, and the command that provides it."""


@dataclass(frozen=True)
class KubeBinaries:
    apiserver: Path
    controller_manager: Path
    etcd: Path


def find_binaries() -> KubeBinaries:
    """etcd from PATH; the Kubernetes binaries from FORGEBOT_KUBE_BIN_DIR, PATH, or the newest
    build in the cache folder of `scripts/kube-binaries.sh`."""
    etcd = shutil.which("etcd")
    if etcd is None:
        raise BinariesMissing("etcd is not on PATH (Debian: apt-get install -y etcd-server)")
    names = ("kube-apiserver", "kube-controller-manager")
    folders: list[Path] = []
    if os.environ.get("FORGEBOT_KUBE_BIN_DIR"):
        folders.append(Path(os.environ["FORGEBOT_KUBE_BIN_DIR"]))
    on_path = shutil.which(names[0])
    if on_path:
        folders.append(Path(on_path).parent)
    cache = cache_root()
    if cache.is_dir():
        # Only builds `scripts/kube-binaries.sh` marked: an older build of this cache lacks the
        # reflect2 fix and crashes the first time it encodes a custom resource.
        builds = [p for p in cache.glob("*/bin") if (p / BUILD_MARK).is_file()]
        folders.extend(sorted(builds, key=lambda p: p.stat().st_mtime, reverse=True))
    for folder in folders:
        found = [folder / n for n in names]
        if all(p.is_file() and os.access(p, os.X_OK) for p in found):
            return KubeBinaries(found[0], found[1], Path(etcd))
    raise BinariesMissing(
        "kube-apiserver and kube-controller-manager are not built: run "
        f"`{BUILD_COMMAND}` once (about 10 minutes on 2 cores; cached in {cache})"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self.log_file.close()


@dataclass(frozen=True)
class Identity:
    user: str
    token: str
    groups: tuple[str, ...]


@dataclass
class LocalCluster:
    """A running control plane; `stop()` ends its processes and removes its data."""

    url: str
    ca_file: Path
    admin: Identity
    bot: Identity
    workdir: Path
    version: str = ""
    _processes: list[_Process] = field(default_factory=list)
    _owns_workdir: bool = True

    def write_kubeconfig(
        self, path: Path, contexts: list[str], *, identity: Identity | None = None
    ) -> Path:
        """One context (and cluster) per name, all served by this control plane, as the bot
        (default) or as `identity`."""
        who = identity or self.bot
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": contexts[0] if contexts else "",
            "clusters": [
                {
                    "name": c,
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
                for c in contexts
            ],
            "users": [{"name": who.user, "user": {"token": who.token}}],
            "contexts": [
                {"name": c, "context": {"cluster": c, "user": who.user}} for c in contexts
            ],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def api_client(self, identity: Identity | None = None) -> Any:
        """An official-client ApiClient as `identity` (default: admin)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": (identity or self.admin).token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log})\n{p.tail()}" for p in self._processes)

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _service_account_keys(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = folder / "sa.key", folder / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _spawn(name: str, argv: list[str], workdir: Path) -> _Process:
    log = workdir / f"{name}.log"
    log_file = log.open("wb")
    popen = subprocess.Popen(  # noqa: S603 - our own argv
        argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
    )
    return _Process(name, popen, log, log_file)


def _wait(what: str, ready: Any, processes: list[_Process], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in processes:
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")
        if ready():
            return
        time.sleep(0.2)
    logs = "\n".join(p.tail() for p in processes)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f} s:\n{logs}")


def _get(url: str, token: str | None, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - loopback http(s) only
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def start_local_cluster(
    binaries: KubeBinaries | None = None, *, workdir: Path | None = None, timeout: float = 120.0
) -> LocalCluster:
    """Start etcd, kube-apiserver and kube-controller-manager; returns once the API server is
    ready (RBAC's bootstrap roles included) and the controller-manager is running."""
    binaries = binaries or find_binaries()
    owns = workdir is None
    # Data in memory when possible: etcd fsyncs every write, and these machines are busy.
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private folder in it
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    folder = workdir or Path(tempfile.mkdtemp(prefix="forgebot-kube-", dir=base))
    processes: list[_Process] = []
    try:
        return _start(binaries, folder, processes, owns, timeout)
    except BaseException:
        for process in reversed(processes):
            process.stop()
        if owns:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _start(
    binaries: KubeBinaries,
    folder: Path,
    processes: list[_Process],
    owns: bool,
    timeout: float,
) -> LocalCluster:
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    processes.append(
        _spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=forgebot",
                f"--data-dir={folder / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=forgebot=http://127.0.0.1:{peer_port}",
                "--log-level=warn",
                "--logger=zap",
            ],
            folder,
        )
    )
    _wait(
        "etcd",
        lambda: _get(f"{etcd_url}/health", None, None)[0] == 200,
        processes,
        timeout,
    )

    admin = Identity("forgebot-test-admin", secrets.token_hex(16), ("system:masters",))
    sa_namespace, sa_name = bot_service_account()
    bot = Identity(
        f"system:serviceaccount:{sa_namespace}:{sa_name}",
        secrets.token_hex(16),
        ("system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}"),
    )
    tokens = folder / "tokens.csv"
    tokens.write_text(
        "".join(f'{i.token},{i.user},{i.user},"{",".join(i.groups)}"\n' for i in (admin, bot)),
        encoding="utf-8",
    )
    tokens.chmod(0o600)
    sa_key, sa_pub = _service_account_keys(folder)
    certs = folder / "certs"
    processes.append(
        _spawn(
            "kube-apiserver",
            [
                str(binaries.apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--insecure-port=0",
                f"--cert-dir={certs}",  # a self-signed serving certificate is made here
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,ResourceQuota",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--profiling=false",
                "--v=0",
            ],
            folder,
        )
    )
    url = f"https://127.0.0.1:{api_port}"
    ca_file = certs / "apiserver.crt"
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE

    def api_ready() -> bool:
        return _get(f"{url}/readyz", admin.token, insecure)[0] == 200

    _wait("kube-apiserver", api_ready, processes, timeout)
    verified = ssl.create_default_context(cafile=str(ca_file))
    status, body = _get(f"{url}/version", admin.token, verified)
    if status != 200:
        raise RuntimeError(f"kube-apiserver's certificate did not verify ({status} {body!r})")
    import json

    version = str(json.loads(body).get("gitVersion", ""))

    kubeconfig = folder / "controller-manager.kubeconfig"
    cluster = LocalCluster(url, ca_file, admin, bot, folder, version, processes, owns)
    cluster.write_kubeconfig(kubeconfig, ["local"], identity=admin)
    processes.append(
        _spawn(
            "kube-controller-manager",
            [
                str(binaries.controller_manager),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={ca_file}",
                "--use-service-account-credentials=false",
                # No kubelet heartbeats: the node lifecycle controller would taint the fake
                # node and evict every pod. Nothing here needs cloud or node IPAM either.
                "--controllers=*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-service,-route",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-namespace-syncs=10",
                "--v=0",
            ],
            folder,
        )
    )

    def default_service_account() -> bool:
        # The service-account controller writes it: proof the controller-manager is working.
        found = _get(
            f"{url}/api/v1/namespaces/default/serviceaccounts/default", admin.token, verified
        )
        return found[0] == 200

    _wait("kube-controller-manager", default_service_account, processes, timeout)
    return cluster


# --- the bot's rights, from its own manifests ---------------------------------------------------


def deploy_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _kustomization(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((folder / "kustomization.yaml").read_text("utf-8"))
    return data


def kustomization_namespace(kustomization: dict[str, Any]) -> str | None:
    """The namespace `kubectl apply -k` gives objects that name none: the `namespace:` field,
    or an inline NamespaceTransformer's (which, `unsetOnly`, keeps the namespaces objects
    name)."""
    if kustomization.get("namespace"):
        return str(kustomization["namespace"])
    for transformer in kustomization.get("transformers") or []:
        config = yaml.safe_load(transformer) if isinstance(transformer, str) else None
        if isinstance(config, dict) and config.get("kind") == "NamespaceTransformer":
            return str(config["metadata"]["namespace"])
    return None


def manifest_documents(folder: Path | None = None) -> Iterator[dict[str, Any]]:
    """Every object the kustomization lists, with the kustomization's namespace applied to the
    namespaced ones (as `kubectl apply -k` would)."""
    folder = folder or deploy_dir()
    kustomization = _kustomization(folder)
    namespace = kustomization_namespace(kustomization)
    for resource in kustomization.get("resources") or []:
        path = folder / str(resource)
        if not path.is_file():
            continue
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding") and namespace:
                doc.setdefault("metadata", {}).setdefault("namespace", namespace)
            yield doc


def bot_service_account(folder: Path | None = None) -> tuple[str, str]:
    """(namespace, name) of the ServiceAccount the manifests run the bot as."""
    for doc in manifest_documents(folder):
        if doc["kind"] == "ServiceAccount":
            meta = doc["metadata"]
            return str(meta.get("namespace") or "default"), str(meta["name"])
    raise RuntimeError(f"no ServiceAccount in {folder or deploy_dir()}")


def grant_bot_rights(cluster: LocalCluster, folder: Path | None = None) -> list[str]:
    """Create the manifests' namespace, ServiceAccount, ClusterRoles, Roles and their bindings,
    whatever they contain; returns what was created (`Kind name`)."""
    from kubernetes import client, utils

    created: list[str] = []
    docs = [
        d
        for d in manifest_documents(folder)
        if d["kind"] in ("Namespace", "ServiceAccount", *BOT_RBAC_KINDS)
    ]
    docs.sort(key=lambda d: 0 if d["kind"] == "Namespace" else 1)
    # The catalog's namespaces exist where forgebot is installed: here, create them first.
    named = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    wanted = sorted(
        {str(d["metadata"]["namespace"]) for d in docs if d["metadata"].get("namespace")} - named
    )
    docs[:0] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in wanted]
    with cluster.api_client() as api:
        for doc in docs:
            try:
                utils.create_from_dict(api, doc)  # type: ignore[no-untyped-call]
            except utils.FailToCreateError as exc:
                if not all(
                    isinstance(e, client.ApiException) and e.status == 409
                    for e in exc.api_exceptions
                ):
                    raise
            created.append(f"{doc['kind']} {doc['metadata']['name']}")
    return created


def install_crds(cluster: LocalCluster, files: list[Path], timeout: float = 60.0) -> list[str]:
    """Create the CustomResourceDefinitions in `files` (YAML, several documents each) and wait
    until the API server serves each (`Established`); returns their names."""
    from kubernetes import client

    names: list[str] = []
    with cluster.api_client() as api:
        extensions = client.ApiextensionsV1Api(api)
        for path in files:
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                try:
                    extensions.create_custom_resource_definition(doc)
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
                names.append(str(doc["metadata"]["name"]))
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                found: Any = extensions.read_custom_resource_definition(name)
                conditions = (found.status.conditions if found.status else None) or []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the CRD {name} was not established within {timeout:.0f} s")
                time.sleep(0.1)
    return names
