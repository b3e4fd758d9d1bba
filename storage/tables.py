"""Imports every module that defines tables, so metadata (Alembic, tests) sees them all."""

from storage import cost, models, offhours, previews, slo_alerts

__all__ = ["cost", "models", "offhours", "previews", "slo_alerts"]
