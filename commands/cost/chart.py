"""The daily cost chart: bars per day, the month's running total and the budget line.

Drawn with matplotlib's Agg backend (no display) off the event loop; the first use imports
matplotlib, which takes a moment, and every later chart a few tens of milliseconds.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, time
from decimal import Decimal

from commands.cost.service import DailyCost


def render_png(
    title: str,
    daily: Sequence[DailyCost],
    *,
    currency: str,
    budget: Decimal | None,
    cumulative_from_start: bool = True,
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.figure import Figure  # a Figure needs no pyplot global state

    figure = Figure(figsize=(8, 3.6), dpi=100)
    axis = figure.add_subplot()
    days = [float(date2num(datetime.combine(d.day, time()))) for d in daily]  # type: ignore[no-untyped-call]
    amounts = [float(d.amount) for d in daily]
    axis.bar(days, amounts, color="#4a90d9", label="daily cost")
    axis.xaxis.set_major_formatter(DateFormatter("%b %d"))  # type: ignore[no-untyped-call]
    axis.set_ylabel(f"per day ({currency})")
    axis.set_title(title)
    axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    if cumulative_from_start:
        running = axis.twinx()
        total = 0.0
        cumulative = []
        for amount in amounts:
            total += amount
            cumulative.append(total)
        running.plot(days, cumulative, color="#2c3e50", label="running total")
        if budget is not None:
            running.axhline(float(budget), color="#d0021b", linestyle="--", label="monthly budget")
        running.set_ylabel(f"running total ({currency})")
        running.set_ylim(bottom=0)
        handles = axis.get_legend_handles_labels()[0] + running.get_legend_handles_labels()[0]
        running.legend(handles=handles, loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def warm() -> None:
    """Import matplotlib and draw once (about a second), so the first real chart is quick."""
    from datetime import date

    render_png("", [DailyCost(date(2026, 1, 1), Decimal(1))], currency="USD", budget=Decimal(2))
