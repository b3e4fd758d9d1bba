"""Off-hours' scaling operations through the official client against the fake API server:
patches with resourceVersion preconditions, and the validation a real API server applies."""

from __future__ import annotations

import pytest

from core.errors import Conflict, NotFound, UserInputError
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.scaling import DEPLOYMENT, HPA, ScalingGateway
from integrations.sandbox.kube_api import KINDS, FakeKube

_KIND = {k.kind: k for k in KINDS}


async def test_patches_are_refused_when_the_object_changed(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    scaling = ScalingGateway(kube)
    fake_kube.seed_deployment("shop", "web", "registry.example.com/web:1", replicas=3)
    [seen] = [
        o for o in await scaling.list_scalables("dev-cluster", "shop") if o.kind == DEPLOYMENT
    ]
    assert (seen.replicas, seen.resource_version != "") == (3, True)
    body = {"metadata": {"resourceVersion": seen.resource_version}, "spec": {"replicas": 0}}
    after = await scaling.patch("dev-cluster", "shop", DEPLOYMENT, "web", body)
    assert after.replicas == 0
    with pytest.raises(Conflict):
        await scaling.patch("dev-cluster", "shop", DEPLOYMENT, "web", body)
    with pytest.raises(NotFound):
        await scaling.read("dev-cluster", "shop", DEPLOYMENT, "gone")
    assert await scaling.list_scalables("dev-cluster", "no-such-namespace") == []


async def test_an_hpa_cannot_go_below_one_replica(kube: KubeGateway, fake_kube: FakeKube) -> None:
    scaling = ScalingGateway(kube)
    fake_kube.seed_namespace("shop")
    fake_kube.create(
        _KIND["HorizontalPodAutoscaler"],
        "shop",
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 10,
            },
        },
    )
    with pytest.raises(UserInputError, match="minReplicas: Invalid value: 0"):
        await scaling.patch("dev-cluster", "shop", HPA, "web", {"spec": {"minReplicas": 0}})
    lowered = await scaling.patch("dev-cluster", "shop", HPA, "web", {"spec": {"minReplicas": 1}})
    assert lowered.min_replicas == 1
    with pytest.raises(UserInputError, match="replicas: Invalid value: -1"):
        fake_kube.seed_deployment("shop", "api", "registry.example.com/api:1", replicas=2)
        await scaling.patch("dev-cluster", "shop", DEPLOYMENT, "api", {"spec": {"replicas": -1}})


async def test_a_cluster_snapshot_reads_every_object_in_pages(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    scaling = ScalingGateway(kube, page_size=2)
    for namespace, count in (("a", 3), ("b", 1), ("c", 2)):
        for i in range(count):
            fake_kube.seed_deployment(namespace, f"web-{i}", "registry.example.com/web:1", i + 1)
    before = len(fake_kube.requests)
    snapshot = await scaling.snapshot("dev-cluster")
    deployments = {
        (ns, o.name): o.replicas
        for ns, objects in snapshot.scalables.items()
        for o in objects
        if o.kind == DEPLOYMENT
    }
    assert deployments == {
        ("a", "web-0"): 1,
        ("a", "web-1"): 2,
        ("a", "web-2"): 3,
        ("b", "web-0"): 1,
        ("c", "web-0"): 1,
        ("c", "web-1"): 2,
    }
    assert {"a", "b", "c"} <= set(snapshot.namespaces)
    # Six Deployments in pages of two: three pages, and a follow-up page for nothing is not
    # asked for; the other kinds (none here) and the namespaces take one page or more each.
    deployment_pages = [
        (path, query)
        for _, path, _, query in fake_kube.requests[before:]
        if path == "/apis/apps/v1/deployments"
    ]
    assert len(deployment_pages) == 3
    assert all("limit=2" in query for _, query in deployment_pages)
    assert snapshot.calls == len(fake_kube.requests) - before
