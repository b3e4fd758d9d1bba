"""Off-hours state: per-environment settings and overrides, the originals recorded before a
shutdown, and the sleep periods the savings report adds up.

Originals are the part that must never be lost: a row is written *before* the object is scaled
down, and only if no unrestored row exists for the same object (`live_key` is unique while the
row is live and NULL once it is restored), so a repeated shutdown can never overwrite the count
an object had before it first went to sleep.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Table, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from storage.types import UTCDateTime

_IN_CHUNK = 500
"""Keys per `IN (...)` list: well below every database's limit on bound parameters."""


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


class OffhoursState:
    AWAKE = "awake"
    ASLEEP = "asleep"


class OffhoursSetting(SQLModel, table=True):
    """One row per environment that off-hours has seen: its schedule override, a temporary
    override of the schedule (snooze, skip, sleep now, wake on demand) and its observed state."""

    __tablename__ = "offhours_settings"

    environment: str = Field(primary_key=True)
    schedule: str = Field(default="", description="set with /forge offhours set; wins over all")
    state: str = Field(default=OffhoursState.AWAKE)
    override_up: bool | None = Field(default=None, nullable=True)
    override_until: datetime | None = _time(nullable=True)
    override_by: str = ""
    override_reason: str = ""
    reminded_for: datetime | None = _time(nullable=True)
    """The shutdown time the last reminder announced (one reminder per shutdown)."""
    failures: int = 0
    last_error: str = ""
    alerted_for: str = ""
    """The failed transition the owner was last alerted about (one alert per failure streak)."""
    updated_at: datetime = _time()


class OffhoursOriginal(SQLModel, table=True):
    """What one object looked like before off-hours changed it; restored exactly on wake."""

    __tablename__ = "offhours_originals"
    __table_args__ = (Index("ix_offhours_originals_env_restored", "environment", "restored_at"),)

    id: int | None = Field(default=None, primary_key=True)
    environment: str
    kind: str
    """Deployment, StatefulSet, CronJob, HorizontalPodAutoscaler or an AWS resource kind."""
    name: str
    original: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    live_key: str | None = Field(default=None, unique=True)
    recorded_at: datetime = _time()
    restored_at: datetime | None = _time(nullable=True)
    outcome: str = ""


_ORIGINALS: Table = OffhoursOriginal.__table__  # type: ignore[attr-defined]


class OffhoursSleep(SQLModel, table=True):
    """One period an environment slept, with what an hour of it costs awake."""

    __tablename__ = "offhours_sleeps"

    id: int | None = Field(default=None, primary_key=True)
    environment: str = Field(index=True)
    team: str = Field(index=True)
    started_at: datetime = _time(index=True)
    ended_at: datetime | None = _time(nullable=True)
    hourly_cost: str = "0"
    currency: str = "USD"
    open_key: str | None = Field(default=None, unique=True)
    """The environment's name while the period is open: one open period per environment."""


# --- settings ------------------------------------------------------------------------------------


def setting(session: Session, environment: str, now: datetime) -> OffhoursSetting:
    """The environment's row, created awake on first sight."""
    found = session.get(OffhoursSetting, environment)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            row = OffhoursSetting(environment=environment, updated_at=now)
            session.add(row)
            session.flush()
            return row
    except IntegrityError:
        found = session.get(OffhoursSetting, environment)
        assert found is not None
        return found


def settings(session: Session, environments: Sequence[str]) -> dict[str, OffhoursSetting]:
    rows = session.exec(
        select(OffhoursSetting).where(col(OffhoursSetting.environment).in_(list(environments)))
    ).all()
    return {row.environment: row for row in rows}


def update_setting(session: Session, environment: str, now: datetime, **changes: Any) -> None:
    setting(session, environment, now)
    session.execute(
        update(OffhoursSetting)
        .where(col(OffhoursSetting.environment) == environment)
        .values(updated_at=now, **changes)
    )


