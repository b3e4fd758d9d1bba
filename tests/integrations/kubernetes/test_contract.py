"""One contract for the Kubernetes gateway and the flows on it, run against both the sandbox fake
(integrations/sandbox/kube_api.py) and a real kube-apiserver with its controllers
(tests/fixtures/real_kube.py). Whatever passes on one and fails on the other is a divergence:
fixed in the bot or in the fake, and listed in docs/kubernetes.md.

Everything is set up through the API (never the fake's Python state), the bot runs as the
identity deploy/kubernetes gives it, and each test uses its own namespaces, so the real
server is shared by the whole session.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.leader import LeaseElector
from commands.offhours import sweep
from commands.offhours.service import _DbOriginals
from core.catalog import KubernetesIdentity
from core.clock import ManualClock
from core.errors import Conflict, NotFound, UserInputError
from integrations.kubernetes.api_support import ApiNotServed
from integrations.kubernetes.errors import KubeForbidden
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.rollout import RolloutStatus
from integrations.kubernetes.scaling import DEPLOYMENT, HPA, ScalingGateway
from integrations.sandbox.kube_cluster import bot_service_account
from storage.db import Database
from tests.fixtures.kube_contract import CLUSTER, CLUSTERS, Backend, eventually

TEAM = KubernetesIdentity(user="forgebot:payments", groups=["payments-devs"])
TEAM_CATALOG = """
platform_team: payments
teams:
  - name: payments
    channel: C0PAYMENTS
    members: [U0DEVELOPER]
    kubernetes: {user: "forgebot:payments", groups: [payments-devs]}
