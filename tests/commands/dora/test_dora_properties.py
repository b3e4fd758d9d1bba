"""DORA's keys and bands against references computed here from the same deploy history.

Histories are generated (deploys and rollbacks, successes and failures, commit times or none,
production and staging), written to SQLite and PostgreSQL, and the SQL figures are compared
with a plain-Python reading of the definitions in commands/dora/metrics.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from commands.dora.metrics import (
    Band,
    failure_band,
    frequency_band,
    lead_time_band,
    restore_band,
)
from storage import deployments as repo
from storage.db import Database
from storage.models import DeployKind, DeploymentRecord, DeployOutcome

T0 = datetime(2026, 10, 1, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Event:
    env: str
    kind: DeployKind
    outcome: DeployOutcome
    started: datetime
    finished: datetime
    commit: datetime | None


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["prod", "staging"]),
        st.sampled_from([DeployKind.DEPLOY, DeployKind.DEPLOY, DeployKind.ROLLBACK]),
        st.sampled_from([DeployOutcome.SUCCEEDED, DeployOutcome.SUCCEEDED, DeployOutcome.FAILED]),
        st.integers(min_value=1, max_value=900),  # minutes after the previous event
        st.integers(min_value=1, max_value=120),  # rollout minutes
        st.one_of(st.none(), st.integers(min_value=0, max_value=20_000)),  # commit lead
    ),
    max_size=30,
)


def _history(raw: list[tuple[str, DeployKind, DeployOutcome, int, int, int | None]]) -> list[Event]:
    events, at = [], T0
    for env, kind, outcome, gap, lasted, lead in raw:
        at += timedelta(minutes=gap)
        events.append(
            Event(
                env,
                kind,
                outcome,
                at,
                at + timedelta(minutes=lasted),
                None if lead is None else at - timedelta(minutes=lead),
            )
        )
    return events


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)
    if n % 2 == 1:
        return ordered[n // 2]
    return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _reference(
    events: list[Event], env: str
) -> tuple[int, int, timedelta | None, timedelta | None]:
    lane = sorted((e for e in events if e.env == env), key=lambda e: e.started)
    deploys = failed = 0
    leads: list[timedelta] = []
    restores: list[timedelta] = []
    for i, event in enumerate(lane):
        if event.kind is not DeployKind.DEPLOY:
            continue
        deploys += 1
        rolled_back = i + 1 < len(lane) and lane[i + 1].kind is DeployKind.ROLLBACK
        is_failed = event.outcome is DeployOutcome.FAILED or rolled_back
        if event.outcome is DeployOutcome.SUCCEEDED and event.commit is not None:
            leads.append(event.finished - event.commit)
        if is_failed:
            failed += 1
            later = [e.finished for e in lane[i + 1 :] if e.outcome is DeployOutcome.SUCCEEDED]
            if later:
                restores.append(min(later) - event.finished)
    return deploys, failed, _median(leads), _median(restores)


@PROPERTY_SETTINGS
@given(raw=events_strategy)
def test_sql_keys_match_the_definitions(database: Database, raw: list[tuple]) -> None:  # type: ignore[type-arg]
    events = _history(raw)
    database.run_sync(lambda s: s.execute(delete(DeploymentRecord)))
    for e in events:
        record = DeploymentRecord(
            service="checkout",
            team="payments",
            environment=e.env,
            kind=e.kind,
            version="1.0.0",
            actor="U1",
            started_at=e.started,
            finished_at=e.finished,
            outcome=e.outcome,
            commit_time=e.commit,
        )
        database.run_sync(lambda s, r=record: repo.record_finished(s, r))
    until = T0 + timedelta(days=365)
    for env in ("prod", "staging"):
        figures = database.run_sync(lambda s, env=env: repo.dora(s, ["checkout"], T0, until, [env]))
        deploys, failed, lead, restore = _reference(events, env)
        assert (figures.deploys, figures.failed_changes) == (deploys, failed)
        assert figures.lead_time_median == lead
        assert figures.restore_median == restore


# --- bands, against the 2024 report's clusters written as integer comparisons ----------------


@settings(deadline=None)  # the machine may be busy; the figures, not the time, are tested
@given(
    deploys=st.integers(min_value=0, max_value=500), days=st.integers(min_value=1, max_value=366)
)
def test_frequency_band(deploys: int, days: int) -> None:
    if deploys == 0:
        expected = Band.UNKNOWN
    elif deploys >= days:  # at least once a day
        expected = Band.ELITE
    elif deploys * 7 >= days:  # at least once a week
        expected = Band.HIGH
    elif deploys * 30 >= days:  # at least once a month
        expected = Band.MEDIUM
    else:
        expected = Band.LOW
    assert frequency_band(deploys, float(days)) is expected


def test_frequency_band_examples_from_the_issue() -> None:
    assert frequency_band(26, 30) is Band.HIGH  # 26 prod deploys in 30 days: not daily
    assert frequency_band(3, 30) is Band.MEDIUM  # once per 10 days: weekly to monthly
    assert frequency_band(30, 30) is Band.ELITE
    assert frequency_band(1, 7) is Band.HIGH  # exactly once a week


@settings(deadline=None)  # the machine may be busy; the figures, not the time, are tested
@given(
    failed=st.integers(min_value=0, max_value=200), deploys=st.integers(min_value=0, max_value=200)
)
def test_failure_band(failed: int, deploys: int) -> None:
    failed = min(failed, deploys)
    if deploys == 0:
        expected = Band.UNKNOWN
    elif failed * 100 <= 5 * deploys:
        expected = Band.ELITE
    elif failed * 100 <= 20 * deploys:
        expected = Band.HIGH
    elif failed * 100 <= 40 * deploys:
        expected = Band.MEDIUM
    else:
        expected = Band.LOW
    assert failure_band(failed, deploys) is expected


@settings(deadline=None)  # the machine may be busy; the figures, not the time, are tested
@given(seconds=st.one_of(st.none(), st.integers(min_value=0, max_value=400 * 86400)))
def test_duration_bands(seconds: int | None) -> None:
    value = None if seconds is None else timedelta(seconds=seconds)
    hour, day, week, month = 3600, 86400, 7 * 86400, 30 * 86400
    if seconds is None:
        lead = restore = Band.UNKNOWN
    else:
        lead = (
            Band.ELITE
            if seconds < day
            else Band.HIGH
            if seconds <= week
            else Band.MEDIUM
            if seconds <= month
            else Band.LOW
        )
        restore = (
            Band.ELITE
            if seconds < hour
            else Band.HIGH
            if seconds < day
            else Band.MEDIUM
            if seconds < week
            else Band.LOW
        )
    assert lead_time_band(value) is lead
    assert restore_band(value) is restore
