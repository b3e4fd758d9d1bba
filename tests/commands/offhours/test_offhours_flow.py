"""Off-hours end to end: the real bot on an injected clock, the official Kubernetes client
against the fake API server, signed Slack requests in and what Slack would show coming out."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select

from bot.runtime import Runtime
from commands.offhours import views
from core.clock import ManualClock
from integrations.sandbox.kube_api import KINDS
from integrations.sandbox.slack_payloads import app_home_opened
from storage import environments as env_repo
from storage import offhours as repo
from storage.models import EnvState, JobRun
from storage.offhours import OffhoursOriginal, OffhoursSleep
from tests.commands.offhours.conftest import (
    ENV,
    PLURAL,
    START,
    Harness,
    obj,
    patches,
    replicas,
    seed_workloads,
    validate_all,
)
from tests.fixtures.slack import DEVELOPER, STRANGER

SHUTDOWN = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 19:00 in Berlin
WAKE = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 08:00 in Berlin, Wednesday
AWAKE_COUNTS = {"web": 3, "api": 2, "idle": 0, "keeper": 2, "sts/db": 1}
_KIND = {k.kind: k for k in KINDS}


async def originals(h: Harness) -> list[OffhoursOriginal]:
    assert h.runtime.db is not None
    return list(
        await h.runtime.db.run(lambda s: s.exec(select(OffhoursOriginal)).all())  # type: ignore[arg-type]
    )


async def test_shutdown_records_originals_and_wake_restores_them_exactly(h: Harness) -> None:
    await h.add_environment()
    [outcome] = await h.service.reconcile()
    assert outcome.desired_up and outcome.acted == ""
    assert replicas(h.kube) == AWAKE_COUNTS, "18:00 in Berlin: working hours, nothing changes"

    h.at(SHUTDOWN)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept" and not outcome.failures
    assert replicas(h.kube) == {"web": 0, "api": 0, "idle": 0, "keeper": 2, "sts/db": 0}
    web = obj(h.kube, "Deployment", "web")
    assert web["metadata"]["annotations"]["forgebot.io/original-replicas"] == "3"
    assert (
        "forgebot.io/original-replicas"
        not in obj(h.kube, "Deployment", "idle")["metadata"]["annotations"]
    ), "an object already at 0 has nothing to restore"
    assert obj(h.kube, "CronJob", "nightly")["spec"]["suspend"] is True
    paused = obj(h.kube, "CronJob", "paused")
    assert "forgebot.io/original-suspend" not in (paused["metadata"].get("annotations") or {})
    hpa = obj(h.kube, "HorizontalPodAutoscaler", "web")
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["metadata"]["annotations"]["forgebot.io/original-min-replicas"] == "3"
    validate_all(h.kube)
    recorded = {(o.kind, o.name): o.original for o in await originals(h)}
    assert recorded == {
        ("Deployment", "web"): {"replicas": 3},
        ("Deployment", "api"): {"replicas": 2},
        ("StatefulSet", "db"): {"replicas": 1},
        ("CronJob", "nightly"): {"suspend": False},
        ("HorizontalPodAutoscaler", "web"): {"minReplicas": 3},
    }
    dm = await h.message_containing("is asleep")
    assert ENV in dm.args["text"] and dm.args["channel"].startswith("D")

    # Level-triggered: the next passes change nothing and write no originals.
    h.kube.requests.clear()
    h.at(SHUTDOWN + timedelta(minutes=5))
    await h.service.reconcile()
    assert patches(h.kube) == []

    # Someone needs the API tonight and scales it by hand: their count stays, all night and
    # after the wake, and the recorded original is not overwritten.
    h.kube.patch(
        _KIND["Deployment"], ENV, "api", "application/merge-patch+json", {"spec": {"replicas": 5}}
    )
    h.at(SHUTDOWN + timedelta(hours=2))
    await h.service.reconcile()
    assert replicas(h.kube)["api"] == 5
    assert (
        obj(h.kube, "Deployment", "api")["metadata"]["annotations"]["forgebot.io/original-replicas"]
        == "2"
    )

    h.at(WAKE)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "woke" and not outcome.failures
    assert replicas(h.kube) == {**AWAKE_COUNTS, "api": 5}
    for kind in PLURAL:
        for item in h.kube.list(_KIND[kind], ENV):
            annotations = item["metadata"].get("annotations") or {}
            assert not [a for a in annotations if a.startswith("forgebot.io/original")], item
    assert obj(h.kube, "CronJob", "nightly")["spec"]["suspend"] is False
    assert obj(h.kube, "CronJob", "paused")["spec"]["suspend"] is True, "its owner paused it"
    assert obj(h.kube, "HorizontalPodAutoscaler", "web")["spec"]["minReplicas"] == 3
    validate_all(h.kube)
    closed = {(o.kind, o.name): o.outcome for o in await originals(h)}
    assert closed[("Deployment", "web")] == "restored 3"
    assert closed[("Deployment", "api")] == "kept hand-set 5 (original 2)"
    assert all(o.live_key is None for o in await originals(h))
    await h.message_containing("is awake")


async def test_reminder_buttons_keep_running_and_are_idempotent(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN - timedelta(minutes=30))
    await h.service.reconcile()
    reminder = await h.message_containing("sleeps at 19:00 Europe/Berlin")
    assert reminder.args["channel"].startswith("D"), "the owner hears it by DM"
    buttons = [e for b in reminder.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    labels = [b["text"]["text"] for b in buttons]
    assert labels == ["Keep running until 22:00", "Skip tonight", "Sleep now"]
    h.at(SHUTDOWN - timedelta(minutes=25))
    await h.service.reconcile()
    assert len(h.messages("sleeps at")) == 1, "one reminder per shutdown"

    keep = buttons[0]
    await h.press(DEVELOPER, keep["action_id"], keep["value"])
    [reply] = await h.responses("keeps running until 22:00 Europe/Berlin")
    assert reply.get("replace_original") is True
    await h.press(DEVELOPER, keep["action_id"], keep["value"])
    await h.responses("already made")

    h.at(SHUTDOWN)
    [outcome] = await h.service.reconcile()
    assert outcome.desired_up and replicas(h.kube)["web"] == 3, "snoozed"
    h.at(SHUTDOWN + timedelta(hours=2, minutes=30))
    await h.service.reconcile()
    await h.message_containing("sleeps at 22:00 Europe/Berlin")
    h.at(SHUTDOWN + timedelta(hours=3))
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept" and replicas(h.kube)["web"] == 0

    assert h.runtime.db is not None
    setting = await h.runtime.db.run(lambda s: repo.setting(s, ENV, h.clock.now()))
    assert setting.override_by == "U0DEVELOPER" and setting.override_reason == "reminder: keep"


async def test_skip_tonight_and_sleep_now(h: Harness) -> None:
    await h.add_environment()
    value = f"{ENV}|{SHUTDOWN.isoformat()}"
    h.at(SHUTDOWN - timedelta(minutes=20))
    await h.press(DEVELOPER, views.SLEEP, value)
    await h.responses("goes to sleep now")
    assert replicas(h.kube)["web"] == 0, "asleep at once, before 19:00"
    await h.command(DEVELOPER, "/env", "list all")
    await h.idle()
    listed = h.slack.state.find("response_url")[-1].args
    assert f":zzz: *{ENV}* (asleep)" in json.dumps(listed["blocks"]), "listed as it is: asleep"

    await h.press(DEVELOPER, views.SKIP, value)
    await h.responses("skips tonight")
    assert replicas(h.kube)["web"] == 3, "a later choice wins"
    h.at(SHUTDOWN + timedelta(hours=6))
    [outcome] = await h.service.reconcile()
    assert outcome.desired_up, "up all night"
    h.at(datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    [outcome] = await h.service.reconcile()
    assert not outcome.desired_up, "and asleep again the next evening"


async def test_an_old_reminder_cannot_change_a_later_night(h: Harness) -> None:
    await h.add_environment()
    h.at(WAKE + timedelta(hours=1))
    await h.press(DEVELOPER, views.SLEEP, f"{ENV}|{SHUTDOWN.isoformat()}")
    [reply] = await h.responses("which is over")
    assert "/forge env wake pv-shop" in reply["text"]
    assert replicas(h.kube) == AWAKE_COUNTS
    await h.press(DEVELOPER, views.KEEP, f"{ENV}|not-a-time")
    await h.responses("That button is broken")


async def test_a_stranger_cannot_snooze(h: Harness) -> None:
    await h.add_environment()
    await h.press(STRANGER, views.KEEP, f"{ENV}|{SHUTDOWN.isoformat()}")
    await h.idle()
    replies = [c.args for c in h.slack.state.find("response_url")]
    assert replies and ":no_entry:" in replies[-1]["text"]


async def test_env_wake_for_a_while_then_sleeps_again(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN + timedelta(hours=2))
    await h.service.reconcile()
    assert replicas(h.kube)["web"] == 0

    await h.command(DEVELOPER, "/env", "wake pv-shop for 3h")
    await h.responses("is awake")
    assert replicas(h.kube) == AWAKE_COUNTS
    h.at(SHUTDOWN + timedelta(hours=4))
    [outcome] = await h.service.reconcile()
    assert outcome.desired_up
    h.at(SHUTDOWN + timedelta(hours=5))
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept" and replicas(h.kube)["web"] == 0
    recorded = [o for o in await originals(h) if o.name == "web" and o.kind == "Deployment"]
    assert [o.original for o in recorded] == [{"replicas": 3}, {"replicas": 3}]


async def test_bad_commands_get_friendly_errors(h: Harness) -> None:
    await h.add_environment()
    cases = {
        'set pv-shop "Mon-Fry 08:00-19:00 UTC"': "not a day",
        'set pv-shop "Mon-Fri 08:00-19:00 Mars/Base"': "IANA time zone",
        'set pv-shop "Mon-Fri 08:00-12:00 UTC, Mon 11:00-13:00 UTC"': "overlap",
        'set pv-shop "Mon-Fri 08:00-24:01 UTC"': "24:01",
        'set pv-shop "Mon 08:00-08:00 UTC"': "empty",
        "set pv-shop": "needs an environment and a schedule",
        "set pv-nope never": "no environment called pv-nope",
        "report payments 3x": "not a duration",
        "frobnicate": "not an off-hours command",
    }
    for text, problem in cases.items():
        seen = len(h.slack.state.find("response_url"))
        reply = await h.command(DEVELOPER, "/forge", f"offhours {text}")
        if not reply:
            reply = await next_response(h, seen)
        assert problem in reply["text"], (text, reply)
        assert "Traceback" not in reply["text"]
    reply = await h.command(DEVELOPER, "/env", "wake pv-shop for soon")
    assert "not a duration" in reply["text"]


async def next_response(h: Harness, seen: int) -> dict[str, Any]:
    """The first response sent after the `seen` ones (errors found after the ack come later)."""
    found = await h.slack.state.until(
        lambda calls: [c for c in calls if c.method == "response_url"][seen:], timeout=10
    )
    return dict(found[0].args)


async def test_set_schedule_applies_at_once_and_show(h: Harness) -> None:
    await h.add_environment()
    await h.command(DEVELOPER, "/forge", 'offhours set pv-shop "Mon-Fri 08:00-17:00 Europe/Berlin"')
    await h.responses("pv-shop is asleep")
    assert replicas(h.kube)["web"] == 0, "18:00 in Berlin is after the new 17:00"
    await h.command(DEVELOPER, "/forge", "offhours show pv-shop")
    [shown] = await h.responses("Schedule:")
    assert "Mon-Fri 08:00-17:00 Europe/Berlin" in shown["text"] and "environment" in shown["text"]
    await h.command(DEVELOPER, "/forge", "offhours set pv-shop never")
    await h.responses("pv-shop is awake")
    assert replicas(h.kube) == AWAKE_COUNTS


async def test_conflicts_are_retried_and_counts_stay_exact(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    h.kube.faults.conflicts = 3
    h.kube.faults.match = "PATCH"
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept" and not outcome.failures
    h.kube.faults.conflicts = 4
    h.at(WAKE)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "woke"
    assert replicas(h.kube) == AWAKE_COUNTS


async def test_cluster_unreachable_at_shutdown_alerts_the_owner_once_then_recovers(
    h: Harness,
) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    h.kube.faults.drops = 10_000
    [outcome] = await h.service.reconcile()
    assert outcome.failures and "unreachable" in outcome.failures[0]
    alert = await h.message_containing("could not sleep")
    assert alert.args["channel"].startswith("D")
    h.at(SHUTDOWN + timedelta(minutes=5))
    await h.service.reconcile()
    await h.idle()
    assert len(h.messages("could not sleep")) == 1, "one alert per failure streak"

    h.kube.faults.drops = 0
    h.at(SHUTDOWN + timedelta(minutes=10))
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept"
    assert replicas(h.kube)["web"] == 0
    assert h.runtime.db is not None
    setting = await h.runtime.db.run(lambda s: repo.setting(s, ENV, h.clock.now()))
    assert setting.failures == 0 and setting.alerted_for == ""


async def test_partial_failure_is_retried_and_originals_are_kept(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    # The API refuses writes to one Deployment; everything else goes to sleep.
    h.kube.faults.forbid = [("patch", "deployments", ENV)]
    [outcome] = await h.service.reconcile()
    assert outcome.failures and "may not patch" in outcome.failures[0]
    recorded = {(o.kind, o.name): o.original for o in await originals(h)}
    assert recorded[("Deployment", "web")] == {"replicas": 3}, "recorded before the patch"
    assert replicas(h.kube)["web"] == 3 and replicas(h.kube)["sts/db"] == 0
    h.kube.faults.forbid = []
    h.at(SHUTDOWN + timedelta(minutes=5))
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept"
    h.at(WAKE)
    await h.service.reconcile()
    assert replicas(h.kube) == AWAKE_COUNTS


async def test_deployment_deleted_while_asleep(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    await h.service.reconcile()
    h.kube.delete(_KIND["Deployment"], ENV, "api")
    h.at(WAKE)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "woke" and not outcome.failures
    assert replicas(h.kube) == {k: v for k, v in AWAKE_COUNTS.items() if k != "api"}
    closed = {(o.kind, o.name): o.outcome for o in await originals(h)}
    assert closed[("Deployment", "api")] == "gone: deleted while asleep"


async def test_a_deleted_namespace_is_skipped(h: Harness) -> None:
    await h.add_environment()
    await h.add_environment("pv-other")
    h.kube.delete(_KIND["Namespace"], "", "pv-other")
    h.at(SHUTDOWN)
    outcomes = {o.environment: o for o in await h.service.reconcile()}
    assert outcomes["pv-other"].note == "namespace is gone" and not outcomes["pv-other"].failures
    assert outcomes[ENV].acted == "slept"


async def test_bot_down_across_a_whole_window(h: Harness) -> None:
    await h.add_environment()
    await h.service.reconcile()
    # Down from 18:00 on Tuesday to 09:00 on Wednesday (Berlin): shutdown and wake both missed.
    h.at(WAKE + timedelta(hours=1))
    [outcome] = await h.service.reconcile()
    assert outcome.desired_up and outcome.acted == "" and replicas(h.kube) == AWAKE_COUNTS
    assert h.runtime.db is not None
    sleeps = await h.runtime.db.run(lambda s: s.exec(select(OffhoursSleep)).all())  # type: ignore[arg-type]
    assert sleeps == []
    # Down over the evening only: the first pass after puts it to sleep.
    h.at(datetime(2026, 11, 25, 23, 0, tzinfo=UTC))
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept"


async def test_second_replica_never_runs_the_same_slot(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    scheduler = h.runtime.scheduler
    assert scheduler is not None
    assert await scheduler.run_now("offhours")
    scheduler.replica = "replica-2"
    assert not await scheduler.run_now("offhours"), "the slot was claimed"
    assert replicas(h.kube)["web"] == 0


async def test_dst_fall_back_and_spring_forward(h: Harness) -> None:
    await h.add_environment()
    await h.command(DEVELOPER, "/forge", 'offhours set pv-shop "Mon-Sun 08:00-19:00 Europe/Berlin"')
    await h.responses("pv-shop is")
    # (sleeps at 19:00 local, wakes at 08:00 local), in UTC, across both DST changes of 2026.
    nights = [
        (datetime(2026, 3, 28, 18, 0, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 17, 0, tzinfo=UTC), datetime(2026, 3, 30, 6, 0, tzinfo=UTC)),
        (datetime(2026, 10, 24, 17, 0, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (datetime(2026, 10, 25, 18, 0, tzinfo=UTC), datetime(2026, 10, 26, 7, 0, tzinfo=UTC)),
    ]
    for sleeps_at, wakes_at in nights:
        for when, up, acted in (
            (sleeps_at - timedelta(minutes=1), True, ""),
            (sleeps_at, False, "slept"),
            (wakes_at - timedelta(minutes=1), False, ""),
            (wakes_at, True, "woke"),
        ):
            h.at(when)
            [outcome] = await h.service.reconcile()
            assert (outcome.desired_up, outcome.acted) == (up, acted), when


async def test_savings_report_and_weekly_summary(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    await h.service.reconcile()
    h.at(WAKE)
    await h.service.reconcile()
    await h.command(DEVELOPER, "/forge", "offhours report payments 7d")
    [shown] = await h.responses("Off-hours savings")
    # 13 hours asleep at the M size: 4 vCPU x 0.0316 + 8 GiB x 0.0042 = 0.16 an hour.
    assert "13.0 h asleep" in shown["text"] and "$2.08" in shown["text"], shown["text"]
    reply = await h.command(DEVELOPER, "/forge", "offhours report nosuchteam")
    assert "no team called nosuchteam" in reply["text"]

    await h.service.weekly_summary(h.clock.now())
    post = await h.message_containing("Weekly off-hours summary")
    assert post.args["channel"] == "C0PAYMENTS"
    assert START < WAKE


async def test_a_starting_replica_reconciles_at_once(h: Harness) -> None:
    """After an outage the bot does not wait for the next interval: its start-up pass puts
    the environment where the schedule says it is now."""
    await h.add_environment()
    assert h.runtime.ctx is not None
    clock = ManualClock(SHUTDOWN + timedelta(hours=3))
    restarted = Runtime(h.runtime.settings, h.runtime.catalog, clock=clock, run_scheduler=True)
    await restarted.start()
    try:
        deadline = time.monotonic() + 10
        while replicas(h.kube)["web"] != 0:
            assert time.monotonic() < deadline, "the start-up pass did not run"
            await asyncio.sleep(0.05)
        assert restarted.db is not None
        runs = await restarted.db.run(
            lambda s: s.exec(select(JobRun).where(JobRun.job_id == "offhours")).all()
        )
        assert len(runs) == 1
    finally:
        await restarted.stop()


async def test_holidays_sleep_all_day_and_a_deleted_environment_stops_counting(h: Harness) -> None:
    await h.add_environment()
    h.at(datetime(2026, 12, 25, 10, 0, tzinfo=UTC))  # Friday, a catalog holiday, 11:00 Berlin
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept"
    assert h.runtime.db is not None
    record = await h.runtime.db.run(lambda s: env_repo.live_by_name(s, ENV))
    assert record is not None and record.id is not None
    env_id = record.id
    await h.runtime.db.run(
        lambda s: env_repo.transition(
            s, env_id, expected=[EnvState.ACTIVE], to=EnvState.DELETED, now=h.clock.now()
        )
    )
    h.at(datetime(2026, 12, 25, 12, 0, tzinfo=UTC))
    assert await h.service.reconcile() == []
    sleeps = await h.runtime.db.run(lambda s: s.exec(select(OffhoursSleep)).all())  # type: ignore[arg-type]
    assert [(s.ended_at, s.open_key) for s in sleeps] == [(h.clock.now(), None)]


async def test_any_namespace_annotated_with_a_schedule_sleeps_too(h: Harness) -> None:
    seed_workloads(h.kube, "search-sandbox")
    h.kube.patch(
        _KIND["Namespace"],
        "",
        "search-sandbox",
        "application/merge-patch+json",
        {"metadata": {"annotations": {"forgebot.io/team": "search"}}},
    )
    h.kube.seed_deployment("checkout-staging", "checkout", "registry.example.com/c:1", 2)
    h.at(SHUTDOWN)
    outcomes = {o.environment: o for o in await h.service.reconcile()}
    assert set(outcomes) == {"search-sandbox"}, "only the annotated namespace is a target"
    assert outcomes["search-sandbox"].acted == "slept"
    assert replicas(h.kube, "search-sandbox")["web"] == 0
    assert replicas(h.kube, "checkout-staging") == {"checkout": 2}
    post = await h.message_containing("search-sandbox* is asleep")
    assert post.args["channel"] == "C0SEARCH", "no owner: the team's channel hears it"
    h.at(WAKE)
    await h.service.reconcile()
    assert replicas(h.kube, "search-sandbox") == AWAKE_COUNTS


async def test_the_database_record_survives_a_lost_annotation(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    await h.service.reconcile()
    # A `kubectl apply` at night replaces the annotations; the database still knows the 3.
    h.kube.patch(
        _KIND["Deployment"],
        ENV,
        "web",
        "application/merge-patch+json",
        {"metadata": {"annotations": {"forgebot.io/original-replicas": None}}},
    )
    # And someone deploys something new at night: the next pass puts it to sleep as well.
    h.kube.seed_deployment(ENV, "late", "registry.example.com/late:1", replicas=2)
    h.at(SHUTDOWN + timedelta(minutes=5))
    [outcome] = await h.service.reconcile()
    assert outcome.changed == 1 and replicas(h.kube)["late"] == 0
    assert replicas(h.kube)["web"] == 0, "a lost annotation does not make it sleep twice"
    h.at(WAKE)
    await h.service.reconcile()
    assert replicas(h.kube) == {**AWAKE_COUNTS, "late": 2}


async def test_the_home_tab_shows_who_is_asleep(h: Harness) -> None:
    await h.add_environment()
    h.at(SHUTDOWN)
    await h.service.reconcile()
    await h.client.send(app_home_opened(DEVELOPER))
    published = await h.slack.state.until(
        lambda calls: [c for c in calls if c.method == "views.publish"], timeout=10
    )
    texts = [b.get("text", {}).get("text", "") for b in published[-1].args["view"]["blocks"]]
    assert any("*Off-hours*" in t and ":zzz: *pv-shop* asleep" in t for t in texts), texts
