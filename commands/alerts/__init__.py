"""Alerts from Alertmanager: routed to the owning team, one message per group updated in place,
enriched with what changed, SLO state and the runbook, with buttons that act."""
