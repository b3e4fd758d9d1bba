"""`/forge history` through the running bot, against the fake cluster."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runtime import Runtime
from commands.deploy.history import version_of
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SignedSlackClient, slash_command
from storage import deployments as repo
from storage.models import DeploymentRecord, DeployOutcome
from tests.fixtures.slack import DEVELOPER, SIGNING_SECRET

DEPLOYMENTS = next(k for k in KINDS if k.plural == "deployments")


@pytest.fixture
async def bot(
    bot_settings: Settings, catalog: Catalog, fake_kube: FakeKube, kubeconfig: Path
) -> AsyncIterator[tuple[Runtime, SignedSlackClient]]:
    runtime = Runtime(
        bot_settings.model_copy(update={"kubeconfig": str(kubeconfig)}),
        catalog,
        run_scheduler=False,
    )
    await runtime.start()
    signed = SignedSlackClient(runtime.url, SIGNING_SECRET)
    yield runtime, signed
    await signed.close()
    await runtime.stop()


def test_version_of_images() -> None:
    assert version_of("registry.example.com/payments/checkout:1.4.2") == "1.4.2"
    assert version_of("registry.example.com:5000/checkout") == "latest"
    assert version_of("r.example.com/app@sha256:" + "a" * 64) == "sha256:" + "a" * 64


async def test_history_lists_revisions_with_who_deployed(
    bot: tuple[Runtime, SignedSlackClient], fake_kube: FakeKube, fake_slack: RunningFakeSlack
) -> None:
    runtime, signed = bot
    fake_kube.seed_deployment(
        "checkout-staging", "checkout", "registry.example.com/payments/checkout:1.4.0"
    )
    for version in ("1.4.1", "1.4.2"):
        fake_kube.patch(
            DEPLOYMENTS,
            "checkout-staging",
            "checkout",
            "application/strategic-merge-patch+json",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "app",
                                    "image": f"registry.example.com/payments/checkout:{version}",
                                }
                            ]
                        }
                    }
                }
            },
        )
    assert runtime.db is not None
    record = DeploymentRecord(
        service="checkout",
        team="payments",
        environment="staging",
        version="1.4.2",
        actor="U0ONCALL",
        started_at=runtime.clock.now(),
        outcome=DeployOutcome.SUCCEEDED,
    )
    await runtime.db.run(lambda s: repo.record_finished(s, record))

    response = await signed.send(
        slash_command(
            DEVELOPER, "/forge", "history checkout staging", fake_slack.new_response_url()
        )
    )
    assert response.status == 200
    calls = await fake_slack.state.until(
        lambda calls: [c for c in calls if c.method == "response_url"]
    )
    text = json.dumps(calls[-1].args["blocks"])
    assert "3 revisions" in text
    assert "*1.4.2*" in text and "by <@U0ONCALL>" in text and "current" in text
    assert text.index("1.4.2") < text.index("1.4.1") < text.index("1.4.0"), "newest first"


async def test_history_input_errors(
    bot: tuple[Runtime, SignedSlackClient], fake_slack: RunningFakeSlack
) -> None:
    _, signed = bot
    for text, expected in (
        ("history checkout", "Name a service and an environment"),
        ("history ghost prod", "no service called `ghost`"),
        ("history search-api prod", "does not run in `prod`"),
    ):
        response = await signed.send(
            slash_command(DEVELOPER, "/forge", text, fake_slack.new_response_url())
        )
        assert expected in response.json()["text"], text
