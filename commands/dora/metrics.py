"""DORA's four keys from the deploy record, each with its performance band.

Bands follow the 2021 Accelerate State of DevOps report, with the gaps between its ranges
closed at the lower bound of the better band:
deployment frequency: elite on demand (>= 1/day), high >= 1/week, medium >= 1/month;
lead time: elite < 1 h, high < 1 week, medium < 6 months;
time to restore: elite < 1 h, high < 1 day, medium < 1 week;
change failure rate: elite <= 15 %, high <= 30 %, medium <= 45 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from storage.deployments import DoraFigures


class Band(StrEnum):
    ELITE = "elite"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "no data"


@dataclass(frozen=True)
class DoraReport:
    scope: str
    days: int
    deploys: int
    per_day: float
    frequency_band: Band
    lead_time: timedelta | None
    lead_time_band: Band
    lead_time_samples: int
    change_failure_rate: float | None
    failure_band: Band
    time_to_restore: timedelta | None
    restore_band: Band
    restore_samples: int


def frequency_band(per_day: float, deploys: int) -> Band:
    if deploys == 0:
        return Band.UNKNOWN
    if per_day >= 1:
        return Band.ELITE
    if per_day >= 1 / 7:
        return Band.HIGH
    if per_day >= 1 / 30:
        return Band.MEDIUM
    return Band.LOW


def _by_duration(
    value: timedelta | None, elite: timedelta, high: timedelta, medium: timedelta
) -> Band:
    if value is None:
        return Band.UNKNOWN
    if value < elite:
        return Band.ELITE
    if value < high:
        return Band.HIGH
    if value < medium:
        return Band.MEDIUM
    return Band.LOW


def failure_band(rate: float | None) -> Band:
    if rate is None:
        return Band.UNKNOWN
    if rate <= 0.15:
        return Band.ELITE
    if rate <= 0.30:
        return Band.HIGH
    if rate <= 0.45:
        return Band.MEDIUM
    return Band.LOW


def report(scope: str, figures: DoraFigures) -> DoraReport:
    per_day = figures.deploys / figures.days
    rate = figures.failed_changes / figures.deploys if figures.deploys else None
    return DoraReport(
        scope=scope,
        days=round(figures.days),
        deploys=figures.deploys,
        per_day=per_day,
        frequency_band=frequency_band(per_day, figures.deploys),
        lead_time=figures.lead_time_median,
        lead_time_band=_by_duration(
            figures.lead_time_median, timedelta(hours=1), timedelta(weeks=1), timedelta(days=182)
        ),
        lead_time_samples=figures.lead_time_samples,
        change_failure_rate=rate,
        failure_band=failure_band(rate),
        time_to_restore=figures.restore_median,
        restore_band=_by_duration(
            figures.restore_median, timedelta(hours=1), timedelta(days=1), timedelta(weeks=1)
        ),
        restore_samples=figures.restore_samples,
    )
