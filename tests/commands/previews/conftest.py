"""The previews flow's fixtures: the fake code hosts, and the bot configured to use them."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.catalog import Catalog
from core.config import Settings
from integrations.codehost.webhooks import github_signature
from integrations.sandbox.codehost_api import (
    FakeCodeHost,
    RunningFakeCodeHost,
    start_fake_codehost,
)
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from storage import previews as repo
from storage.previews import PullRequestPreview
from tests.bot_harness import BotHarness, running_bot_harness

CODEHOST_TOKEN = "codehost-token-0123456789"
GITHUB_SECRET = "github-webhook-secret-0123456789"
GITLAB_TOKEN = "gitlab-webhook-token-0123456789"


@pytest.fixture(scope="session")
def codehost_server() -> Iterator[RunningFakeCodeHost]:
    running = start_fake_codehost(CODEHOST_TOKEN)
    yield running
    running.stop()


@pytest.fixture
def codehost(codehost_server: RunningFakeCodeHost) -> Iterator[FakeCodeHost]:
    codehost_server.state.reset()
    yield codehost_server.state
    assert codehost_server.state.violations == [], "requests broke the documented shapes"


class PreviewHarness(BotHarness):
    codehost: FakeCodeHost
    session: aiohttp.ClientSession

    async def github(
        self,
        payload: dict[str, Any],
        *,
        delivery: str | None = None,
        event: str = "pull_request",
        secret: str = GITHUB_SECRET,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        raw = body if body is not None else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or f"{random.getrandbits(64):016x}",
            "X-Hub-Signature-256": github_signature(secret, raw),
        }
        async with self.session.post(
            f"{self.runtime.url}/api/webhooks/github", data=raw, headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)

    async def gitlab(
        self, payload: dict[str, Any], *, token: str = GITLAB_TOKEN, delivery: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Merge Request Hook",
            "X-Gitlab-Token": token,
            "X-Gitlab-Event-UUID": delivery or f"{random.getrandbits(64):016x}",
        }
        async with self.session.post(
            f"{self.runtime.url}/api/webhooks/gitlab", data=json.dumps(payload), headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)

    async def settle(self) -> None:
        """Until the work the webhooks started is done: syncs, first posts, message updates."""
        ctx = self.runtime.ctx
        assert ctx is not None and ctx.previews is not None
        for _ in range(50):
            await ctx.operations.wait_idle()
            await ctx.previews.announcer.flush()
            await ctx.slack.flush()
            if not ctx.operations._tasks and not ctx.previews.announcer._posting:
                return
        raise AssertionError("previews did not settle")

    async def preview(self, provider: str, repository: str, number: int) -> PullRequestPreview:
        assert self.runtime.db is not None
        found = await self.runtime.db.run(
            lambda s: repo.by_pull_request(s, provider, repository, number)
        )
        assert found is not None
        return found


@pytest.fixture
async def harness(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    codehost: FakeCodeHost,
    codehost_server: RunningFakeCodeHost,
) -> AsyncIterator[PreviewHarness]:
    settings = bot_settings.model_copy(
        update={
            "github_webhook_secret": _secret(GITHUB_SECRET),
            "gitlab_webhook_token": _secret(GITLAB_TOKEN),
            "github_token": _secret(CODEHOST_TOKEN),
            "gitlab_token": _secret(CODEHOST_TOKEN),
            "github_api_url": codehost_server.github_url,
            "gitlab_api_url": codehost_server.gitlab_url,
        }
    )

    def faster(runtime: Any) -> None:
        # The preview rollout runner polls the fake's rollouts without waiting a second.
        runtime.ctx.previews.rollouts.poll_seconds = 0.05

    async with running_bot_harness(
        PreviewHarness, settings, catalog, fake_slack, fake_kube, kubeconfig, prepare=faster
    ) as started:
        started.codehost = codehost
        async with aiohttp.ClientSession() as session:
            started.session = session
            yield started
            await started.settle()
        await asyncio.sleep(0)


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)