def move_state(
    session: Session, environment: str, *, expected: str, to: str, now: datetime, **changes: Any
) -> bool:
    """The guarded awake <-> asleep step: True for the one caller that made it."""
    setting(session, environment, now)
    result = session.execute(
        update(OffhoursSetting)
        .where(col(OffhoursSetting.environment) == environment)
        .where(col(OffhoursSetting.state) == expected)
        .values(state=to, updated_at=now, **changes)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_reminded(session: Session, environment: str, shutdown_at: datetime, now: datetime) -> bool:
    """Claim the reminder for one shutdown: True once, whichever replica asks."""
    setting(session, environment, now)
    result = session.execute(
        update(OffhoursSetting)
        .where(col(OffhoursSetting.environment) == environment)
        .where(
            or_(
                col(OffhoursSetting.reminded_for).is_(None),
                col(OffhoursSetting.reminded_for) != shutdown_at,
            )
        )
        .values(reminded_for=shutdown_at, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_alerted(session: Session, environment: str, what: str, now: datetime) -> bool:
    setting(session, environment, now)
    result = session.execute(
        update(OffhoursSetting)
        .where(col(OffhoursSetting.environment) == environment)
        .where(col(OffhoursSetting.alerted_for) != what)
        .values(alerted_for=what, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- originals -----------------------------------------------------------------------------------


def _key(environment: str, kind: str, name: str) -> str:
    return f"{environment}/{kind}/{name}"


def record_originals(
    session: Session,
    environment: str,
    items: Sequence[tuple[str, str, dict[str, Any]]],
    now: datetime,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Record (kind, name, original) unless a live record exists; return what is recorded for
    each, the older record winning."""
    keys = [_key(environment, kind, name) for kind, name, _ in items]
    existing = {
        (row.kind, row.name): row.original
        for row in session.exec(
            select(OffhoursOriginal).where(col(OffhoursOriginal.live_key).in_(keys))
        ).all()
    }
    result: dict[tuple[str, str], dict[str, Any]] = dict(existing)
    fresh: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, name, original in items:
        if (kind, name) not in result:
            fresh.setdefault((kind, name), original)
    if not fresh:
        return result
    try:
        # One multi-row INSERT for all of them (a sweep records thousands): the unique live
        # key still refuses a row that another replica recorded since the read above.
        with session.begin_nested():
            session.execute(
                insert(OffhoursOriginal),
                [
                    {
                        "environment": environment,
                        "kind": kind,
                        "name": name,
                        "original": original,
                        "live_key": _key(environment, kind, name),
                        "recorded_at": now,
                        "outcome": "",
                    }
                    for (kind, name), original in fresh.items()
                ],
            )
        result.update(fresh)
        return result
    except IntegrityError:
        pass  # someone recorded some of them meanwhile: one at a time, the older record winning
    for (kind, name), original in fresh.items():
        try:
            with session.begin_nested():
                session.add(
                    OffhoursOriginal(
                        environment=environment,
                        kind=kind,
                        name=name,
                        original=original,
                        live_key=_key(environment, kind, name),
                        recorded_at=now,
                    )
                )
                session.flush()
            result[(kind, name)] = original
        except IntegrityError:
            row = session.exec(
                select(OffhoursOriginal).where(
                    OffhoursOriginal.live_key == _key(environment, kind, name)
                )
            ).one()
            result[(kind, name)] = row.original
    return result


def live_originals(session: Session, environment: str) -> Sequence[OffhoursOriginal]:
    return session.exec(
        select(OffhoursOriginal)
        .where(OffhoursOriginal.environment == environment)
        .where(col(OffhoursOriginal.live_key).is_not(None))
        .order_by(col(OffhoursOriginal.id))
    ).all()


def close_originals(
    session: Session,
    environment: str,
    outcomes: dict[tuple[str, str], str],
    now: datetime,
) -> None:
    """Mark restored (or found gone) objects, releasing their live keys: one UPDATE per
    distinct outcome ("restored 2", "gone: ..."), not one per object."""
    keys_by_outcome: dict[str, list[str]] = {}
    for (kind, name), outcome in outcomes.items():
        keys_by_outcome.setdefault(outcome[:200], []).append(_key(environment, kind, name))
    for outcome, keys in keys_by_outcome.items():
        for start in range(0, len(keys), _IN_CHUNK):
            # On the table, not the ORM entity: no rows of it are loaded in this session, and
            # the ORM's bulk-update machinery cost more CPU than the statement itself.
            session.execute(
                update(_ORIGINALS)
                .where(_ORIGINALS.c.live_key.in_(keys[start : start + _IN_CHUNK]))
                .values(live_key=None, restored_at=now, outcome=outcome)
            )


def forget_original(session: Session, environment: str, kind: str, name: str) -> None:
    """Drop a record of something off-hours did not change after all (it was already off)."""
    session.execute(
        update(OffhoursOriginal)
        .where(col(OffhoursOriginal.live_key) == _key(environment, kind, name))
        .values(live_key=None, outcome="unchanged: already off")
    )


# --- sleep periods -------------------------------------------------------------------------------


def open_sleep(
    session: Session,
    environment: str,
    team: str,
    now: datetime,
    hourly_cost: str,
    currency: str,
) -> None:
    try:
        with session.begin_nested():
            session.add(
                OffhoursSleep(
                    environment=environment,
                    team=team,
                    started_at=now,
                    hourly_cost=hourly_cost,
                    currency=currency,
                    open_key=environment,
                )
            )
            session.flush()
    except IntegrityError:
        pass  # already open: a sleep is one period however often it is confirmed


def close_sleep(session: Session, environment: str, now: datetime) -> None:
    session.execute(
        update(OffhoursSleep)
        .where(col(OffhoursSleep.open_key) == environment)
        .values(open_key=None, ended_at=now)
    )


def close_sleeps_except(session: Session, environments: Sequence[str], now: datetime) -> int:
    """End the open periods of environments that are gone (deleted or expired while asleep)."""
    result = session.execute(
        update(OffhoursSleep)
        .where(col(OffhoursSleep.open_key).is_not(None))
        .where(col(OffhoursSleep.environment).not_in(list(environments)))
        .values(open_key=None, ended_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def sleeps_overlapping(
    session: Session, start: datetime, end: datetime, teams: Sequence[str] | None = None
) -> Sequence[OffhoursSleep]:
    query = (
        select(OffhoursSleep)
        .where(col(OffhoursSleep.started_at) < end)
        .where(or_(col(OffhoursSleep.ended_at).is_(None), col(OffhoursSleep.ended_at) > start))
    )
    if teams is not None:
        query = query.where(col(OffhoursSleep.team).in_(list(teams)))
    return session.exec(query.order_by(col(OffhoursSleep.environment))).all()
