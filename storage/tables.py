"""Imports every module that defines tables, so metadata (Alembic, tests) sees them all."""

from storage import (
    alert_groups,
    cost,
    extensions,
    incidents,
    models,
    offhours,
    previews,
    slo_alerts,
)

__all__ = [
    "alert_groups",
    "cost",
    "extensions",
    "incidents",
    "models",
    "offhours",
    "previews",
    "slo_alerts",
]
