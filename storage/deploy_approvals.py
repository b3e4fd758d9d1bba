"""Deploy approvals repository: insert, read, and the one guarded decision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import ApprovalState, DeployApproval


def insert(session: Session, approval: DeployApproval) -> DeployApproval:
    session.add(approval)
    session.flush()
    return approval


def get(session: Session, approval_id: int) -> DeployApproval | None:
    return session.get(DeployApproval, approval_id)


def decide(
    session: Session,
    approval_id: int,
    *,
    to: ApprovalState,
    by: str,
    now: datetime,
    note: str = "",
) -> bool:
    """`pending -> approved|denied`, once: False when someone else decided first."""
    result = session.execute(
        update(DeployApproval)
        .where(col(DeployApproval.id) == approval_id)
        .where(col(DeployApproval.state) == ApprovalState.PENDING.value)
        .values(state=to.value, decided_by=by, decided_at=now, decision_note=note[:500])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_card(session: Session, approval_id: int, channel: str, ts: str) -> None:
    session.execute(
        update(DeployApproval)
        .where(col(DeployApproval.id) == approval_id)
        .values(card_channel=channel, card_ts=ts)
    )


def pending(session: Session, limit: int = 20) -> Sequence[DeployApproval]:
    """Deploys waiting for a second person, oldest first."""
    query = (
        select(DeployApproval)
        .where(col(DeployApproval.state) == ApprovalState.PENDING)
        .order_by(col(DeployApproval.created_at))
        .limit(limit)
    )
    return session.exec(query).all()
