"""Price tags for environments, shown before anyone asks: quota x unit prices x hours awake.

An environment's quota is what it may use, so it is what it costs at most. Hours asleep under
the template's off-hours schedule cost nothing; they are taken from the schedule itself over
a reference week, so time zones, overnight windows and weekends count exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from core.catalog import Pricing, QuotaSize
from core.schedule import downtime_hours, parse_schedule

HOURS_PER_MONTH = Decimal("730")  # the cloud providers' convention: 8760 h / 12
_WEEK = timedelta(days=7)
# A plain week without DST changes or holidays, for the steady-state fraction.
_REFERENCE_MONDAY = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PriceTag:
    hourly: Decimal
    monthly: Decimal
    for_ttl: Decimal
    awake_fraction: Decimal
    currency: str

    def describe(self, ttl: timedelta) -> str:
        asleep = Decimal(1) - self.awake_fraction
        sleep_note = f", asleep {asleep:.0%} of the week" if asleep > 0 else ""
        return (
            f"≈ {money(self.monthly, self.currency)}/month "
            f"({money(self.for_ttl, self.currency)} for the {_human(ttl)} requested{sleep_note})"
        )


def money(amount: Decimal, currency: str) -> str:
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency)
    return f"{symbol}{rounded:,}" if symbol else f"{rounded:,} {currency}"


def _human(ttl: timedelta) -> str:
    hours = int(ttl.total_seconds() // 3600)
    if hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours} hours"


def awake_fraction(offhours: str | None) -> Decimal:
    """Share of a week the schedule keeps the environment up (1 without a schedule)."""
    if not offhours:
        return Decimal(1)
    schedule = parse_schedule(offhours)
    down = downtime_hours(schedule, _REFERENCE_MONDAY, _REFERENCE_MONDAY + _WEEK)
    return (Decimal(168) - Decimal(str(down))) / Decimal(168)


def price_tag(size: QuotaSize, pricing: Pricing, ttl: timedelta, offhours: str | None) -> PriceTag:
    hourly = size.cpu * pricing.vcpu_hour + size.memory_gib * pricing.gib_hour
    fraction = awake_fraction(offhours)
    ttl_hours = Decimal(int(ttl.total_seconds())) / Decimal(3600)
    return PriceTag(
        hourly=hourly,
        monthly=hourly * HOURS_PER_MONTH * fraction,
        for_ttl=hourly * ttl_hours * fraction,
        awake_fraction=fraction,
        currency=pricing.currency,
    )
