"""Paging providers: PagerDuty (Events API v2) and Opsgenie (Alert API v2)."""
