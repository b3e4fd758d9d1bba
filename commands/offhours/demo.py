"""The demo's off-hours scene: an active environment with workloads to put to sleep, and the
`:clock` shell command's time arithmetic."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.durations import DurationError, parse_duration
from core.schedule import DAYS
from integrations.sandbox.kube_api import KINDS, FakeKube
from storage import environments as env_repo
from storage.db import Database
from storage.models import EnvironmentRecord, EnvState

DEMO_ENVIRONMENT = "checkout-preview"
_KIND = {k.kind: k for k in KINDS}
_AT = re.compile(r"^(?P<day>[A-Za-z]{3})\s+(?P<h>\d{1,2}):(?P<m>\d{2})\s+(?P<zone>\S+)$")


def seed_cluster(kube: FakeKube, schedule: str | None) -> None:
    annotations = {"forgebot.io/offhours": schedule} if schedule else {}
    kube.create(
        _KIND["Namespace"],
        "",
        {"metadata": {"name": DEMO_ENVIRONMENT, "annotations": annotations}},
    )
    for name, replicas in (("checkout", 3), ("cart", 2), ("worker", 1)):
        kube.seed_deployment(
            DEMO_ENVIRONMENT, name, f"registry.example.com/payments/{name}:1.4.1", replicas
        )


async def seed_environment(db: Database, now: datetime) -> None:
    """`checkout-preview`, a web-preview environment of U0DEVELOPER's, already active."""
    record = EnvironmentRecord(
        name=DEMO_ENVIRONMENT,
        template="web-preview",
        size="M",
        team="payments",
        owner_user_id="U0DEVELOPER",
        purpose="off-hours demo",
        cluster="dev-cluster",
        ttl_seconds=14 * 86400,
        monthly_cost="38.24",
        requested_at=now,
        updated_at=now,
    )
    stored = await db.run(lambda s: env_repo.insert(s, record))
    env_id = stored.id
    assert env_id is not None
    await db.run(
        lambda s: env_repo.transition(
            s,
            env_id,
            expected=[EnvState.PENDING],
            to=EnvState.ACTIVE,
            now=now,
            expires_at=now + timedelta(days=14),
        )
    )


def clock_jump(text: str, now: datetime) -> timedelta:
    """`+2h` moves on by a duration; `Tue 18:30 Europe/Berlin` to the next such moment."""
    cleaned = text.strip()
    if cleaned.startswith("+"):
        try:
            return parse_duration(cleaned[1:])
        except DurationError as exc:
            raise ValueError(str(exc)) from None
    match = _AT.match(cleaned)
    if match is None:
        raise ValueError("use :clock +2h or :clock Tue 18:30 Europe/Berlin")
    day = match.group("day").lower()
    if day not in DAYS:
        raise ValueError(f"“{match.group('day')}” is not a day (Mon ... Sun)")
    try:
        zone = ZoneInfo(match.group("zone"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"“{match.group('zone')}” is not an IANA time zone") from None
    hour, minute = int(match.group("h")), int(match.group("m"))
    if hour > 23 or minute > 59:
        raise ValueError("use a time from 00:00 to 23:59")
    local = now.astimezone(zone)
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    target += timedelta(days=(DAYS.index(day) - local.weekday()) % 7)
    if target <= local:
        target += timedelta(days=7)
    return target.astimezone(UTC) - now.astimezone(UTC)
