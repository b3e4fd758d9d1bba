"""Burn-rate alert episodes: one row per SLO per episode, guarded so it is posted once.

`open_key` holds the SLO's key while the episode is open and is unique, so only one open
episode per SLO can exist whichever replica or retry tries to open it; resolving clears it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col

from storage.types import UTCDateTime


def _time(nullable: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable)


class SloAlertEpisode(SQLModel, table=True):
    __tablename__ = "slo_alert_episodes"

    id: int | None = Field(default=None, primary_key=True)
    slo_key: str = Field(index=True, description="service/slo")
    service: str
    environment: str
    severity: str
    condition: str
    started_at: datetime = _time()
    resolved_at: datetime | None = _time(nullable=True)
    channel: str
    message_ts: str = ""
    open_key: str | None = Field(default=None, unique=True)


def open_episode(session: Session, episode: SloAlertEpisode) -> SloAlertEpisode | None:
    """Insert an open episode; None if the SLO already has one."""
    episode.open_key = episode.slo_key
    try:
        with session.begin_nested():
            session.add(episode)
            session.flush()
    except IntegrityError:
        return None
    session.refresh(episode)
    session.expunge(episode)
    return episode


def open_episodes(session: Session) -> Sequence[SloAlertEpisode]:
    rows = (
        session.execute(select(SloAlertEpisode).where(col(SloAlertEpisode.open_key).is_not(None)))
        .scalars()
        .all()
    )
    for row in rows:
        session.expunge(row)
    return rows


POSTING = "posting"


def claim_unposted(session: Session, episode_id: int, opened_before: datetime) -> bool:
    """Claim posting an episode whose opener never posted (it crashed): once, and never while
    the opener of this very evaluation may still be posting it."""
    result = session.execute(
        update(SloAlertEpisode)
        .where(col(SloAlertEpisode.id) == episode_id, col(SloAlertEpisode.message_ts) == "")
        .where(col(SloAlertEpisode.started_at) < opened_before)
        .values(message_ts=POSTING)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_message(session: Session, episode_id: int, channel: str, ts: str) -> bool:
    """Record the posted message once (a second poster for the same episode gets False)."""
    result = session.execute(
        update(SloAlertEpisode)
        .where(col(SloAlertEpisode.id) == episode_id)
        .where(col(SloAlertEpisode.message_ts).in_(["", POSTING]))
        .values(channel=channel, message_ts=ts)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def escalate(session: Session, episode_id: int, severity: str, condition: str) -> bool:
    result = session.execute(
        update(SloAlertEpisode)
        .where(col(SloAlertEpisode.id) == episode_id, col(SloAlertEpisode.open_key).is_not(None))
        .where(col(SloAlertEpisode.severity) != severity)
        .values(severity=severity, condition=condition)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def resolve(session: Session, episode_id: int, now: datetime) -> bool:
    """open -> resolved, once."""
    result = session.execute(
        update(SloAlertEpisode)
        .where(col(SloAlertEpisode.id) == episode_id, col(SloAlertEpisode.open_key).is_not(None))
        .values(open_key=None, resolved_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