"""


@pytest.fixture
async def gateway(backend: Backend) -> AsyncIterator[KubeGateway]:
    kube = KubeGateway(CLUSTERS, kubeconfig=str(backend.kubeconfig), concurrency=4)
    yield kube
    await kube.close()


async def settled(kube: KubeGateway, namespace: str, name: str) -> RolloutStatus:
    return await eventually(
        lambda: kube.rollout_status(CLUSTER, namespace, name), lambda s: s.done or s.failed
    )


# --- provisioning --------------------------------------------------------------------------------


async def test_provisioning_creates_labelled_objects_and_repeats_safely(
    backend: Backend, gateway: KubeGateway
) -> None:
    name = backend.unique("pv-contract")
    labels = {"forgebot.io/team": "payments", "forgebot.io/managed-by": "forgebot"}
    annotations = {"forgebot.io/expires-at": "2026-12-01T00:00:00+00:00"}
    created = await gateway.create_namespace(CLUSTER, name, labels, annotations)
    assert (created.name, created.phase) == (name, "Active") and created.resource_version
    assert labels.items() <= created.labels.items()
    assert created.annotations == annotations
    for _ in range(2):  # provisioning is re-run after a crash: every step must repeat
        await gateway.apply_resource_quota(CLUSTER, name, Decimal("0.5"), Decimal("1.5"), 10)
        await gateway.apply_limit_range(CLUSTER, name)
        await gateway.apply_role_binding(CLUSTER, name, "payments-devs")
        await gateway.apply_network_policy(CLUSTER, name)
    with pytest.raises(Conflict):
        await gateway.create_namespace(CLUSTER, name, labels, annotations)

    quota = backend.read(f"/api/v1/namespaces/{name}/resourcequotas/forgebot-quota")
    assert quota["spec"]["hard"] == {
        "requests.cpu": "500m",
        "limits.cpu": "500m",
        "requests.memory": "1536Mi",
        "limits.memory": "1536Mi",
        "pods": "10",
    }
    limits = backend.read(f"/api/v1/namespaces/{name}/limitranges/forgebot-defaults")
    assert limits["spec"]["limits"][0]["default"] == {"cpu": "500m", "memory": "512Mi"}
    binding = backend.read(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/rolebindings/forgebot-team-edit"
    )
    assert binding["roleRef"]["name"] == "edit"
    assert binding["subjects"][0]["name"] == "payments-devs"
    policy = backend.read(
        f"/apis/networking.k8s.io/v1/namespaces/{name}/networkpolicies/forgebot-isolate"
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for obj in (quota, limits, binding, policy):
        assert obj["metadata"]["labels"] == {"forgebot.io/managed-by": "forgebot"}
    listed = await gateway.list_namespaces(CLUSTER, "forgebot.io/team=payments")
    assert name in [n.name for n in listed]
    patched = await gateway.patch_namespace(
        CLUSTER, name, annotations={"forgebot.io/expires-at": "later"}
    )
    assert patched.annotations["forgebot.io/expires-at"] == "later"


async def test_invalid_names_are_refused_by_the_server(
    backend: Backend, gateway: KubeGateway
) -> None:
    with pytest.raises(UserInputError, match="Invalid value"):
        await gateway.create_namespace(CLUSTER, "Not_Valid", {}, {})


# --- dry runs ------------------------------------------------------------------------------------


async def test_warm_up_dry_runs_every_write_and_changes_nothing(
    backend: Backend, gateway: KubeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        await gateway.warm()
    assert "not reachable" not in caplog.text, caplog.text
    with pytest.raises(NotFound):
        await gateway.get_namespace(CLUSTER, "forgebot-warm-up")
    with pytest.raises(NotFound):
        backend.read("/api/v1/namespaces/default/resourcequotas/forgebot-quota")
    # The start-up names every API the cluster is too old to serve.
    for group_version, resource in (
        ("autoscaling/v2", "horizontalpodautoscalers"),
        ("batch/v1", "cronjobs"),
    ):
        named = f"does not serve {resource} in {group_version}" in caplog.text
        assert named == (not backend.serves(group_version, resource)), caplog.text


# --- impersonation ---------------------------------------------------------------------------------


async def test_impersonated_team_is_refused_until_its_role_binding_exists(
    backend: Backend, gateway: KubeGateway
) -> None:
    backend.grant_impersonation(TEAM_CATALOG)
    namespace = backend.namespace("shop")
    backend.deployment(namespace, "checkout", "registry.example.com/checkout:1.0.0")
    backend.forbid("get", "deployments", namespace)
    with pytest.raises(KubeForbidden, match=r'User "forgebot:payments" cannot get'):
        await gateway.revisions(CLUSTER, namespace, "checkout", TEAM)
    await gateway.apply_role_binding(CLUSTER, namespace, "payments-devs")  # grants `edit`
    backend.allow_all()
    revisions = await eventually(
        lambda: gateway.revisions(CLUSTER, namespace, "checkout", TEAM), lambda r: len(r) == 1
    )
    assert revisions[0].images == {"app": "registry.example.com/checkout:1.0.0"}


async def test_workload_listing_says_which_api_an_old_server_lacks(
    backend: Backend, gateway: KubeGateway
) -> None:
    namespace = backend.namespace("shop")
    backend.deployment(namespace, "checkout", "registry.example.com/checkout:1.0.0", replicas=1)
    if backend.serves("batch/v1", "cronjobs"):
        workloads = await gateway.list_workloads(CLUSTER, namespace)
        assert [(w.kind, w.name) for w in workloads] == [("Deployment", "checkout")]
    else:
        with pytest.raises(ApiNotServed, match=r"does not serve cronjobs in batch/v1.*1\.21"):
            await gateway.list_workloads(CLUSTER, namespace)
    # The deploy gate only mentions HPAs: on a server without autoscaling/v2 it says why it
    # cannot, and the deploy goes on.
    facts = await gateway.deployment_facts(CLUSTER, namespace, "checkout")
    assert facts.autoscalers == [] and facts.images == {
        "app": "registry.example.com/checkout:1.0.0"
    }
    if backend.serves("autoscaling/v2", "horizontalpodautoscalers"):
        assert facts.autoscalers_unknown == ""
    else:
        assert "does not serve horizontalpodautoscalers in autoscaling/v2" in (
            facts.autoscalers_unknown
        )


# --- deploys: image patches, rollouts, rollback -------------------------------------------------


async def test_image_patch_with_resource_version_conflicts(
    backend: Backend, gateway: KubeGateway
) -> None:
    namespace = backend.namespace("shop")
    backend.deployment(namespace, "checkout", "registry.example.com/checkout:1.0.0")
    assert await gateway.set_image(
        CLUSTER, namespace, "checkout", "app", "registry.example.com/checkout:1.1.0"
    )
    assert not await gateway.set_image(
        CLUSTER, namespace, "checkout", "app", "registry.example.com/checkout:1.1.0"
    ), "the image it already runs: nothing to patch"
    with pytest.raises(NotFound, match="has no container web"):
        await gateway.set_image(CLUSTER, namespace, "checkout", "web", "x:1")

    apps = client.AppsV1Api(backend.admin)
    writes: list[str] = []

    def read(api: client.ApiClient) -> Any:
        return client.AppsV1Api(api).read_namespaced_deployment("checkout", namespace)

    def write(api: client.ApiClient, seen: Any) -> Any:
        if not writes:  # someone else writes between our read and our write, once
            apps.patch_namespaced_deployment(
                "checkout", namespace, {"metadata": {"labels": {"touched": "yes"}}}
            )
        writes.append(seen.metadata.resource_version)
        body = {
            "metadata": {"resourceVersion": seen.metadata.resource_version},
            "spec": {"replicas": 3},
        }
        return client.AppsV1Api(api).patch_namespaced_deployment("checkout", namespace, body)

    await gateway.patch_with_retry(CLUSTER, "deployment checkout", read, write)
    assert len(writes) == 2 and writes[0] != writes[1], "refused once (409), then re-read"
    stored = apps.read_namespaced_deployment("checkout", namespace)
    assert stored.spec.replicas == 3 and stored.metadata.labels["touched"] == "yes"

    stale = {"metadata": {"resourceVersion": writes[0]}, "spec": {"replicas": 1}}
    with pytest.raises(Conflict):
        await gateway.patch_with_retry(
            CLUSTER,
            "deployment checkout",
            read,
            lambda api, _: client.AppsV1Api(api).patch_namespaced_deployment(
                "checkout", namespace, stale
            ),
            attempts=2,
        )


async def test_rollout_is_followed_to_available(backend: Backend, gateway: KubeGateway) -> None:
    namespace = backend.namespace("shop")
    backend.deployment(namespace, "checkout", "registry.example.com/checkout:1.0.0", replicas=3)
    first = await settled(gateway, namespace, "checkout")
    assert first.done and (first.replicas, first.ready, first.available) == (3, 3, 3)
    await gateway.set_image(
        CLUSTER, namespace, "checkout", "app", "registry.example.com/checkout:1.1.0"
    )
    second = await settled(gateway, namespace, "checkout")
    assert second.done and not second.failed and second.fraction == 1.0
    facts_images = [
        r.images["app"] for r in await gateway.revisions(CLUSTER, namespace, "checkout")
    ]
    assert facts_images == [
        "registry.example.com/checkout:1.1.0",
        "registry.example.com/checkout:1.0.0",
    ]


async def test_a_broken_image_passes_its_progress_deadline(
    backend: Backend, gateway: KubeGateway
) -> None:
    namespace = backend.namespace("shop")
    backend.deployment(
        namespace, "worker", "registry.example.com/worker:1.0.0", replicas=2, deadline=3
    )
    assert (await settled(gateway, namespace, "worker")).done
    await gateway.set_image(
        CLUSTER, namespace, "worker", "app", "registry.example.com/worker:broken"
    )
    status = await settled(gateway, namespace, "worker")
    assert status.failed and not status.done
    assert "ImagePullBackOff" in status.reason
    assert "registry.example.com/worker:broken" in status.reason


async def test_rollback_reuses_the_old_replica_set_like_rollout_undo(
    backend: Backend, gateway: KubeGateway
) -> None:
    namespace = backend.namespace("shop")
    backend.deployment(namespace, "checkout", "registry.example.com/checkout:1.0.0")
    await settled(gateway, namespace, "checkout")
    await gateway.set_image(
        CLUSTER, namespace, "checkout", "app", "registry.example.com/checkout:1.1.0"
    )
    await settled(gateway, namespace, "checkout")
    before = await gateway.revisions(CLUSTER, namespace, "checkout")
    assert [r.number for r in before] == [2, 1]

    await gateway.rollback(CLUSTER, namespace, "checkout", 1)
    assert (await settled(gateway, namespace, "checkout")).done
    after = await gateway.revisions(CLUSTER, namespace, "checkout")
    # `kubectl rollout undo`: no new ReplicaSet; revision 1's becomes revision 3.
    assert [(r.number, r.replica_set) for r in after] == [
        (3, before[1].replica_set),
        (2, before[0].replica_set),
    ]
    assert after[0].images == {"app": "registry.example.com/checkout:1.0.0"}
    assert (after[0].replicas, after[1].replicas) == (2, 0)
    deployment = backend.read(f"/apis/apps/v1/namespaces/{namespace}/deployments/checkout")
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "pod-template-hash" not in template_labels
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    with pytest.raises(NotFound, match="revision 7"):
        await gateway.rollback(CLUSTER, namespace, "checkout", 7)


# --- off-hours ---------------------------------------------------------------------------------


@pytest.fixture
def originals_db(sqlite_url: str) -> Iterator[Database]:
    db = Database(sqlite_url, workers=2)
    yield db
    db.close()


async def test_offhours_sleep_and_exact_restore(
    backend: Backend, gateway: KubeGateway, originals_db: Database
) -> None:
    namespace = backend.namespace("pv-night")
    for name, replicas in (("web", 3), ("api", 1), ("idle", 0)):
        backend.deployment(namespace, name, f"registry.example.com/{name}:1", replicas=replicas)
    scaling = ScalingGateway(gateway)
    store = _DbOriginals(
        originals_db, ManualClock(datetime(2026, 11, 24, 18, tzinfo=UTC)), namespace, None
    )
    old_server = not backend.serves("batch/v1", "cronjobs")

    slept = await sweep.shutdown(scaling, store, CLUSTER, namespace)
    assert (slept.changed, slept.unchanged) == (2, 1), slept
    if old_server:  # what it could not see is reported, what it could is asleep
        assert any("cronjobs in batch/v1" in f for f in slept.failures), slept.failures
    else:
        assert slept.ok, slept.failures
    apps = client.AppsV1Api(backend.admin)
    for name, original in (("web", "3"), ("api", "1")):
        asleep = apps.read_namespaced_deployment(name, namespace)
        assert asleep.spec.replicas == 0
        assert asleep.metadata.annotations["forgebot.io/original-replicas"] == original
    again = await sweep.shutdown(scaling, store, CLUSTER, namespace)
    assert again.changed == 0, "a repeated shutdown changes nothing"

    # Someone scales one by hand while it sleeps: their count is kept.
    apps.patch_namespaced_deployment("api", namespace, {"spec": {"replicas": 2}})
    woken = await sweep.wake(scaling, store, CLUSTER, namespace)
    assert woken.changed == 2 and len(woken.kept_by_hand) == 1, woken
    restored = {
        d.metadata.name: (
            d.spec.replicas,
            (d.metadata.annotations or {}).get("forgebot.io/original-replicas"),
        )
        for d in apps.list_namespaced_deployment(namespace).items
    }
    assert restored == {"web": (3, None), "api": (2, None), "idle": (0, None)}
    assert await store.live() == {}, "every record is closed"
    # The controller follows: the pods come back.
    status = await settled(gateway, namespace, "web")
    assert status.done and status.ready == 3


async def test_offhours_hpa_floor_and_restore(
    backend: Backend, gateway: KubeGateway, originals_db: Database
) -> None:
    backend.require("autoscaling/v2", "horizontalpodautoscalers")
    backend.require("batch/v1", "cronjobs")
    namespace = backend.namespace("pv-night")
    backend.deployment(namespace, "web", "registry.example.com/web:1", replicas=4)
    client.AutoscalingV2Api(backend.admin).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 10,
            },
        },
    )
    scaling = ScalingGateway(gateway)
    store = _DbOriginals(originals_db, ManualClock(datetime.now(UTC)), namespace, None)
    facts = await gateway.deployment_facts(CLUSTER, namespace, "web")
    assert facts.autoscalers == ["web"]
    slept = await sweep.shutdown(scaling, store, CLUSTER, namespace)
    assert slept.ok and slept.changed == 2
    hpa = await scaling.read(CLUSTER, namespace, HPA, "web")
    assert hpa.min_replicas == 1 and hpa.annotations["forgebot.io/original-min-replicas"] == "3"
    woken = await sweep.wake(scaling, store, CLUSTER, namespace)
    assert woken.ok
    hpa = await scaling.read(CLUSTER, namespace, HPA, "web")
    web = await scaling.read(CLUSTER, namespace, DEPLOYMENT, "web")
    assert (hpa.min_replicas, web.replicas) == (3, 4)
    raw = backend.read(f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/web")
    assert raw["spec"]["maxReplicas"] == 10, "the maximum is never touched"


# --- leader election -----------------------------------------------------------------------------


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_lease_leadership_and_hand_over_with_the_bots_rights(backend: Backend) -> None:
    namespace, _ = bot_service_account()  # the Role in deploy/kubernetes lives there
    core, leases = client.CoreV1Api(backend.admin), client.CoordinationV1Api(backend.admin)
    try:
        core.create_namespace({"metadata": {"name": namespace}})
    except ApiException as exc:
        assert exc.status == 409
    try:
        leases.delete_namespaced_lease("forgebot-scheduler", namespace)
    except ApiException as exc:
        assert exc.status == 404

    def elector(identity: str, clock: Monotonic) -> LeaseElector:
        return LeaseElector(
            identity,
            name="forgebot-scheduler",
            namespace=namespace,
            lease_seconds=15,
            kubeconfig=str(backend.kubeconfig),
            context=CLUSTER,
            monotonic=clock,
        )

    clock_a, clock_b = Monotonic(), Monotonic()
    a, b = elector("replica-a", clock_a), elector("replica-b", clock_b)
    assert await a.try_acquire() is True
    assert await b.try_acquire() is False
    clock_b.now += 14
    assert await a.try_acquire() is True, "renewed"
    assert await b.try_acquire() is False
    clock_b.now += 15.5
    assert await b.try_acquire() is True, "A stopped renewing: B takes over"
    taken = leases.read_namespaced_lease("forgebot-scheduler", namespace)
    assert (taken.spec.holder_identity, taken.spec.lease_transitions) == ("replica-b", 1)
    assert await a.try_acquire() is False
    await b.release()
    released = leases.read_namespaced_lease("forgebot-scheduler", namespace)
    assert released.spec.holder_identity is None
    assert await a.try_acquire() is True, "a released lease is taken at once"
    await a.release()


# --- namespace deletion ----------------------------------------------------------------------------


async def test_namespace_deletion_runs_to_completion(
    backend: Backend, gateway: KubeGateway
) -> None:
    name = backend.unique("pv-gone")
    await gateway.create_namespace(CLUSTER, name, {"forgebot.io/managed-by": "forgebot"}, {})
    await gateway.apply_resource_quota(CLUSTER, name, Decimal("2"), Decimal("4"), 20)
    backend.deployment(name, "web", "registry.example.com/web:1", replicas=1)
    await gateway.delete_namespace(CLUSTER, name)

    async def phase() -> str:
        try:
            return (await gateway.get_namespace(CLUSTER, name)).phase
        except NotFound:
            return "gone"

    assert await phase() in ("Terminating", "gone")
    await eventually(phase, lambda p: p == "gone")
    with pytest.raises(NotFound):
        backend.read(f"/api/v1/namespaces/{name}/resourcequotas/forgebot-quota")
    with pytest.raises(NotFound):
        await gateway.delete_namespace(CLUSTER, name)
