"""Incidents end to end through the running bot: signed requests in, the Slack fake (channels,
invites, pins, files) and the PagerDuty / Opsgenie fakes on the other side."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from core.catalog import Catalog, Paging
from core.config import Settings
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.paging_api import RunningFakePaging, start_fake_paging
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from integrations.sandbox.slack_payloads import (
    SlackIdentity,
    block_actions,
    event_callback,
    slash_command,
    state_values,
    view_submission,
)
from storage import audit
from storage import incidents as repo
from storage.incidents import Incident
from tests.bot_harness import BotHarness, running_bot_harness
from tests.fixtures.slack import DEVELOPER, ONCALL, PLATFORM, STRANGER

ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
GENIE_KEY = "0b6e7a2c-1111-2222-3333-444455556666"


class IncidentHarness(BotHarness):
    async def command(
        self, who: SlackIdentity, text: str, *, body: bytes | None = None
    ) -> dict[str, Any]:
        url = self.slack.new_response_url()
        response = await self.client.send(body or slash_command(who, "/forge", text, url))
        if body is not None:
            url = unquote(body.decode().split("response_url=")[1].split("&")[0])
        assert response.status == 200
        if response.body:
            return dict(response.json())
        call = await self.slack.state.until(
            lambda calls: next(
                (
                    c
                    for c in reversed(calls)
                    if c.method == "response_url" and c.target == url.rsplit("/", 1)[1]
                ),
                None,
            ),
            timeout=10,
        )
        return dict(call.args)

    async def incident(self) -> Incident:
        assert self.runtime.db is not None
        rows = await self.runtime.db.run(repo.open_incidents)
        assert len(rows) == 1
        return rows[0]

    def calls(self, method: str) -> list[RecordedCall]:
        return [c for c in self.slack.state.calls if c.method == method]

    async def press(self, who: SlackIdentity, action_id: str, value: str, channel: str) -> None:
        response = await self.client.send(
            block_actions(
                who,
                {"action_id": action_id, "block_id": "incident-roles", "value": value},
                response_url=self.slack.new_response_url(),
                message={"ts": "1790000000.000100"},
                channel_id=channel,
            )
        )
        assert response.status == 200

    async def event(self, who: SlackIdentity, event: dict[str, Any], event_id: str) -> None:
        response = await self.client.send(event_callback(who, event, event_id=event_id))
        assert response.status == 200


@pytest.fixture
def fake_paging() -> Iterator[RunningFakePaging]:
    fake = start_fake_paging(routing_keys={ROUTING_KEY}, genie_keys={GENIE_KEY})
    yield fake
    fake.stop()


@pytest.fixture
def paged_catalog(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    monkeypatch.setenv("PD_PAYMENTS_KEY", ROUTING_KEY)
    monkeypatch.setenv("OPSGENIE_LEDGER_KEY", GENIE_KEY)
    teams = [
        t.model_copy(update={"paging": Paging(provider="pagerduty", key_env="PD_PAYMENTS_KEY")})
        if t.name == "payments"
        else t
        for t in catalog.teams
    ]
    services = [
        s.model_copy(
            update={
                "paging": Paging(
                    provider="opsgenie", key_env="OPSGENIE_LEDGER_KEY", min_severity="SEV1"
                )
            }
        )
        if s.name == "ledger"
        else s
        for s in catalog.services
    ]
    return catalog.model_copy(update={"teams": teams, "services": services})


@pytest.fixture
async def bot(
    bot_settings: Settings,
    paged_catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    fake_paging: RunningFakePaging,
) -> AsyncIterator[IncidentHarness]:
    settings = bot_settings.model_copy(
        update={"pagerduty_events_url": fake_paging.url, "opsgenie_api_url": fake_paging.url}
    )
    async with running_bot_harness(
        IncidentHarness, settings, paged_catalog, fake_slack, fake_kube, kubeconfig
    ) as harness:
        yield harness


def _dumps(value: Any, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _text(call: RecordedCall) -> str:
    return _dumps(call.args.get("blocks") or call.args.get("text"))


async def test_open_run_and_resolve_an_incident(
    bot: IncidentHarness, fake_paging: RunningFakePaging
) -> None:
    # Opened twice by the same request (Slack retried it): one incident, one channel.
    text = "incident SEV2 checkout returns 500s"
    first_url, retry_url = bot.slack.new_response_url(), bot.slack.new_response_url()
    original = slash_command(ONCALL, "/forge", text, first_url)
    retried = original.replace(
        quote(first_url, safe="").encode(), quote(retry_url, safe="").encode()
    )
    first = await bot.command(ONCALL, text, body=original)
    assert first["text"].startswith(":rotating_light: Opening the incident")
    again = await bot.command(ONCALL, text, body=retried)
    assert "already open" in again["text"]
    await bot.idle()

    incident = await bot.incident()
    assert (incident.severity, incident.service, incident.team) == ("SEV2", "checkout", "payments")
    created = bot.calls("conversations.create")
    assert [c.args["name"] for c in created] == ["inc-20261124-checkout-returns-500s"]
    channel = incident.channel_id
    members = bot.slack.state.channels[channel].members
    assert {"U0ONCALL", "U0DEVELOPER"} <= set(members) and "U0STRANGER" not in members
    assert bot.slack.state.pins[channel] == [incident.card_ts]
    card = bot.slack.state.messages[(channel, incident.card_ts)]
    assert "SEV2 · checkout returns 500s" in _dumps(card["blocks"])
    announcement = bot.slack.state.messages[("C0PAYMENTS", incident.announce_ts)]
    assert f"<#{channel}>" in announcement["text"] or f"<#{channel}>" in _dumps(
        announcement["blocks"]
    )

    pages = fake_paging.state.snapshot()
    assert len(pages) == 1 and pages[0].status == 202, pages
    body = pages[0].body
    assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
    assert body["dedup_key"] == f"forgebot-incident-{incident.id}"
    assert body["payload"]["severity"] == "error"
    assert body["payload"]["summary"] == "SEV2 checkout returns 500s"
    assert incident.paging == "PagerDuty: paged"

    in_channel = dataclasses.replace(ONCALL, channel_id=channel, channel_name=incident.channel_name)
    dev_in_channel = dataclasses.replace(DEVELOPER, channel_id=channel)
    stranger_in_channel = dataclasses.replace(STRANGER, channel_id=channel)

    # Roles by button; rights re-checked at the click.
    await bot.press(STRANGER, "incident_take_commander", str(incident.id), channel)
    await bot.press(ONCALL, "incident_take_commander", str(incident.id), channel)
    await bot.press(DEVELOPER, "incident_take_communications", str(incident.id), channel)
    await bot.idle()
    incident = await bot.incident()
    assert (incident.commander, incident.communications) == ("U0ONCALL", "U0DEVELOPER")
    card = bot.slack.state.messages[(channel, incident.card_ts)]
    assert "<@U0ONCALL>" in _dumps(card["blocks"])

    # Update, severity, an action (a freeze) in the channel, a pin and a marked message.
    denied = await bot.command(stranger_in_channel, "incident update hello")
    assert denied["text"].startswith(":no_entry:")
    await bot.command(dev_in_channel, "incident update rolled back, errors falling")
    bot.advance(timedelta(minutes=5))
    await bot.command(in_channel, "incident severity 1")
    frozen = await bot.command(in_channel, "freeze prod for 2h incident")
    assert "frozen" in frozen["text"].lower()
    await bot.idle()
    thread = [
        c for c in bot.calls("chat.postMessage") if c.args.get("thread_ts") == incident.announce_ts
    ]
    assert len(thread) == 1 and "rolled back, errors falling" in _text(thread[0])
    posted = await bot.runtime.ctx.slack.post(channel, "customers see 500 on /pay")  # type: ignore[union-attr]
    pin = {
        "type": "pin_added",
        "user": "U0DEVELOPER",
        "channel_id": channel,
        "item": {
            "type": "message",
            "channel": channel,
            "message": {"type": "message", "ts": posted, "text": "customers see 500 on /pay"},
        },
        "event_ts": "1790000000.000200",
    }
    reaction = {
        "type": "reaction_added",
        "user": "U0ONCALL",
        "reaction": "memo",
        "item": {"type": "message", "channel": channel, "ts": posted},
        "item_user": "U0FORGEBOT",
        "event_ts": "1790000000.000300",
    }
    other = {**reaction, "reaction": "thumbsup"}
    for _ in range(2):  # Slack retries events: the timeline gets each once
        await bot.event(DEVELOPER, pin, "Ev0PIN")
        await bot.event(ONCALL, reaction, "Ev0MEMO")
    await bot.event(ONCALL, other, "Ev0THUMBS")
    await bot.idle()

    # Resolve: summary, card, announcement, postmortem file, page resolved, DORA.
    bot.advance(timedelta(minutes=40))
    resolved = await bot.command(in_channel, "incident resolve rolled back to 1.4.1")
    assert resolved["text"].startswith("Resolving")
    twice = await bot.command(in_channel, "incident resolve")
    assert "already resolved" in twice["text"]
    await bot.idle()
    assert bot.runtime.db is not None
    incident = await bot.runtime.db.run(lambda s: repo.get(s, incident.id or 0))  # type: ignore[assignment]
    assert incident.state == "resolved" and incident.postmortem_file
    summaries = [c for c in bot.calls("chat.postMessage") if "Resolved: checkout" in _text(c)]
    assert len(summaries) == 1
    summary = _text(summaries[0])
    assert "45m" in summary and "freeze prod for 2h incident" in summary
    uploads = bot.calls("files.completeUploadExternal")
    assert len(uploads) == 1
    draft = bot.slack.uploaded(incident.postmortem_file)
    assert draft is not None
    markdown = draft.decode()
    for expected in (
        "# Postmortem: checkout returns 500s",
        "| Duration (time to restore) | 45m |",
        "became incident commander",
        "rolled back, errors falling",
        "changed severity SEV2 → SEV1",
        "ran freeze prod for 2h incident",
        "pinned: customers see 500 on /pay",
        "marked: customers see 500 on /pay",
        "rolled back to 1.4.1",
    ):
        assert expected in markdown, expected
    assert markdown.count("pinned: customers") == 1 and markdown.count("marked: customers") == 1
    assert "thumbsup" not in markdown
    pages = fake_paging.state.snapshot()
    assert [p.body["event_action"] for p in pages] == ["trigger", "resolve"]
    assert all(p.status == 202 for p in pages)
    card = bot.slack.state.messages[(channel, incident.card_ts)]
    assert "[RESOLVED]" in card["text"]
    announcement = bot.slack.state.messages[("C0PAYMENTS", incident.announce_ts)]
    assert "Resolved" in _dumps(announcement["blocks"])

    dora = await bot.command(ONCALL, "dora checkout 7d")
    assert "median 45 min (1 restore)" in _dumps(dora), dora

    entries = await bot.runtime.db.run(lambda s: audit.recent(s, command_prefix="incident"))
    assert any(e.actor_user_id == "U0STRANGER" and e.outcome == "denied" for e in entries)


async def test_form_opens_an_incident_paged_through_opsgenie(
    bot: IncidentHarness, fake_paging: RunningFakePaging
) -> None:
    response = await bot.client.send(
        slash_command(PLATFORM, "/forge", "incident", bot.slack.new_response_url())
    )
    assert response.status == 200 and not response.body
    opened = await bot.until("views.open")
    view = opened.args["view"]
    assert view["callback_id"] == "incident_open_form"
    response = await bot.client.send(
        view_submission(
            PLATFORM,
            {**view, "id": "V0INCIDENT1"},
            state_values(
                view,
                {
                    "title": "Ledger writes time out",
                    "severity": "SEV1",
                    "service": "ledger",
                    "summary": "Writes to the ledger time out since 10:00",
                },
            ),
        )
    )
    assert response.status == 200
    await bot.idle()
    incident = await bot.incident()
    assert (incident.severity, incident.service, incident.summary) == (
        "SEV1",
        "ledger",
        "Writes to the ledger time out since 10:00",
    )
    pages = fake_paging.state.snapshot()
    assert len(pages) == 1 and pages[0].provider == "opsgenie" and pages[0].status == 202
    assert pages[0].headers["Authorization"] == f"GenieKey {GENIE_KEY}"
    assert pages[0].body["priority"] == "P1"
    assert pages[0].body["alias"] == f"forgebot-incident-{incident.id}"
    in_channel = dataclasses.replace(PLATFORM, channel_id=incident.channel_id)
    await bot.command(in_channel, "incident resolve")
    await bot.idle()
    closes = [p for p in fake_paging.state.snapshot() if p.path.endswith("identifierType=alias")]
    assert len(closes) == 1 and closes[0].status == 202
    assert fake_paging.state.open_alerts == {}


async def test_bad_input_and_wrong_channel_are_friendly(bot: IncidentHarness) -> None:
    answer = await bot.command(ONCALL, "incident update things are better")
    assert "not an incident channel" in answer["text"]
    answer = await bot.command(ONCALL, "incident severity SEV9")
    assert "SEV1 (worst) to SEV4" in answer["text"]
    answer = await bot.command(STRANGER, "incident SEV3 something broke")
    assert answer["text"].startswith(":no_entry:")
    await asyncio.sleep(0)


async def test_a_failed_open_is_told_to_the_opener(bot: IncidentHarness) -> None:
    bot.slack.fail_next(20, method="conversations.create", status=500)
    answer = await bot.command(ONCALL, "incident SEV3 checkout is slow")
    assert answer["text"].startswith(":rotating_light: Opening the incident")
    told = await bot.slack.state.until(
        lambda calls: next(
            (
                c
                for c in calls
                if c.method == "chat.postMessage"
                and c.args.get("channel") == "D0ONCALL"
                and "could not open the incident" in str(c.args.get("text"))
            ),
            None,
        ),
        timeout=30,
    )
    assert "checkout is slow" in str(told.args["text"])
    assert "Slack refused a step" in str(told.args["text"])
    assert bot.calls("conversations.invite") == [] and bot.calls("pins.add") == []
