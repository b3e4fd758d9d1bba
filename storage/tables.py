"""Imports every module that defines tables, so metadata (Alembic, tests) sees them all."""

from storage import models, offhours, slo_alerts

__all__ = ["models", "offhours", "slo_alerts"]
