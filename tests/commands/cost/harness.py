"""A running bot with a manual clock, driven by signed slash commands, reading what the fake
Slack received; the cost source is boto3 against moto (or the Cost Explorer stub)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from bot.runtime import Runtime
from commands.cost.service import CostService
from core.catalog import Catalog
from core.clock import ManualClock
from core.config import Settings
from integrations.aws.cost_explorer import CostSource
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from integrations.sandbox.slack_payloads import SignedSlackClient, SlackIdentity, slash_command
from tests.fixtures.slack import SIGNING_SECRET

# A Tuesday; November 2026 began on a Sunday.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class CostBot:
    def __init__(
        self,
        runtime: Runtime,
        client: SignedSlackClient,
        slack: RunningFakeSlack,
        clock: ManualClock,
    ) -> None:
        self.runtime, self.client, self.slack, self.clock = runtime, client, slack, clock

    @property
    def service(self) -> CostService:
        assert self.runtime.ctx is not None
        service: CostService = self.runtime.ctx.cost
        return service

    async def command(self, who: SlackIdentity, command: str, text: str) -> dict[str, Any]:
        """Send a slash command; return what the user saw: the ack if it said something,
        otherwise the reply posted to the response_url."""
        before = len(self.slack.state.find("response_url"))
        response = await self.client.send(
            slash_command(who, command, text, self.slack.new_response_url())
        )
        assert response.status == 200
        acked = response.json() if response.body else {}
        if acked and acked.get("text"):
            return dict(acked)
        calls: list[RecordedCall] = await self.slack.until(
            lambda calls: [c for c in calls if c.method == "response_url"][before:] or None,
            timeout=20,
        )
        return dict(calls[0].args)

    async def upload(self) -> RecordedCall:
        calls: list[RecordedCall] = await self.slack.until_call(
            "files.completeUploadExternal", timeout=20
        )
        return calls[-1]


def text_of(reply: dict[str, Any]) -> str:
    """Everything a person reads in a reply: its text and its blocks' text."""
    parts = [str(reply.get("text", ""))]
    for block in reply.get("blocks") or []:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(str(block["text"].get("text", "")))
        for element in block.get("elements", []) or []:
            if isinstance(element, dict) and "text" in element:
                parts.append(str(element["text"]))
    return "\n".join(parts)


@asynccontextmanager
async def cost_bot(
    settings: Settings,
    catalog: Catalog,
    slack: RunningFakeSlack,
    *,
    cost_source: Callable[[ManualClock], CostSource] | None = None,
    now: datetime = NOW,
    forecast: str = "linear",
) -> AsyncIterator[CostBot]:
    clock = ManualClock(now)
    runtime = Runtime(
        settings.model_copy(update={"cost_forecast": forecast}),
        catalog,
        clock=clock,
        run_scheduler=False,
        cost_source=cost_source(clock) if cost_source else None,
    )
    await runtime.start()
    client = SignedSlackClient(
        runtime.url, SIGNING_SECRET, clock_offset=(now - datetime.now(UTC)).total_seconds()
    )
    try:
        yield CostBot(runtime, client, slack, clock)
    finally:
        await client.close()
        await runtime.stop()
