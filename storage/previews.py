"""Preview environments of pull requests: one row per pull request, whatever it goes through.

The row holds what the code host last said (`open`, `head_sha`, `event_at`) and what forgebot
has made of it (`phase`, `deployed_sha`, the Slack message, the PR comment). Every accepted
webhook bumps `generation`; a sync brings the world to the row's state and records the
generation it reached in `synced_generation`, so any number of pushes arriving while a preview
is being built cost one more pass, not one per push. Events are ordered by the time the code
host gives them (`event_at`), never by arrival: a late, older delivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import UniqueConstraint, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from storage.types import UTCDateTime


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


class PreviewPhase(StrEnum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    REMOVED = "removed"


class PullRequestPreview(SQLModel, table=True):
    __tablename__ = "previews"
    __table_args__ = (UniqueConstraint("provider", "repository", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str
    repository: str
    number: int
    service: str
    team: str = Field(index=True)
    namespace: str = Field(index=True)
    host: str = ""
    title: str = ""
    author: str = ""
    branch: str = ""
    url: str = ""
    open: bool = True
    head_sha: str = ""
    event_at: datetime = _time()
    """The code host's time of the last accepted event (push time for a push)."""
    generation: int = 1
    synced_generation: int = 0
    deployed_sha: str = ""
    phase: str = Field(default=PreviewPhase.BUILDING)
    detail: str = ""
    slack_channel: str = ""
    slack_ts: str = ""
    comment_id: str = ""
    deployment_id: str = ""
    """The code host's deployment (GitHub deployments API) for `head_sha`."""
    deployment_sha: str = ""
    merged: bool = False
    merge_commit_sha: str = Field(default="", index=True)
    merged_at: datetime | None = _time(nullable=True)
    first_commit_at: datetime | None = _time(nullable=True)
    created_at: datetime = _time()
    updated_at: datetime = _time()
    ready_at: datetime | None = _time(nullable=True)


@dataclass(frozen=True)
class Observed:
    """What a webhook says about one pull request, in the repository's terms."""

    provider: str
    repository: str
    number: int
    open: bool
    head_sha: str
    at: datetime
    title: str = ""
    author: str = ""
    branch: str = ""
    url: str = ""
    merged: bool = False
    merge_commit_sha: str = ""
    merged_at: datetime | None = None


@dataclass(frozen=True)
class Accepted:
    preview_id: int
    generation: int
    changed: bool
    """False when the event was older than what is known, or said nothing new."""


def is_news(event: Observed, at: datetime, open: bool, head_sha: str, merged: bool) -> bool:
    """Whether `event` moves on a pull request last known at `at` in that state."""
    return event.at >= at and (
        open != event.open or head_sha != event.head_sha or merged != event.merged
    )


def would_change(session: Session, events: Sequence[Observed]) -> list[bool]:
    """What `observe` would answer for each event, from one read and no ORM object: the
    webhooks' answers use it, and `observe` decides for good after the answers."""
    if not events:
        return []
    rows = session.execute(
        sa_select(
            col(PullRequestPreview.provider),
            col(PullRequestPreview.repository),
            col(PullRequestPreview.number),
            col(PullRequestPreview.event_at),
            col(PullRequestPreview.open),
            col(PullRequestPreview.head_sha),
            col(PullRequestPreview.merged),
        ).where(
            col(PullRequestPreview.repository).in_({e.repository for e in events}),
            col(PullRequestPreview.number).in_({e.number for e in events}),
        )
    ).all()
    known = {(r[0], r[1], r[2]): (r[3], r[4], r[5], r[6]) for r in rows}
    return [
        (state := known.get((e.provider, e.repository, e.number))) is None or is_news(e, *state)
        for e in events
    ]


