"""The fake API server's deployment controller, read through the official client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client, config

from core.clock import ManualClock
from integrations.sandbox.kube_api import RunningFakeKube, start_fake_kube


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[RunningFakeKube, ManualClock, client.ApiClient]]:
    clock = ManualClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    fake = start_fake_kube(clock)
    fake.state.rollout_seconds = 60
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(fake.write_kubeconfig(tmp_path / "kc", ["dev"])),
        context="dev",
        client_configuration=configuration,
    )
    api = client.ApiClient(configuration)
    yield fake, clock, api
    api.close()
    fake.stop()


def test_rollout_converges_over_time_and_rollback_reuses_the_old_replica_set(
    cluster: tuple[RunningFakeKube, ManualClock, client.ApiClient],
) -> None:
    fake, clock, api = cluster
    apps = client.AppsV1Api(api)
    fake.state.seed_deployment(
        "shop", "checkout", "registry.example.com/checkout:1.0.0", replicas=4
    )
    assert apps.read_namespaced_deployment("checkout", "shop").status.ready_replicas == 0
    clock.advance(timedelta(seconds=30))
    assert apps.read_namespaced_deployment("checkout", "shop").status.ready_replicas == 2
    clock.advance(timedelta(seconds=30))
    done = apps.read_namespaced_deployment("checkout", "shop")
    assert done.status.ready_replicas == 4
    assert [c.reason for c in done.status.conditions if c.type == "Progressing"] == [
        "NewReplicaSetAvailable"
    ]

    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "app", "image": "registry.example.com/checkout:1.1.0"}]
                }
            }
        }
    }
    apps.patch_namespaced_deployment("checkout", "shop", patch)
    clock.advance(timedelta(seconds=60))
    sets = apps.list_namespaced_replica_set("shop").items
    revisions = {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs for rs in sets}
    assert set(revisions) == {"1", "2"} and revisions["1"].spec.replicas == 0
    old_template = revisions["1"].spec.template
    assert old_template.metadata.labels["pod-template-hash"]
    # `kubectl rollout undo`: the old template, without its pod-template-hash, goes back.
    labels = {k: v for k, v in old_template.metadata.labels.items() if k != "pod-template-hash"}
    body = api.sanitize_for_serialization(old_template)
    body["metadata"]["labels"] = labels
    apps.patch_namespaced_deployment("checkout", "shop", {"spec": {"template": body}})
    sets = apps.list_namespaced_replica_set("shop").items
    assert len(sets) == 2, "the old ReplicaSet is reused"
    assert sorted(rs.metadata.annotations["deployment.kubernetes.io/revision"] for rs in sets) == [
        "2",
        "3",
    ]


def test_broken_image_never_becomes_ready(
    cluster: tuple[RunningFakeKube, ManualClock, client.ApiClient],
) -> None:
    fake, clock, api = cluster
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    fake.state.seed_deployment("shop", "worker", "registry.example.com/worker:broken", replicas=2)
    clock.advance(timedelta(seconds=599))
    status = apps.read_namespaced_deployment("worker", "shop").status
    assert status.ready_replicas == 0
    assert [c.reason for c in status.conditions if c.type == "Progressing"] == ["ReplicaSetUpdated"]
    clock.advance(timedelta(seconds=2))
    status = apps.read_namespaced_deployment("worker", "shop").status
    assert [c.reason for c in status.conditions if c.type == "Progressing"] == [
        "ProgressDeadlineExceeded"
    ]
    pods = core.list_namespaced_pod("shop", label_selector="app=worker").items
    assert len(pods) == 2
    assert {p.status.container_statuses[0].state.waiting.reason for p in pods} == {
        "ImagePullBackOff"
    }
