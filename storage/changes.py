"""Read-only queries behind "what changed": every record of a change in one window.

Each query returns detached rows that started, ended or were decided inside the window;
`commands.changes.timeline` turns them into one list of events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from storage.models import (
    DeploymentRecord,
    EnvironmentRecord,
    Freeze,
    Operation,
    OperationState,
)
from storage.offhours import OffhoursSleep
from storage.slo_alerts import SloAlertEpisode


@dataclass(frozen=True)
class ChangeRecords:
    deployments: Sequence[DeploymentRecord]
    freezes: Sequence[Freeze]
    sleeps: Sequence[OffhoursSleep]
    environments: Sequence[EnvironmentRecord]
    slo_episodes: Sequence[SloAlertEpisode]
    scales: Sequence[Operation] = ()
    """Succeeded `/forge scale` operations (payload: service, environment, from, to)."""


SCALE_KIND = "scale"
"""The operation kind of `/forge scale` (commands/scale): its rows are the record."""


def _between(column: object, since: datetime, until: datetime) -> object:
    return and_(col(column) >= since, col(column) < until)  # type: ignore[arg-type]


Row = TypeVar("Row", DeploymentRecord, Freeze, OffhoursSleep, EnvironmentRecord, SloAlertEpisode)


def _touched(
    session: Session,
    model: type[Row],
    scope: tuple[Any, Sequence[str]],
    moments: tuple[Any, Any],
    newest_first: Any,
    window: tuple[datetime, datetime],
    limit: int,
) -> Sequence[Row]:
    """Rows of `model` whose `scope` column is one of the keys and one of whose two
    `moments` (began, ended or decided) falls inside `window`, newest first."""
    column, keys = scope
    since, until = window
    return session.exec(
        select(model)
        .where(col(column).in_(list(keys)))
        .where(or_(*(_between(moment, since, until) for moment in moments)))  # type: ignore[arg-type]
        .order_by(col(newest_first).desc())
        .limit(limit)
    ).all()


def records(
    session: Session,
    *,
    services: Sequence[str],
    environments: Sequence[str],
    teams: Sequence[str],
    since: datetime,
    until: datetime,
    limit: int = 500,
) -> ChangeRecords:
    """Changes touching these services, (shared) environments and teams' own environments."""
    window = (since, until)
    deploys = _touched(
        session,
        DeploymentRecord,
        (DeploymentRecord.service, services),
        (DeploymentRecord.started_at, DeploymentRecord.finished_at),
        DeploymentRecord.started_at,
        window,
        limit,
    )
    freezes = _touched(
        session,
        Freeze,
        (Freeze.environment, environments),
        (Freeze.created_at, Freeze.lifted_at),
        Freeze.created_at,
        window,
        limit,
    )
    sleeps = _touched(
        session,
        OffhoursSleep,
        (OffhoursSleep.team, teams),
        (OffhoursSleep.started_at, OffhoursSleep.ended_at),
        OffhoursSleep.started_at,
        window,
        limit,
    )
    envs = _touched(
        session,
        EnvironmentRecord,
        (EnvironmentRecord.team, teams),
        (EnvironmentRecord.requested_at, EnvironmentRecord.updated_at),
        EnvironmentRecord.updated_at,
        window,
        limit,
    )
    episodes = _touched(
        session,
        SloAlertEpisode,
        (SloAlertEpisode.service, services),
        (SloAlertEpisode.started_at, SloAlertEpisode.resolved_at),
        SloAlertEpisode.started_at,
        window,
        limit,
    )
    scales = [
        row
        for row in session.exec(
            select(Operation)
            .where(col(Operation.kind) == SCALE_KIND)
            .where(col(Operation.state) == OperationState.SUCCEEDED.value)
            .where(_between(Operation.finished_at, since, until))  # type: ignore[arg-type]
            .order_by(col(Operation.finished_at).desc())
            .limit(limit)
        ).all()
        if str((row.payload or {}).get("service", "")) in services
    ]
    for row in (*deploys, *freezes, *sleeps, *envs, *episodes, *scales):
        session.expunge(row)
    return ChangeRecords(deploys, freezes, sleeps, envs, episodes, scales)
