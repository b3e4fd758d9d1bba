"""Hours slept and what they saved: each sleep period clipped to the report's window, priced at
the environment's awake hourly cost (its quota at the catalog's unit prices)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.clock import utc
from storage.offhours import OffhoursSleep


@dataclass(frozen=True)
class SavingsLine:
    environment: str
    team: str
    hours: Decimal
    saved: Decimal
    currency: str


def savings(sleeps: Sequence[OffhoursSleep], start: datetime, end: datetime) -> list[SavingsLine]:
    totals: dict[str, tuple[str, Decimal, Decimal, str]] = {}
    for sleep in sleeps:
        began = max(utc(sleep.started_at), start)
        ended = min(utc(sleep.ended_at) if sleep.ended_at else end, end)
        if ended <= began:
            continue
        hours = Decimal(int((ended - began).total_seconds())) / Decimal(3600)
        team, total_hours, saved, _ = totals.get(
            sleep.environment, (sleep.team, Decimal(0), Decimal(0), sleep.currency)
        )
        totals[sleep.environment] = (
            team,
            total_hours + hours,
            saved + hours * Decimal(sleep.hourly_cost or "0"),
            sleep.currency,
        )
    lines = [
        SavingsLine(env, team, hours, saved, currency)
        for env, (team, hours, saved, currency) in totals.items()
    ]
    return sorted(lines, key=lambda line: (-line.saved, line.environment))
