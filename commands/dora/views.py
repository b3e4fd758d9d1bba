"""DORA report as Block Kit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.dora.metrics import BANDS_REPORT, Band, DoraReport
from core.block_limits import escape
from core.text import plural

BAND_ICON = {
    Band.ELITE: ":trophy:",
    Band.HIGH: ":large_green_circle:",
    Band.MEDIUM: ":large_yellow_circle:",
    Band.LOW: ":red_circle:",
    Band.UNKNOWN: ":white_circle:",
}


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "no data"
    minutes = int(value.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def _percent(rate: float) -> str:
    text = f"{rate * 100:.1f}".removesuffix(".0")
    return f"{text}%"


def _median(value: timedelta | None, samples: str) -> str:
    # "no data", never "median no data".
    return "no data" if value is None else f"median {_duration(value)} ({samples})"


def dora_report(report: DoraReport) -> tuple[str, list[dict[str, Any]]]:
    rate = (
        f"{_percent(report.change_failure_rate)} ({report.failed_changes} of {report.deploys})"
        if report.change_failure_rate is not None
        else "no data"
    )
    fields = [
        f"*Deployment frequency* {BAND_ICON[report.frequency_band]} {report.frequency_band}\n"
        f"{plural(report.deploys, 'deploy')}, {report.per_day:.2f}/day",
        f"*Lead time for changes* {BAND_ICON[report.lead_time_band]} {report.lead_time_band}\n"
        + _median(report.lead_time, f"{report.lead_time_samples} with a commit time"),
        f"*Change failure rate* {BAND_ICON[report.failure_band]} {report.failure_band}\n{rate}",
        f"*Time to restore* {BAND_ICON[report.restore_band]} {report.restore_band}\n"
        + _median(report.time_to_restore, plural(report.restore_samples, "restore")),
    ]
    where = ", ".join(report.environments)
    title = f"DORA metrics for {escape(report.scope)} in {escape(where)}, last {report.days} days"
    counted = (
        f"production environments ({escape(where)})"
        if report.production
        else f"{escape(where)} only (not production; ask without `env` for production)"
    )
    return title, [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Source: forgebot's deploy record (Slack deploys, rollbacks and "
                    f"`POST /api/deployments`), deploys started in the last {report.days} days, "
                    f"{counted}. Bands from the {BANDS_REPORT}. Medians are standard medians. "
                    "Lead time needs CI/CD to record commit times.",
                }
            ],
        },
    ]
