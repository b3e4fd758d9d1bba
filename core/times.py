"""The one way a time is shown to people: always with the zone it is really in.

A datetime read back from the database is UTC; a catalog freeze window's end is in the
window's own zone. `shown` labels each with its true zone (and adds the UTC time when the zone
is another one), so a Berlin midnight is never printed as "00:00 UTC".
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

DAY_TIME = "%a %d %b %H:%M"
DATE_TIME = "%Y-%m-%d %H:%M"


def zone_label(zone: tzinfo | None, when: datetime) -> str:
    key = getattr(zone, "key", None)
    if key in (None, "UTC", "Etc/UTC") and when.utcoffset() == UTC.utcoffset(None):
        return "UTC"
    return str(key or when.tzname() or "UTC")


def shown(when: datetime, pattern: str = DAY_TIME) -> str:
    """`when` as people read it: `Fri 01 Jan 00:00 Europe/Berlin (23:00 UTC)`, or
    `Thu 31 Dec 23:00 UTC` for a UTC time. A naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    label = zone_label(when.tzinfo, when)
    text = f"{when:{pattern}} {label}"
    if label != "UTC":
        text += f" ({when.astimezone(UTC):%H:%M} UTC)"
    return text
