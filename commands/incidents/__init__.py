"""Incidents: a channel per incident, roles, paging, a timeline, a summary and a postmortem
draft, all from `/forge incident`."""
