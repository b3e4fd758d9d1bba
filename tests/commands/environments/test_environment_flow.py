"""Self-service environments end to end: signed Slack requests in, the real bot, the official
Kubernetes client against the fake API server, and what Slack would show coming out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from integrations.sandbox.slack_payloads import (
    SlackIdentity,
    app_home_opened,
    block_actions,
    slash_command,
    view_submission,
)
from storage import audit
from storage import environments as env_repo
from storage.models import EnvState
from tests.bot_harness import START, BotHarness, running_bot_harness
from tests.fixtures.slack import DEVELOPER, PLATFORM, STRANGER


class Harness(BotHarness):
    async def command(self, who: SlackIdentity, text: str) -> dict[str, Any]:
        response = await self.client.send(
            slash_command(who, "/env", text, self.slack.new_response_url())
        )
        assert response.status == 200
        return response.json() or {}

    async def open_modal(self, who: SlackIdentity) -> dict[str, Any]:
        await self.command(who, "request")
        call = await self.until("views.open")
        return dict(call.response["view"])  # as Slack answered: with its id and hash

    async def submit(
        self,
        who: SlackIdentity,
        view: dict[str, Any],
        *,
        template: str,
        name: str,
        size: str,
        ttl: str,
    ) -> dict[str, Any]:
        values = {
            "template": {
                "value": {"type": "static_select", "selected_option": {"value": template}}
            },
            "name": {"value": {"type": "plain_text_input", "value": name}},
            "size": {"value": {"type": "static_select", "selected_option": {"value": size}}},
            "ttl": {"value": {"type": "plain_text_input", "value": ttl}},
            "purpose": {
                "value": {"type": "plain_text_input", "value": "try the <!channel> feature"}
            },
        }
        response = await self.client.send(view_submission(who, view, values))
        assert response.status == 200
        return response.json() if response.body else {}

    async def press(
        self, who: SlackIdentity, action_id: str, value: str, message: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = block_actions(
            who,
            {"action_id": action_id, "block_id": "b", "value": value},
            response_url=self.slack.new_response_url(),
            message=message or {"ts": "1.0"},
        )
        response = await self.client.send(body)
        assert response.status == 200
        return response.json() if response.body else {}

    async def direct_message_containing(self, text: str) -> str:
        """DMs are paced (one a second per conversation), so wait for the one expected."""
        found: list[RecordedCall] = await self.slack.state.until(
            lambda calls: [
                c
                for c in calls
                if c.method == "chat.postMessage"
                and c.args["channel"].startswith("D")
                and text in c.args.get("text", "")
            ],
            timeout=10,
        )
        return str(found[-1].args["text"])

    def direct_messages(self) -> list[str]:
        return [
            c.args.get("text", "")
            for c in self.slack.state.find("chat.postMessage")
            if c.args["channel"].startswith("D")
        ]

    async def record(self, name: str) -> Any:
        assert self.runtime.db is not None
        return await self.runtime.db.run(lambda s: env_repo.live_by_name(s, name))


@pytest.fixture
async def harness(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[Harness]:
    async with running_bot_harness(
        Harness, bot_settings, catalog, fake_slack, fake_kube, kubeconfig
    ) as harness:
        yield harness


async def test_auto_approved_environment_is_provisioned(harness: Harness) -> None:
    view = await harness.open_modal(DEVELOPER)
    assert view["callback_id"] == "env_request"
    price = next(b for b in view["blocks"] if b.get("block_id") == "price")["text"]["text"]
    assert "/month" in price and "asleep" in price, (
        "the price tag, with off-hours, shows before submitting"
    )

    # Changing the size updates the price in place.
    view["state"] = {
        "values": {
            "size": {"value": {"type": "static_select", "selected_option": {"value": "L"}}},
            "template": {
                "value": {"type": "static_select", "selected_option": {"value": "web-preview"}}
            },
            "ttl": {"value": {"type": "plain_text_input", "value": "3d"}},
        }
    }
    await harness.client.send(
        block_actions(
            DEVELOPER,
            {
                "action_id": "value",
                "block_id": "size",
                "type": "static_select",
                "selected_option": {"value": "L"},
            },
            response_url="",
            view=view,
        )
    )
    updated = await harness.until("views.update")
    new_price = next(b for b in updated.args["view"]["blocks"] if b.get("block_id") == "price")[
        "text"
    ]["text"]
    assert new_price != price

    reply = await harness.submit(
        DEVELOPER, view, template="web-preview", name="checkout-x", size="M", ttl="3d"
    )
    assert reply == {} or reply.get("response_action") != "errors", reply
    await harness.idle()

    namespace = harness.kube.find("namespaces", "", "pv-checkout-x")
    assert namespace is not None
    labels = namespace["metadata"]["labels"]
    assert labels["forgebot.io/owner"] == "U0DEVELOPER" and labels["forgebot.io/team"] == "payments"
    assert labels["forgebot.io/template"] == "web-preview"
    assert "forgebot.io/expires-at" in namespace["metadata"]["annotations"]
    for plural, name in [
        ("resourcequotas", "forgebot-quota"),
        ("limitranges", "forgebot-defaults"),
        ("rolebindings", "forgebot-team-edit"),
        ("networkpolicies", "forgebot-isolate"),
    ]:
        obj = harness.kube.find(plural, "pv-checkout-x", name)
        assert obj is not None, plural
        obj["metadata"] = {
            k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels")
        }
        kubernetes_validate.validate(obj, "1.31", strict=True)
    quota = harness.kube.find("resourcequotas", "pv-checkout-x", "forgebot-quota")
    assert quota is not None and quota["spec"]["hard"]["requests.cpu"] == "4"
    record = await harness.record("pv-checkout-x")
    assert record.state == EnvState.ACTIVE and record.expires_at == START + timedelta(days=3)
    assert record.purpose == "try the <!channel> feature"
    dms = [
        c for c in harness.slack.state.find("chat.postMessage") if c.args["channel"].startswith("D")
    ]
    assert any("is ready" in c.args.get("text", "") for c in dms)
    assert all(
        "<!channel>" not in json.dumps(c.args) for c in harness.slack.state.find("chat.postMessage")
    )

    await harness.client.send(app_home_opened(DEVELOPER))
    home = (await harness.until("views.publish")).args["view"]
    assert "pv-checkout-x" in json.dumps(home["blocks"])
    home_buttons = {
        e["action_id"] for b in home["blocks"] if b["type"] == "actions" for e in b["elements"]
    }
    assert home_buttons == {"env_extend_day", "env_delete_now", "env_open_request"}

    listing = await harness.command(DEVELOPER, "list")
    assert listing == {} or "pv-checkout-x" not in json.dumps(listing)
    call = await harness.until("response_url")
    assert "pv-checkout-x" in json.dumps(call.args)


async def test_bad_input_comes_back_inline(harness: Harness) -> None:
    view = await harness.open_modal(DEVELOPER)
    reply = await harness.submit(
        DEVELOPER, view, template="web-preview", name="a;b", size="M", ttl="30d"
    )
    assert reply["response_action"] == "errors"
    assert set(reply["errors"]) == {"name", "ttl"}
    await harness.submit(DEVELOPER, view, template="web-preview", name="taken", size="S", ttl="1d")
    await harness.idle()
    again = await harness.submit(
        DEVELOPER, view, template="web-preview", name="taken", size="S", ttl="1d"
    )
    assert again["errors"] == {"name": "pv-taken is taken; pick another name."}


async def test_people_outside_teams_cannot_request(harness: Harness) -> None:
    reply = await harness.command(STRANGER, "request")
    assert "Only members of a team" in reply["text"]
    assert harness.slack.state.find("views.open") == []


async def test_platform_approval_first_press_wins(harness: Harness) -> None:
    view = await harness.open_modal(DEVELOPER)
    await harness.submit(DEVELOPER, view, template="data-sandbox", name="exp1", size="M", ttl="2d")
    card = await harness.until("chat.postMessage", channel="C0PLATFORM")
    record = await harness.record("ds-exp1")
    assert record.state == EnvState.PENDING
    buttons = [e for b in card.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {b["action_id"] for b in buttons} == {"env_approve", "env_deny"}

    refused = await harness.press(DEVELOPER, "env_approve", str(record.id))
    await harness.idle()
    denial = await harness.until("response_url")
    assert "platform team" in denial.args["text"]
    assert (await harness.record("ds-exp1")).state == EnvState.PENDING
    del refused

    await asyncio.gather(
        *[harness.press(PLATFORM, "env_approve", str(record.id)) for _ in range(3)]
    )
    await harness.idle()
    assert (await harness.record("ds-exp1")).state == EnvState.ACTIVE
    creates = [
        r
        for r in harness.kube.requests
        if r[0] == "POST" and r[1] == "/api/v1/namespaces" and "dryRun" not in r[3]
    ]
    assert len(creates) == 1, "three clicks, one namespace"
    updated = harness.slack.state.find("chat.update", channel="C0PLATFORM")
    assert updated and "Approved by <@U0PLATFORM>" in json.dumps(updated[-1].args["blocks"])
    assert not any(b["type"] == "actions" for b in updated[-1].args["blocks"]), "buttons are gone"


async def test_deny_needs_a_reason_and_tells_the_requester(harness: Harness) -> None:
    view = await harness.open_modal(DEVELOPER)
    await harness.submit(DEVELOPER, view, template="data-sandbox", name="exp2", size="M", ttl="2d")
    await harness.until("chat.postMessage", channel="C0PLATFORM")
    record = await harness.record("ds-exp2")
    await harness.press(PLATFORM, "env_deny", str(record.id))
    deny_view = dict(
        (
            await harness.slack.state.until(
                lambda calls: [
                    c
                    for c in calls
                    if c.method == "views.open"
                    and c.args["view"].get("callback_id") == "env_deny_reason"
                ],
                timeout=10,
            )
        )[-1].args["view"]
    )
    assert deny_view["callback_id"] == "env_deny_reason"
    empty = await harness.client.send(
        view_submission(
            PLATFORM, deny_view, {"reason": {"value": {"type": "plain_text_input", "value": " "}}}
        )
    )
    assert empty.json()["response_action"] == "errors"
    await harness.client.send(
        view_submission(
            PLATFORM,
            deny_view,
            {"reason": {"value": {"type": "plain_text_input", "value": "use staging"}}},
        )
    )
    await harness.idle()
    assert await harness.record("ds-exp2") is None, "a denied name is free again"
    await harness.direct_message_containing("was denied: use staging")
    # Approving after a denial does nothing.
    await harness.press(PLATFORM, "env_approve", str(record.id))
    await harness.idle()
    assert harness.kube.find("namespaces", "", "ds-exp2") is None


async def test_failure_part_way_leaves_nothing_behind(harness: Harness) -> None:
    harness.kube.faults.forbid.append(("create", "rolebindings", "*"))
    view = await harness.open_modal(DEVELOPER)
    await harness.submit(DEVELOPER, view, template="web-preview", name="broken", size="S", ttl="1d")
    await harness.idle()
    assert harness.kube.find("namespaces", "", "pv-broken") is None
    assert harness.kube.find("resourcequotas", "pv-broken", "forgebot-quota") is None
    assert await harness.record("pv-broken") is None
    assert "may not create" in await harness.direct_message_containing("could not be provisioned")


async def test_ttl_reminders_and_expiry(harness: Harness) -> None:
    view = await harness.open_modal(DEVELOPER)
    await harness.submit(DEVELOPER, view, template="web-preview", name="short", size="S", ttl="2d")
    await harness.idle()
    assert harness.runtime.ctx is not None
    service = harness.runtime.ctx.environments
    harness.advance(timedelta(days=1, hours=1))  # 23 h left
    await service.sweep_expiry(harness.clock.now())
    await service.sweep_expiry(harness.clock.now())  # a second sweep sends nothing new
    await harness.idle()
    reminders = [
        c
        for c in harness.slack.state.find("chat.postMessage")
        if "will be deleted then" in json.dumps(c.args.get("blocks"))
    ]
    assert len(reminders) == 1
    # "Extend 1 day" from the reminder.
    await harness.press(DEVELOPER, "env_extend_day", "pv-short")
    await harness.idle()
    record = await harness.record("pv-short")
    assert record.expires_at == START + timedelta(days=3)
    # Someone deletes the namespace by hand; expiry still finishes cleanly.
    harness.kube.delete(next(k for k in KINDS if k.plural == "namespaces"), "", "pv-short")
    harness.advance(timedelta(days=3))
    await service.sweep_expiry(harness.clock.now())
    await harness.idle()
    assert await harness.record("pv-short") is None
    assert "already gone" in await harness.direct_message_containing("was deleted")
    assert harness.runtime.db is not None
    trail = await harness.runtime.db.run(lambda s: audit.recent(s, actor_user_id="forgebot"))
    assert [(e.command, e.arguments["environment"]) for e in reversed(trail)] == [
        ("env.expiry_reminder", "pv-short"),
        ("env.expire", "pv-short"),
    ]


async def test_cluster_unreachable_mid_provisioning_is_reported_and_cleaned_up(
    harness: Harness,
) -> None:
    # The namespace is created, then the API server starts failing.
    harness.kube.faults.match = "resourcequotas"
    harness.kube.faults.errors_500 = 100
    view = await harness.open_modal(DEVELOPER)
    await harness.submit(DEVELOPER, view, template="web-preview", name="flaky", size="S", ttl="1d")
    await harness.idle()
    assert harness.kube.find("namespaces", "", "pv-flaky") is None, (
        "the namespace made before the failure is removed"
    )
    assert await harness.record("pv-flaky") is None
    assert "dev-cluster answered 500" in await harness.direct_message_containing(
        "could not be provisioned"
    )
    # The same name can be requested again once the cluster is back.
    harness.kube.faults.errors_500 = 0
    await harness.submit(DEVELOPER, view, template="web-preview", name="flaky", size="S", ttl="1d")
    await harness.idle()
    assert (await harness.record("pv-flaky")).state == EnvState.ACTIVE


async def test_extension_beyond_max_needs_the_platform_team(harness: Harness) -> None:
    view = await harness.open_modal(DEVELOPER)
    await harness.submit(DEVELOPER, view, template="web-preview", name="long", size="S", ttl="14d")
    await harness.idle()
    # Within the maximum: at once. Beyond it (14d max, 14d already): a card for the platform team.
    await harness.command(DEVELOPER, "extend pv-long 3d")
    await harness.idle()
    asked = await harness.until("response_url")
    assert "platform team has been asked" in asked.args["text"]
    card = await harness.until("chat.postMessage", channel="C0PLATFORM")
    approve = next(
        e
        for b in card.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "env_extend_approve"
    )
    record = await harness.record("pv-long")
    assert record.expires_at == START + timedelta(days=14), "nothing changed yet"

    await harness.press(DEVELOPER, "env_extend_approve", approve["value"])  # not platform: refused
    await harness.idle()
    assert (await harness.record("pv-long")).expires_at == START + timedelta(days=14)
    await asyncio.gather(
        *[harness.press(PLATFORM, "env_extend_approve", approve["value"]) for _ in range(2)]
    )
    await harness.idle()
    record = await harness.record("pv-long")
    assert record.expires_at == START + timedelta(days=17)
    namespace = harness.kube.find("namespaces", "", "pv-long")
    assert namespace is not None and namespace["metadata"]["annotations"][
        "forgebot.io/expires-at"
    ].startswith("2026-12-11")
    replies = [c.args.get("text", "") for c in harness.slack.state.find("response_url")]
    assert any("already decided" in t for t in replies), (
        "the second press is told, and does nothing"
    )
    assert "until Fri 11 Dec" in await harness.direct_message_containing("extended *pv-long*")


async def test_delete_asks_first_and_only_the_owner_side_may(harness: Harness) -> None:
    view = await harness.open_modal(DEVELOPER)
    await harness.submit(DEVELOPER, view, template="web-preview", name="gone", size="S", ttl="1d")
    await harness.idle()
    await harness.command(DEVELOPER, "delete pv-gone")
    confirm = await harness.until("response_url")
    button = next(
        e for b in confirm.args["blocks"] if b["type"] == "actions" for e in b["elements"]
    )
    assert button["action_id"] == "env_confirm_delete"
    assert harness.kube.find("namespaces", "", "pv-gone") is not None, (
        "nothing happens before confirming"
    )

    buttons = [e for b in confirm.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == ["env_confirm_delete", "env_cancel_delete"]
    await harness.press(DEVELOPER, "env_cancel_delete", "pv-gone")
    await harness.idle()
    kept = harness.slack.state.find("response_url")[-1].args
    assert kept["text"] == "Kept pv-gone: nothing was deleted." and kept["replace_original"]
    assert harness.kube.find("namespaces", "", "pv-gone") is not None

    outsider = SlackIdentity(user_id="U0SEARCHDEV", channel_id="C0SEARCH")
    await harness.command(outsider, "delete pv-gone")
    await harness.idle()
    refused = harness.slack.state.find("response_url")[-1].args
    assert refused["text"].startswith(":no_entry:"), "refused before being asked to confirm"
    assert "blocks" not in refused, refused
    await harness.press(outsider, "env_confirm_delete", "pv-gone")
    await harness.idle()
    assert harness.kube.find("namespaces", "", "pv-gone") is not None, (
        "another team may not delete it"
    )

    await harness.press(DEVELOPER, "env_confirm_delete", "pv-gone")
    await harness.idle()
    assert harness.kube.find("namespaces", "", "pv-gone") is None
    assert await harness.record("pv-gone") is None
    await harness.direct_message_containing("*pv-gone* was deleted")


async def test_the_platform_team_home_shows_the_approvals_queue(harness: Harness) -> None:
    for name in ("older", "newer"):
        view = await harness.open_modal(DEVELOPER)
        await harness.submit(
            DEVELOPER, view, template="data-sandbox", name=name, size="M", ttl="2d"
        )
        await harness.idle()
        harness.advance(timedelta(minutes=30))
    older = await harness.record("ds-older")

    await harness.client.send(app_home_opened(DEVELOPER))
    await harness.idle()
    mine = json.dumps(harness.slack.state.find("views.publish")[-1].args["view"])
    assert "Platform team" not in mine, "only the platform team sees its desk"

    await harness.client.send(app_home_opened(PLATFORM))
    await harness.idle()
    home = harness.slack.state.find("views.publish")[-1].args["view"]
    text = json.dumps(home["blocks"])
    assert "Platform team" in text and "*Waiting for approval*: 2" in text
    assert text.index("ds-older") < text.index("ds-newer"), "oldest first"
    assert "asked 1h ago" in text
    first = next(b for b in home["blocks"] if b["type"] == "actions")
    assert [(e["action_id"], e["value"]) for e in first["elements"]] == [
        ("env_approve", str(older.id)),
        ("env_deny", str(older.id)),
    ]

    # Its Approve button works from the Home tab as from the card.
    press = block_actions(
        PLATFORM,
        {"action_id": "env_approve", "block_id": first["block_id"], "value": str(older.id)},
        response_url="",
        view=home,
    )
    assert (await harness.client.send(press)).status == 200
    await harness.idle()
    assert (await harness.record("ds-older")).state == EnvState.ACTIVE


async def test_an_approval_whose_provisioning_was_never_submitted_is_provisioned_by_the_sweep(
    harness: Harness,
) -> None:
    """The process died between the approval (a guarded transition) and submitting the
    provisioning: the next TTL sweep submits it, once."""
    assert harness.runtime.ctx is not None and harness.runtime.db is not None
    service = harness.runtime.ctx.environments
    operations = harness.runtime.ctx.operations
    submit = operations.submit
    operations.submit = _never_submitted  # type: ignore[method-assign]
    try:
        view = await harness.open_modal(DEVELOPER)
        await harness.submit(
            DEVELOPER, view, template="web-preview", name="lost", size="S", ttl="1d"
        )
        for _ in range(100):
            record = await harness.record("pv-lost")
            if record is not None and record.state == "approved":
                break
            await asyncio.sleep(0.05)
        await harness.idle()
    finally:
        operations.submit = submit  # type: ignore[method-assign]
    assert (await harness.record("pv-lost")).state == "approved"
    assert harness.kube.find("namespaces", "", "pv-lost") is None
    harness.advance(timedelta(minutes=2))
    await service.sweep_expiry(harness.clock.now())
    await service.sweep_expiry(harness.clock.now())
    await harness.runtime.ctx.operations.wait_idle()
    assert (await harness.record("pv-lost")).state == "active"
    assert harness.kube.find("namespaces", "", "pv-lost") is not None


async def _never_submitted(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the process died right here")
