"""Cost capability tables and repository: the Cost Explorer answer cache, budgets set in
Slack (they override the catalog), and the budget alerts already sent.

Money is stored as decimal text: exact on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col

from storage.types import UTCDateTime


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


class CostCacheEntry(SQLModel, table=True):
    """One Cost Explorer answer, keyed by the exact request it answers."""

    __tablename__ = "cost_cache"

    key: str = Field(primary_key=True)
    payload: str = Field(sa_type=Text)
    fetched_at: datetime = _time()
    expires_at: datetime = _time(index=True)


class BudgetOverride(SQLModel, table=True):
    """A monthly budget set with `/forge budget set`; wins over the catalog's."""

    __tablename__ = "budget_overrides"
    __table_args__ = (UniqueConstraint("team", "service", "environment"),)

    id: int | None = Field(default=None, primary_key=True)
    team: str
    service: str = ""
    environment: str = ""
    monthly: str
    set_by: str
    set_at: datetime = _time()


class BudgetAlertState:
    CLAIMED = "claimed"
    SENT = "sent"


class BudgetAlert(SQLModel, table=True):
    """A threshold crossing announced once: the unique key is budget + month + kind +
    threshold + the budget's revision (a changed budget re-arms its thresholds)."""

    __tablename__ = "budget_alerts"

    id: int | None = Field(default=None, primary_key=True)
    alert_key: str = Field(unique=True)
    team: str
    budget: str
    month: str
    kind: str
    threshold: int
    amount: str
    state: str = BudgetAlertState.CLAIMED
    channel: str = ""
    message_ts: str = ""
    claimed_at: datetime = _time()
    sent_at: datetime | None = _time(nullable=True)


# --- the cache ---------------------------------------------------------------------------------


def cached(session: Session, key: str, now: datetime) -> CostCacheEntry | None:
    """The entry for `key` if it has not expired."""
    entry = session.get(CostCacheEntry, key)
    if entry is None or entry.expires_at <= now:
        return None
    return entry


def store(
    session: Session, key: str, payload: str, fetched_at: datetime, expires_at: datetime
) -> None:
    """Insert or replace (another replica may have stored the same key meanwhile)."""
    entry = session.get(CostCacheEntry, key)
    if entry is None:
        try:
            with session.begin_nested():
                session.add(
                    CostCacheEntry(
                        key=key, payload=payload, fetched_at=fetched_at, expires_at=expires_at
                    )
                )
                session.flush()
            return
        except IntegrityError:
            pass
    session.execute(
        update(CostCacheEntry)
        .where(col(CostCacheEntry.key) == key)
        .values(payload=payload, fetched_at=fetched_at, expires_at=expires_at)
    )


def purge_expired(session: Session, now: datetime) -> int:
    result = session.execute(delete(CostCacheEntry).where(col(CostCacheEntry.expires_at) <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- budgets -----------------------------------------------------------------------------------


def overrides(session: Session) -> Sequence[BudgetOverride]:
    return session.execute(select(BudgetOverride)).scalars().all()


def set_override(
    session: Session,
    team: str,
    monthly: Decimal,
    set_by: str,
    now: datetime,
    *,
    service: str = "",
    environment: str = "",
) -> Decimal | None:
    """Set a budget; returns the amount it replaced (None if it had no override). Setting
    the amount in force again changes nothing (its alerts stay spent)."""
    existing = session.execute(
        select(BudgetOverride).where(
            col(BudgetOverride.team) == team,
            col(BudgetOverride.service) == service,
            col(BudgetOverride.environment) == environment,
        )
    ).scalar_one_or_none()
    if existing is None:
        session.add(
            BudgetOverride(
                team=team,
                service=service,
                environment=environment,
                monthly=str(monthly),
                set_by=set_by,
                set_at=now,
            )
        )
        session.flush()
        return None
    previous = Decimal(existing.monthly)
    if previous == monthly:
        return previous
    existing.monthly, existing.set_by, existing.set_at = str(monthly), set_by, now
    session.add(existing)
    return previous


# --- alerts ------------------------------------------------------------------------------------


def claim_alert(session: Session, alert: BudgetAlert) -> bool:
    """True for the first claim of `alert.alert_key`, ever; False after (any replica)."""
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        return False
    return True


def mark_alert_sent(session: Session, alert_key: str, channel: str, ts: str, now: datetime) -> None:
    session.execute(
        update(BudgetAlert)
        .where(col(BudgetAlert.alert_key) == alert_key)
        .values(state=BudgetAlertState.SENT, channel=channel, message_ts=ts, sent_at=now)
    )


def release_alert(session: Session, alert_key: str) -> None:
    """Forget a claim whose message could not be posted, so the next run tries again."""
    session.execute(
        delete(BudgetAlert).where(
            col(BudgetAlert.alert_key) == alert_key,
            col(BudgetAlert.state) == BudgetAlertState.CLAIMED,
        )
    )


LEGACY_KEY_PARTS = 4
"""budget|month|kind|threshold: keys written before they named the budget's revision."""


def legacy_alerts(session: Session, budget: str, month: str) -> dict[tuple[str, int], datetime]:
    """(kind, threshold) -> claimed_at of the month's alerts of `budget` whose keys do not
    name a budget revision (written by an earlier release), so an upgrade does not announce
    them a second time."""
    rows = session.execute(
        select(BudgetAlert).where(
            col(BudgetAlert.budget) == budget, col(BudgetAlert.month) == month
        )
    ).scalars()
    return {
        (row.kind, row.threshold): row.claimed_at
        for row in rows
        if len(row.alert_key.split("|")) == LEGACY_KEY_PARTS
    }


def alerts_for_month(session: Session, month: str) -> Sequence[BudgetAlert]:
    return (
        session.execute(select(BudgetAlert).where(col(BudgetAlert.month) == month)).scalars().all()
    )
