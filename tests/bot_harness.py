"""The real bot on loopback for flow tests: an injectable clock, signed Slack requests in, the
fake Slack Web API and the fake Kubernetes API on the other side. Capabilities' tests subclass
`BotHarness` with their own helpers and start it with `running_bot_harness`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bot.runtime import Runtime
from core.catalog import Catalog
from core.clock import ManualClock
from core.config import Settings
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from integrations.sandbox.slack_payloads import SignedSlackClient
from tests.fixtures.slack import SIGNING_SECRET

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
H = TypeVar("H", bound="BotHarness")


class BotHarness:
    def __init__(
        self,
        runtime: Runtime,
        client: SignedSlackClient,
        slack: RunningFakeSlack,
        kube: FakeKube,
        clock: ManualClock,
    ) -> None:
        self.runtime, self.client, self.slack, self.kube, self.clock = (
            runtime,
            client,
            slack,
            kube,
            clock,
        )

    async def until(self, method: str, **match: Any) -> RecordedCall:
        """The latest call of `method` whose arguments include `match` (bounded wait)."""

        def found(calls: list[RecordedCall]) -> RecordedCall | None:
            hits = [
                c
                for c in calls
                if c.method == method and all(c.args.get(k) == v for k, v in match.items())
            ]
            return hits[-1] if hits else None

        result: RecordedCall = await self.slack.state.until(found, timeout=10)
        return result

    async def idle(self) -> None:
        """Wait for the bot to finish what the requests so far started: the handlers still
        working after their ack, the operations they submitted and the messages they queued."""
        assert self.runtime.ctx is not None
        await self.runtime.ctx.settle()

    def advance(self, delta: timedelta) -> None:
        """Move the bot's clock; Slack's signatures move with it (they are checked against it)."""
        self.clock.advance(delta)
        self.client.clock_offset += delta.total_seconds()

    def at(self, when: datetime) -> None:
        self.advance(when - self.clock.now())


@asynccontextmanager
async def running_bot_harness(
    harness: type[H],
    settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    *,
    start: datetime = START,
    prepare: Callable[[Runtime], None] | None = None,
) -> AsyncIterator[H]:
    """The bot on a `ManualClock` at `start`, talking to the fakes, without the scheduler (tests
    run jobs themselves); `prepare` tunes the started runtime (e.g. shorter poll intervals)."""
    clock = ManualClock(start)
    runtime = Runtime(
        settings.model_copy(update={"kubeconfig": str(kubeconfig)}),
        catalog,
        clock=clock,
        run_scheduler=False,
    )
    await runtime.start()
    if prepare is not None:
        prepare(runtime)
    client = SignedSlackClient(
        runtime.url, SIGNING_SECRET, clock_offset=(start - datetime.now(UTC)).total_seconds()
    )
    try:
        yield harness(runtime, client, fake_slack, fake_kube, clock)
    finally:
        await client.close()
        await runtime.stop()
