"""Read-only queries behind "what changed": every record of a change in one window.

Each query returns detached rows that started, ended or were decided inside the window;
`commands.changes.timeline` turns them into one list of events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from storage.models import DeploymentRecord, EnvironmentRecord, Freeze
from storage.offhours import OffhoursSleep
from storage.slo_alerts import SloAlertEpisode


@dataclass(frozen=True)
class ChangeRecords:
    deployments: Sequence[DeploymentRecord]
    freezes: Sequence[Freeze]
    sleeps: Sequence[OffhoursSleep]
    environments: Sequence[EnvironmentRecord]
    slo_episodes: Sequence[SloAlertEpisode]


def _between(column: object, since: datetime, until: datetime) -> object:
    return and_(col(column) >= since, col(column) < until)  # type: ignore[arg-type]


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
    deploys = session.exec(
        select(DeploymentRecord)
        .where(col(DeploymentRecord.service).in_(list(services)))
        .where(
            or_(
                _between(DeploymentRecord.started_at, since, until),  # type: ignore[arg-type]
                _between(DeploymentRecord.finished_at, since, until),  # type: ignore[arg-type]
            )
        )
        .order_by(col(DeploymentRecord.started_at).desc())
        .limit(limit)
    ).all()
    freezes = session.exec(
        select(Freeze)
        .where(col(Freeze.environment).in_(list(environments)))
        .where(
            or_(
                _between(Freeze.created_at, since, until),  # type: ignore[arg-type]
                _between(Freeze.lifted_at, since, until),  # type: ignore[arg-type]
            )
        )
        .order_by(col(Freeze.created_at).desc())
        .limit(limit)
    ).all()
    sleeps = session.exec(
        select(OffhoursSleep)
        .where(col(OffhoursSleep.team).in_(list(teams)))
        .where(
            or_(
                _between(OffhoursSleep.started_at, since, until),  # type: ignore[arg-type]
                _between(OffhoursSleep.ended_at, since, until),  # type: ignore[arg-type]
            )
        )
        .order_by(col(OffhoursSleep.started_at).desc())
        .limit(limit)
    ).all()
    envs = session.exec(
        select(EnvironmentRecord)
        .where(col(EnvironmentRecord.team).in_(list(teams)))
        .where(
            or_(
                _between(EnvironmentRecord.requested_at, since, until),  # type: ignore[arg-type]
                _between(EnvironmentRecord.updated_at, since, until),  # type: ignore[arg-type]
            )
        )
        .order_by(col(EnvironmentRecord.updated_at).desc())
        .limit(limit)
    ).all()
    episodes = session.exec(
        select(SloAlertEpisode)
        .where(col(SloAlertEpisode.service).in_(list(services)))
        .where(
            or_(
                _between(SloAlertEpisode.started_at, since, until),  # type: ignore[arg-type]
                _between(SloAlertEpisode.resolved_at, since, until),  # type: ignore[arg-type]
            )
        )
        .order_by(col(SloAlertEpisode.started_at).desc())
        .limit(limit)
    ).all()
    for row in (*deploys, *freezes, *sleeps, *envs, *episodes):
        session.expunge(row)
    return ChangeRecords(deploys, freezes, sleeps, envs, episodes)
