"""Alertmanager: its webhook payload (version 4) and the silences API (v2)."""
