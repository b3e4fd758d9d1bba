"""Telling an API the server does not serve from an object that does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from integrations.kubernetes.api_support import ApiNotServed, missing_apis, served
from integrations.sandbox.kube_api import FakeKube, RunningFakeKube


@pytest.fixture
def api(
    fake_kube_server: RunningFakeKube, fake_kube: FakeKube, tmp_path: Path
) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(fake_kube_server.write_kubeconfig(tmp_path / "kc", ["dev"])),
        context="dev",
        client_configuration=configuration,
    )
    with client.ApiClient(configuration) as api:
        yield api


def test_a_bare_404_names_the_api_and_a_missing_object_stays_a_404(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(
        ApiNotServed, match=r"cluster dev does not serve widgets in example\.com/v1"
    ):
        served(
            "dev",
            "example.com/v1",
            "widgets",
            lambda: custom.list_namespaced_custom_object("example.com", "v1", "shop", "widgets"),
        )
    with pytest.raises(ApiException) as missing:
        served("dev", "v1", "namespaces", lambda: client.CoreV1Api(api).read_namespace("nowhere"))
    assert missing.value.status == 404
    with pytest.raises(ApiNotServed, match=r"Kubernetes 1\.21 and newer serve it.*1\.23 or newer"):
        raise ApiNotServed("dev", "batch/v1", "cronjobs")


def test_the_fake_serves_every_api_forgebot_needs(api: client.ApiClient) -> None:
    assert missing_apis(api, "dev") == []
