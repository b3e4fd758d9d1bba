"""DORA's four keys from the deploy record, each with its performance band.

Bands follow the clusters of the **2024** Accelerate State of DevOps report (DORA), the latest
report that publishes them (`BANDS_REPORT`). The report gives each cluster a range per key; the
gaps and overlaps between ranges are closed as follows (and the docs say the same):

- deployment frequency: elite at least once a day (on demand), high at least once a week,
  medium at least once a month (30 days), low below that;
- lead time for changes: elite under 1 day, high up to 1 week, medium up to 1 month (30 days),
  low beyond;
- failed deployment recovery time (time to restore): elite under 1 hour, high under 1 day
  (the medium cluster also recovers within a day), medium under 1 week (no cluster of the
  report falls between a day and a week), low from 1 week;
- change failure rate: the report's clusters are not ordered (elite 5%, medium 10%, high 20%,
  low 40%), so a rate is read against the best cluster whose typical rate it does not exceed
  in the order of the other keys: elite up to 5%, high up to 20%, medium up to 40%, low above.

Medians are standard medians (the mean of the two middle values of an even count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from fractions import Fraction

from storage.deployments import DoraFigures

BANDS_REPORT = "2024 Accelerate State of DevOps report (DORA)"
BANDS_YEAR = 2024

FREQUENCY_PER_DAY = (Fraction(1), Fraction(1, 7), Fraction(1, 30))
"""Lower bounds (deploys per day) of elite, high and medium."""
LEAD_TIME_BELOW = (timedelta(days=1), timedelta(weeks=1), timedelta(days=30))
"""Elite is under the first; high and medium are up to (and including) the next ones."""
RESTORE_BELOW = (timedelta(hours=1), timedelta(days=1), timedelta(weeks=1))
"""Elite, high and medium are strictly under these."""
FAILURE_AT_MOST = (Fraction(5, 100), Fraction(20, 100), Fraction(40, 100))
"""Elite, high and medium are at or under these."""


class Band(StrEnum):
    ELITE = "elite"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "no data"


RANKED = (Band.ELITE, Band.HIGH, Band.MEDIUM)


@dataclass(frozen=True)
class DoraReport:
    scope: str
    environments: tuple[str, ...]
    """The environments counted (production ones unless another was asked for)."""
    production: bool
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
    failed_changes: int = 0


def frequency_band(deploys: int, days: float) -> Band:
    """Band of `deploys` over `days`, compared exactly (1 deploy in 7 days is once a week)."""
    if deploys == 0:
        return Band.UNKNOWN
    per_day = Fraction(deploys) / Fraction(days)
    for band, bound in zip(RANKED, FREQUENCY_PER_DAY, strict=True):
        if per_day >= bound:
            return band
    return Band.LOW


def lead_time_band(value: timedelta | None) -> Band:
    if value is None:
        return Band.UNKNOWN
    if value < LEAD_TIME_BELOW[0]:
        return Band.ELITE
    if value <= LEAD_TIME_BELOW[1]:
        return Band.HIGH
    if value <= LEAD_TIME_BELOW[2]:
        return Band.MEDIUM
    return Band.LOW


def restore_band(value: timedelta | None) -> Band:
    if value is None:
        return Band.UNKNOWN
    for band, bound in zip(RANKED, RESTORE_BELOW, strict=True):
        if value < bound:
            return band
    return Band.LOW


def failure_band(failed: int, deploys: int) -> Band:
    """Band of `failed` changes among `deploys`, compared exactly."""
    if deploys == 0:
        return Band.UNKNOWN
    rate = Fraction(failed, deploys)
    for band, bound in zip(RANKED, FAILURE_AT_MOST, strict=True):
        if rate <= bound:
            return band
    return Band.LOW


def report(
    scope: str, figures: DoraFigures, environments: tuple[str, ...], *, production: bool
) -> DoraReport:
    per_day = figures.deploys / figures.days
    rate = figures.failed_changes / figures.deploys if figures.deploys else None
    return DoraReport(
        scope=scope,
        environments=environments,
        production=production,
        days=round(figures.days),
        deploys=figures.deploys,
        per_day=per_day,
        frequency_band=frequency_band(figures.deploys, figures.days),
        lead_time=figures.lead_time_median,
        lead_time_band=lead_time_band(figures.lead_time_median),
        lead_time_samples=figures.lead_time_samples,
        change_failure_rate=rate,
        failure_band=failure_band(figures.failed_changes, figures.deploys),
        time_to_restore=figures.restore_median,
        restore_band=restore_band(figures.restore_median),
        restore_samples=figures.restore_samples,
        failed_changes=figures.failed_changes,
    )