def observe(
    session: Session,
    event: Observed,
    *,
    service: str,
    team: str,
    namespace: str,
    host: str,
    now: datetime,
) -> Accepted:
    """Record an event: create the row, or move it on if the event is not older than the last
    accepted one (a guarded UPDATE, so two replicas racing apply each event at most once)."""
    existing = by_pull_request(session, event.provider, event.repository, event.number)
    if existing is None:
        row = PullRequestPreview(
            provider=event.provider,
            repository=event.repository,
            number=event.number,
            service=service,
            team=team,
            namespace=namespace,
            host=host,
            title=event.title[:300],
            author=event.author,
            branch=event.branch[:255],
            url=event.url,
            open=event.open,
            head_sha=event.head_sha,
            event_at=event.at,
            merged=event.merged,
            merge_commit_sha=event.merge_commit_sha,
            merged_at=event.merged_at,
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            return observe(
                session, event, service=service, team=team, namespace=namespace, host=host, now=now
            )
        assert row.id is not None
        return Accepted(row.id, row.generation, True)
    assert existing.id is not None
    if not is_news(event, existing.event_at, existing.open, existing.head_sha, existing.merged):
        return Accepted(existing.id, existing.generation, False)
    # Read before the UPDATE: an ORM bulk update also refreshes the objects in the session.
    preview_id, generation = existing.id, existing.generation
    values: dict[str, Any] = {
        "open": event.open,
        "head_sha": event.head_sha or existing.head_sha,
        "event_at": event.at,
        "generation": generation + 1,
        "updated_at": now,
        "host": host,
        "namespace": namespace,
    }
    for name in ("title", "author", "branch", "url"):
        if getattr(event, name):
            values[name] = getattr(event, name)
    if event.merged:
        values.update(
            merged=True, merge_commit_sha=event.merge_commit_sha, merged_at=event.merged_at
        )
    result = session.execute(
        update(PullRequestPreview)
        .where(col(PullRequestPreview.id) == preview_id)
        .where(col(PullRequestPreview.generation) == generation)
        .values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.expire_all()
        return observe(
            session, event, service=service, team=team, namespace=namespace, host=host, now=now
        )
    return Accepted(preview_id, generation + 1, True)


def by_pull_request(
    session: Session, provider: str, repository: str, number: int
) -> PullRequestPreview | None:
    return session.exec(
        select(PullRequestPreview).where(
            PullRequestPreview.provider == provider,
            PullRequestPreview.repository == repository,
            PullRequestPreview.number == number,
        )
    ).first()


def get(session: Session, preview_id: int) -> PullRequestPreview | None:
    return session.get(PullRequestPreview, preview_id)


def by_namespace(session: Session, namespace: str) -> PullRequestPreview | None:
    return session.exec(
        select(PullRequestPreview)
        .where(PullRequestPreview.namespace == namespace)
        .order_by(col(PullRequestPreview.updated_at).desc())
    ).first()


def set_fields(session: Session, preview_id: int, now: datetime, **changes: Any) -> None:
    session.execute(
        update(PullRequestPreview)
        .where(col(PullRequestPreview.id) == preview_id)
        .values(updated_at=now, **changes)
    )


def mark_synced(session: Session, preview_id: int, generation: int, now: datetime) -> None:
    """`synced_generation` only ever grows, whichever pass finishes last."""
    session.execute(
        update(PullRequestPreview)
        .where(col(PullRequestPreview.id) == preview_id)
        .where(col(PullRequestPreview.synced_generation) < generation)
        .values(synced_generation=generation, updated_at=now)
    )


def unsynced(session: Session) -> Sequence[PullRequestPreview]:
    return session.exec(
        select(PullRequestPreview).where(
            col(PullRequestPreview.synced_generation) < col(PullRequestPreview.generation)
        )
    ).all()


def live(session: Session, teams: Sequence[str] | None = None) -> Sequence[PullRequestPreview]:
    """Previews that exist or are on their way (not removed), newest first."""
    query = select(PullRequestPreview).where(
        or_(
            col(PullRequestPreview.phase) != PreviewPhase.REMOVED.value,
            col(PullRequestPreview.synced_generation) < col(PullRequestPreview.generation),
        )
    )
    if teams is not None:
        query = query.where(col(PullRequestPreview.team).in_(list(teams)))
    return session.exec(query.order_by(col(PullRequestPreview.created_at).desc())).all()


def merged_with(session: Session, sha: str) -> PullRequestPreview | None:
    if not sha:
        return None
    return session.exec(
        select(PullRequestPreview).where(PullRequestPreview.merge_commit_sha == sha)
    ).first()
