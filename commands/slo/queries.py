"""PromQL for SLIs, batched: one query per window for many SLOs, no recording rules needed.

Every SLI is a pair of counters over a window: bad (or good) events and all events, each
`sum(increase(...[w]))`, so each part is one number. An expression written with `$window` is
used as written and must give one number too: one that returns several series is refused
for that SLO, with a sentence saying to aggregate it (`sum(...)`), never cut to one of them
(`forgebot config check` reports it against Prometheus before it reaches a person). Many SLOs' pairs go into one query, each part tagged by
`label_replace` with a `forgebot_q="<index>:<part>"` label and joined with `or`, so a team's
report costs one query per window (per chunk of SLOs) instead of one per SLO and window. If
Prometheus refuses a batch (one SLO's PromQL is broken), its SLOs are asked one by one, so
only the broken SLO reports the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.catalog import Slo
from integrations.prometheus import PrometheusGateway, PromQLError

TAG = "forgebot_q"
CHUNK = 20
"""SLOs per batched query: small enough for Prometheus to evaluate a chunk quickly, large
enough that a team of 20 services costs a handful of queries per window."""


@dataclass(frozen=True)
class SloRef:
    service: str
    slo: Slo

    @property
    def key(self) -> str:
        return f"{self.service}/{self.slo.name}"


@dataclass(frozen=True)
class Counts:
    """Events in one window. `total` None: no series at all; 0: series but no traffic."""

    bad: float | None
    total: float | None
    problem: str = ""


def promql_duration(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _increase(expr: str, window: timedelta) -> str:
    if "$window" in expr:
        return expr.replace("$window", promql_duration(window))
    return f"sum(increase({expr}[{promql_duration(window)}]))"


def parts(slo: Slo, window: timedelta) -> dict[str, str]:
    """`bad` or `good`, and `total`, as PromQL giving one sample each."""
    if slo.ratio is not None:
        numerator = "good" if slo.ratio.good is not None else "bad"
        expr = slo.ratio.good if slo.ratio.good is not None else slo.ratio.bad
        assert expr is not None
        return {numerator: _increase(expr, window), "total": _increase(slo.ratio.total, window)}
    latency = slo.latency
    assert latency is not None
    sep = "," if latency.selector else ""
    bucket = f'{latency.metric}_bucket{{{latency.selector}{sep}le="{latency.threshold}"}}'
    count = f"{latency.metric}_count{{{latency.selector}}}"
    return {"good": _increase(bucket, window), "total": _increase(count, window)}


def bad_events(slo: Slo, window: timedelta) -> str:
    """One expression for the bad events (for the daily trend)."""
    p = parts(slo, window)
    if "bad" in p:
        return p["bad"]
    return f"({p['total']}) - (({p['good']}) or vector(0))"


def _tagged(expr: str, tag: str) -> str:
    return f'label_replace({expr}, "{TAG}", "{tag}", "", "")'


def several_series(part: str, count: int) -> str:
    return (
        f"the `{part}` query returns {count} series where an SLI needs one number: "
        f"aggregate it, e.g. `sum(...)` around the expression"
    )


def _counts(slo: Slo, values: dict[str, float], series: dict[str, int]) -> Counts:
    for part, count in sorted(series.items()):
        if count > 1:
            return Counts(None, None, several_series(part, count))
    total = values.get("total")
    if total is None:
        return Counts(None, None)
    if "bad" in values or (slo.ratio is not None and slo.ratio.bad is not None):
        # No bad series at all (no 5xx ever) means no bad events.
        return Counts(values.get("bad", 0.0), total)
    good = values.get("good")
    if good is None:
        if total <= 0:
            return Counts(0.0, total)
        # Treating a good selector that matches nothing as "all bad" would page people and
        # block deploys over a typo; it is a configuration problem, shown as such.
        if slo.latency is not None:
            return Counts(
                None,
                None,
                f'the histogram has no bucket le="{slo.latency.threshold}" '
                "(the threshold must be one of its bucket bounds)",
            )
        return Counts(None, None, "the `good` query matches no series while `total` does")
    return Counts(max(total - good, 0.0), total)


async def window_counts(
    prometheus: PrometheusGateway, refs: Sequence[SloRef], window: timedelta, at: datetime
) -> list[Counts | PromQLError]:
    """Counts for each ref over `window` ending at `at`, in order."""
    chunks = [list(refs[i : i + CHUNK]) for i in range(0, len(refs), CHUNK)]
    results = await asyncio.gather(*(_chunk(prometheus, c, window, at) for c in chunks))
    return [counts for chunk in results for counts in chunk]


async def _chunk(
    prometheus: PrometheusGateway, refs: list[SloRef], window: timedelta, at: datetime
) -> list[Counts | PromQLError]:
    query = " or ".join(
        _tagged(expr, f"{i}:{part}")
        for i, ref in enumerate(refs)
        for part, expr in parts(ref.slo, window).items()
    )
    try:
        samples = await prometheus.instant(query, at)
    except PromQLError:
        if len(refs) == 1:
            raise
        singles = await asyncio.gather(*(_single(prometheus, ref, window, at) for ref in refs))
        return list(singles)
    values: list[dict[str, float]] = [{} for _ in refs]
    series: list[dict[str, int]] = [{} for _ in refs]
    for sample in samples:
        index, _, part = sample.labels.get(TAG, "").partition(":")
        if index.isdigit() and int(index) < len(refs):
            counted = series[int(index)]
            counted[part] = counted.get(part, 0) + 1
            if sample.value == sample.value:
                values[int(index)][part] = sample.value
    return [_counts(ref.slo, v, n) for ref, v, n in zip(refs, values, series, strict=True)]


async def _single(
    prometheus: PrometheusGateway, ref: SloRef, window: timedelta, at: datetime
) -> Counts | PromQLError:
    try:
        (counts,) = await _chunk(prometheus, [ref], window, at)
    except PromQLError as exc:
        return exc
    return counts


async def daily_bad(
    prometheus: PrometheusGateway, refs: Sequence[SloRef], window: timedelta, at: datetime
) -> list[list[float | None]]:
    """Bad events per day over the window (oldest first), per ref; None where no data."""
    chunks = [list(refs[i : i + CHUNK]) for i in range(0, len(refs), CHUNK)]
    results = await asyncio.gather(*(_daily_chunk(prometheus, c, window, at) for c in chunks))
    return [days for chunk in results for days in chunk]


async def _daily_chunk(
    prometheus: PrometheusGateway, refs: list[SloRef], window: timedelta, at: datetime
) -> list[list[float | None]]:
    days = max(1, round(window / timedelta(days=1)))
    start = at - timedelta(days=days - 1)
    query = " or ".join(
        _tagged(bad_events(ref.slo, timedelta(days=1)), str(j)) for j, ref in enumerate(refs)
    )
    try:
        series = await prometheus.range(query, start, at, timedelta(days=1))
    except PromQLError:
        if len(refs) == 1:
            return [[None] * days]  # the window query reports the broken SLO itself
        singles = await asyncio.gather(
            *(_daily_chunk(prometheus, [ref], window, at) for ref in refs)
        )
        return [days_of[0] for days_of in singles]
    by_index: dict[int, dict[int, float]] = {}
    for s in series:
        tag = s.labels.get(TAG, "")
        if tag.isdigit():
            by_index[int(tag)] = {
                round((t - start) / timedelta(days=1)): v for t, v in s.points if v == v
            }
    return [[by_index.get(j, {}).get(d) for d in range(days)] for j in range(len(refs))]
