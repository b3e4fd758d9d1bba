"""The gateway, through the official client, against the protocol-faithful fake API server."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import kubernetes_validate
import pytest
from kubernetes import client

from core.catalog import KubernetesIdentity
from core.errors import Conflict, DependencyUnavailable, ForgebotError, NotFound, UserInputError
from integrations.kubernetes import manifests
from integrations.kubernetes.errors import KubeForbidden
from integrations.kubernetes.gateway import KubeGateway
from integrations.sandbox.kube_api import FakeKube

SCHEMA_VERSION = "1.31"


@pytest.mark.parametrize(
    "manifest",
    [
        manifests.namespace(
            "pv-a",
            {"forgebot.io/team": "payments"},
            {"forgebot.io/expires-at": "2026-12-01T00:00:00+00:00"},
        ),
        manifests.resource_quota("pv-a", Decimal("2"), Decimal("4"), 50),
        manifests.resource_quota("pv-a", Decimal("0.5"), Decimal("1.5"), 10),
        manifests.limit_range("pv-a"),
        manifests.role_binding("pv-a", "payments-devs"),
        manifests.network_policy("pv-a"),
    ],
)
def test_every_object_validates_against_the_official_schema(manifest: dict[str, object]) -> None:
    kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)


async def test_namespace_lifecycle(kube: KubeGateway, fake_kube: FakeKube) -> None:
    created = await kube.create_namespace(
        "dev-cluster", "pv-a", {"forgebot.io/team": "payments"}, {"note": "x"}
    )
    assert created.name == "pv-a" and created.phase == "Active" and created.resource_version
    with pytest.raises(Conflict):
        await kube.create_namespace("dev-cluster", "pv-a", {}, {})
    await kube.create_namespace("dev-cluster", "pv-b", {"forgebot.io/team": "search"}, {})
    listed = await kube.list_namespaces("dev-cluster", "forgebot.io/team=payments")
    assert [n.name for n in listed] == ["pv-a"]
    patched = await kube.patch_namespace(
        "dev-cluster", "pv-a", annotations={"forgebot.io/expires-at": "later"}
    )
    assert patched.annotations == {"note": "x", "forgebot.io/expires-at": "later"}
    await kube.apply_resource_quota("dev-cluster", "pv-a", Decimal("2"), Decimal("4"), 50)
    await kube.delete_namespace("dev-cluster", "pv-a")
    with pytest.raises(NotFound):
        await kube.get_namespace("dev-cluster", "pv-a")
    assert fake_kube.find("resourcequotas", "pv-a", "forgebot-quota") is None, (
        "deleting a namespace removes its contents"
    )


async def test_applies_are_idempotent_and_objects_are_valid(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    await kube.create_namespace("dev-cluster", "pv-c", {}, {})
    for _ in range(2):  # a re-run after a crash must not fail
        await kube.apply_resource_quota("dev-cluster", "pv-c", Decimal("4"), Decimal("8"), 50)
        await kube.apply_limit_range("dev-cluster", "pv-c")
        await kube.apply_role_binding("dev-cluster", "pv-c", "payments-devs")
        await kube.apply_network_policy("dev-cluster", "pv-c")
    for plural, name in [
        ("resourcequotas", "forgebot-quota"),
        ("limitranges", "forgebot-defaults"),
        ("rolebindings", "forgebot-team-edit"),
        ("networkpolicies", "forgebot-isolate"),
    ]:
        stored = fake_kube.find(plural, "pv-c", name)
        assert stored is not None, plural
        # What the server holds (with server-set metadata dropped) is schema-valid.
        stored["metadata"] = {
            k: v for k, v in stored["metadata"].items() if k in ("name", "namespace", "labels")
        }
        stored.pop("status", None)
        kubernetes_validate.validate(stored, SCHEMA_VERSION, strict=True)
    quota = fake_kube.find("resourcequotas", "pv-c", "forgebot-quota")
    assert quota is not None and quota["spec"]["hard"]["requests.memory"] == "8Gi"


async def test_api_errors_become_domain_errors(kube: KubeGateway, fake_kube: FakeKube) -> None:
    with pytest.raises(UserInputError, match="Invalid value"):
        await kube.create_namespace("dev-cluster", "Not_Valid", {}, {})
    fake_kube.faults.forbid.append(("create", "namespaces", "*"))
    with pytest.raises(KubeForbidden, match="may not create namespace pv-d on dev-cluster"):
        await kube.create_namespace("dev-cluster", "pv-d", {}, {})
    fake_kube.faults.forbid.clear()
    fake_kube.faults.errors_500 = 1
    with pytest.raises(DependencyUnavailable, match="answered 500"):
        await kube.get_namespace("dev-cluster", "pv-d")
    with pytest.raises(Exception, match="unknown cluster moon"):
        await kube.get_namespace("moon", "x")


async def test_unreachable_cluster(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: dead, context: {cluster: dead, user: u}}]\n"
    )
    gateway = KubeGateway(["dead"], kubeconfig=str(config))
    with pytest.raises(DependencyUnavailable, match="cluster dead is unreachable"):
        await gateway.get_namespace("dead", "x")
    await gateway.close()


async def test_concurrency_is_bounded(kube: KubeGateway, fake_kube: FakeKube) -> None:
    fake_kube.faults.latency = 0.05
    await asyncio.gather(
        *[kube.create_namespace("dev-cluster", f"pv-{i}", {}, {}) for i in range(16)]
    )
    assert len([k for k in fake_kube.objects if k[1] == "namespaces"]) == 16 + 1, "and default"
    assert fake_kube.max_in_flight <= 4


async def test_patch_with_retry_survives_a_conflict_storm(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    fake_kube.seed_deployment("shop", "checkout", "registry.example.com/payments/checkout:1.0.0")

    def read(api: client.ApiClient) -> object:
        return client.AppsV1Api(api).read_namespaced_deployment("checkout", "shop")

    def write(api: client.ApiClient, current: object) -> object:
        body = client.AppsV1Api(api).api_client.sanitize_for_serialization(current)
        body["spec"]["template"]["spec"]["containers"][0]["image"] = (
            "registry.example.com/payments/checkout:1.1.0"
        )
        return client.AppsV1Api(api).replace_namespaced_deployment("checkout", "shop", body)

    fake_kube.faults.conflicts = 2
    await kube.patch_with_retry("dev-cluster", "deployment checkout", read, write)
    stored = fake_kube.find("deployments", "shop", "checkout")
    assert stored is not None
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.1.0")
    assert stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    fake_kube.faults.conflicts = 50
    with pytest.raises(Conflict, match="kept changing"):
        await kube.patch_with_retry("dev-cluster", "deployment checkout", read, write, attempts=3)


async def test_workloads_listed_as_the_impersonated_team(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    fake_kube.seed_deployment(
        "shop", "checkout", "registry.example.com/payments/checkout:1.0.0", replicas=3
    )
    fake_kube.seed_deployment(
        "shop", "worker", "registry.example.com/payments/worker:broken", replicas=2
    )
    identity = KubernetesIdentity(user="forgebot:payments", groups=["payments-devs"])
    workloads = await kube.list_workloads("dev-cluster", "shop", identity)
    summary = {(w.kind, w.name, w.replicas, w.ready) for w in workloads}
    assert summary == {("Deployment", "checkout", 3, 3), ("Deployment", "worker", 2, 0)}
    listed = [r for r in fake_kube.requests if r[1].endswith("/namespaces/shop/deployments")]
    assert listed and listed[-1][2] == {
        "Impersonate-User": "forgebot:payments",
        "Impersonate-Group": "payments-devs",
    }
    # The team's own rights apply: a namespace it may not read is refused as the team.
    fake_kube.faults.forbid.append(("list", "deployments", "shop"))
    with pytest.raises(KubeForbidden, match='User "forgebot:payments" cannot list'):
        await kube.list_workloads("dev-cluster", "shop", identity)


async def test_dropped_connections_are_reported_as_unreachable(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    await kube.create_namespace("dev-cluster", "pv-drop", {}, {})
    fake_kube.faults.drops = 1
    with pytest.raises(DependencyUnavailable, match="dev-cluster is unreachable"):
        await kube.get_namespace("dev-cluster", "pv-drop")
    assert (await kube.get_namespace("dev-cluster", "pv-drop")).name == "pv-drop", "and it recovers"


async def test_a_cluster_missing_from_the_kubeconfig_is_explained(kubeconfig: Path) -> None:
    gateway = KubeGateway(["dev-cluster", "staging-cluster"], kubeconfig=str(kubeconfig))
    with pytest.raises(DependencyUnavailable, match="not configured for cluster staging-cluster"):
        await gateway.get_namespace("staging-cluster", "x")
    await gateway.warm()  # logs the missing cluster instead of failing the start-up
    await gateway.close()


async def test_a_namespace_forgebot_did_not_create_is_never_deleted(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    fake_kube.seed_namespace("kube-system")
    fake_kube.seed_namespace("team-owned", {"team": "payments"})
    for name in ("kube-system", "team-owned"):
        with pytest.raises(ForgebotError, match="forgebot did not create it"):
            await kube.delete_namespace("dev-cluster", name)
        assert fake_kube.find("namespaces", "", name) is not None
    created = await kube.create_namespace("dev-cluster", "pv-mine", {}, {})
    assert created.labels[manifests.MANAGED_BY] == manifests.MANAGED_BY_VALUE
    await kube.delete_namespace("dev-cluster", "pv-mine")
