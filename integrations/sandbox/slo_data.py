"""Synthetic request metrics with a story per service, for the tests, the bench and the demo.

Each story is deterministic integer counters (so a test can recompute every figure exactly):
`http_requests_total{service,code="200"|"500"}` and the histogram
`http_request_duration_seconds_{bucket,count}{service[,le]}` with one bound at 0.3 s. Samples
are one minute apart over the last `fine` span and `coarse` apart before it, which keeps a 35-day
history small while short windows (5m) still hold several samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

LATENCY_BOUND = "0.3"


@dataclass(frozen=True)
class Incident:
    """From `start` to `end` before the end of the data, this share of requests fails."""

    start: timedelta
    end: timedelta
    error_ratio: float
    slow_ratio: float = 0.0


@dataclass(frozen=True)
class Story:
    service: str
    requests_per_minute: int
    error_ratio: float = 0.0
    slow_ratio: float = 0.0
    incidents: tuple[Incident, ...] = ()
    emitted: bool = True
    """False: the service has no series at all (a new service)."""


@dataclass
class Counters:
    """Cumulative counters of one service at each sample time."""

    times: list[datetime] = field(default_factory=list)
    ok: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    fast: list[int] = field(default_factory=list)

    def total(self, i: int) -> int:
        return self.ok[i] + self.errors[i]

    def delta(self, since: datetime, until: datetime) -> tuple[int, int, int]:
        """(errors, slow, total) between the first and the last sample in (since, until]:
        what `increase()` sees, before its extrapolation (which cancels out in a ratio)."""
        inside = [i for i, t in enumerate(self.times) if since < t <= until]
        if len(inside) < 2:
            return 0, 0, 0
        a, b = inside[0], inside[-1]
        total = self.total(b) - self.total(a)
        return self.errors[b] - self.errors[a], total - (self.fast[b] - self.fast[a]), total


def sample_times(
    end: datetime, history: timedelta, fine: timedelta, coarse: timedelta
) -> list[datetime]:
    times: list[datetime] = []
    t = end - history
    while t < end - fine:
        times.append(t)
        t += coarse
    t = end - fine
    while t <= end:
        times.append(t)
        t += timedelta(minutes=1)
    return times


def generate(
    stories: list[Story],
    end: datetime,
    *,
    history: timedelta = timedelta(days=35),
    fine: timedelta = timedelta(days=4),
    coarse: timedelta = timedelta(minutes=15),
) -> dict[str, Counters]:
    times = sample_times(end, history, fine, coarse)
    out: dict[str, Counters] = {}
    for story in stories:
        counters = Counters()
        ok = errors = fast = 0
        previous = times[0]
        for t in times:
            minutes = int((t - previous).total_seconds() // 60)
            previous = t
            ago = end - t
            error_ratio, slow_ratio = story.error_ratio, story.slow_ratio
            for incident in story.incidents:
                if incident.end <= ago < incident.start:
                    error_ratio, slow_ratio = incident.error_ratio, incident.slow_ratio
            requests = story.requests_per_minute * minutes
            failed = round(requests * error_ratio)
            slow = round(requests * slow_ratio)
            ok += requests - failed
            errors += failed
            fast += requests - slow
            counters.times.append(t)
            counters.ok.append(ok)
            counters.errors.append(errors)
            counters.fast.append(fast)
        out[story.service] = counters
    return out


def openmetrics(stories: list[Story], data: dict[str, Counters]) -> Iterator[str]:
    """The OpenMetrics text `promtool tsdb create-blocks-from openmetrics` reads."""
    emitted = [s for s in stories if s.emitted]
    yield "# TYPE http_requests counter\n"
    for story in emitted:
        c = data[story.service]
        for code, values in (("200", c.ok), ("500", c.errors)):
            labels = f'code="{code}",service="{story.service}"'
            for t, v in zip(c.times, values, strict=True):
                yield f"http_requests_total{{{labels}}} {v} {int(t.timestamp())}\n"
    yield "# TYPE http_request_duration_seconds histogram\n"
    for story in emitted:
        c = data[story.service]
        name = f'service="{story.service}"'
        for t, fast in zip(c.times, c.fast, strict=True):
            yield (
                f'http_request_duration_seconds_bucket{{le="{LATENCY_BOUND}",{name}}} '
                f"{fast} {int(t.timestamp())}\n"
            )
        for t, ok, errors in zip(c.times, c.ok, c.errors, strict=True):
            yield (
                f'http_request_duration_seconds_bucket{{le="+Inf",{name}}} '
                f"{ok + errors} {int(t.timestamp())}\n"
            )
        for t, ok, errors in zip(c.times, c.ok, c.errors, strict=True):
            yield f"http_request_duration_seconds_count{{{name}}} {ok + errors} {int(t.timestamp())}\n"
    yield "# EOF\n"


def fixture_stories() -> list[Story]:
    """The five services the tests and the demo tell stories about."""
    return [
        Story("healthy", 600, error_ratio=0.0002, slow_ratio=0.001),
        Story(
            "burned",
            600,
            error_ratio=0.0001,
            incidents=(Incident(timedelta(days=8), timedelta(days=7, hours=12), 0.1, 0.1),),
        ),
        Story(
            "burning",
            600,
            error_ratio=0.0005,
            incidents=(Incident(timedelta(minutes=90), timedelta(0), 0.05, 0.2),),
        ),
        Story(
            "recovered",
            600,
            incidents=(Incident(timedelta(hours=4, minutes=20), timedelta(hours=3), 0.02),),
        ),
        Story("idle", 0),
        Story("newborn", 0, emitted=False),
    ]


def demo_stories(shift: timedelta = timedelta(0)) -> list[Story]:
    """The example catalog's services: checkout is burning now (it pages), ledger overspent its
    budget last week (its prod deploys meet the budget gate). `shift` moves "now" back from the
    end of the data, for data that runs on past the present."""
    return [
        Story(
            "checkout",
            900,
            error_ratio=0.0003,
            slow_ratio=0.002,
            incidents=(
                Incident(timedelta(minutes=50) + shift, shift - timedelta(hours=1), 0.03, 0.05),
            ),
        ),
        Story(
            "ledger",
            300,
            error_ratio=0.0001,
            slow_ratio=0.001,
            incidents=(
                Incident(timedelta(days=6) + shift, timedelta(days=5, hours=20) + shift, 0.2, 0.3),
            ),
        ),
    ]


def slo_definitions(service: str, *, bad_ratio: bool = False) -> list[dict[str, object]]:
    """Catalog `slos:` for a service these stories describe: availability and latency."""
    availability: dict[str, object] = {
        "name": "availability",
        "objective": 99.9,
        "ratio": (
            {
                "bad": f'http_requests_total{{service="{service}",code=~"5.."}}',
                "total": f'http_requests_total{{service="{service}"}}',
            }
            if bad_ratio
            else {
                "good": f'http_requests_total{{service="{service}",code!~"5.."}}',
                "total": f'http_requests_total{{service="{service}"}}',
            }
        ),
    }
    latency: dict[str, object] = {
        "name": "latency",
        "objective": 99.0,
        "latency": {
            "metric": "http_request_duration_seconds",
            "selector": f'service="{service}"',
            "threshold": LATENCY_BOUND,
        },
    }
    return [availability, latency]
