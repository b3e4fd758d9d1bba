"""Deploy record, one rollout at a time, freezes and DORA figures on SQLite and PostgreSQL.

Expected DORA values are computed by hand from the scenario, not by the code under test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import deployments as repo
from storage.db import Database
from storage.models import DeployKind, DeploymentRecord, DeployOutcome, Freeze

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _deploy(
    minutes: float,
    *,
    kind: DeployKind = DeployKind.DEPLOY,
    outcome: DeployOutcome = DeployOutcome.SUCCEEDED,
    lasted: float = 5,
    commit_minutes_before: float | None = None,
    service: str = "checkout",
    env: str = "prod",
) -> DeploymentRecord:
    started = T0 + timedelta(minutes=minutes)
    return DeploymentRecord(
        service=service,
        team="payments",
        environment=env,
        kind=kind,
        version=f"1.0.{int(minutes)}",
        actor="U1",
        started_at=started,
        finished_at=started + timedelta(minutes=lasted),
        outcome=outcome,
        commit_time=started - timedelta(minutes=commit_minutes_before)
        if commit_minutes_before is not None
        else None,
    )


def test_one_rollout_per_service_and_environment(database: Database) -> None:
    first = database.run_sync(
        lambda s: repo.start(s, _deploy(0, outcome=DeployOutcome.IN_PROGRESS))
    )
    with pytest.raises(repo.RolloutInProgress) as info:
        database.run_sync(lambda s: repo.start(s, _deploy(1, outcome=DeployOutcome.IN_PROGRESS)))
    assert info.value.existing is not None and info.value.existing.id == first.id
    # Another environment is independent.
    database.run_sync(
        lambda s: repo.start(s, _deploy(1, env="staging", outcome=DeployOutcome.IN_PROGRESS))
    )
    assert first.id is not None
    done = database.run_sync(
        lambda s: repo.finish(s, first.id, outcome=DeployOutcome.SUCCEEDED, now=T0)
    )  # type: ignore[arg-type]
    assert done
    again = database.run_sync(
        lambda s: repo.finish(s, first.id, outcome=DeployOutcome.FAILED, now=T0)
    )  # type: ignore[arg-type]
    assert not again, "a finished rollout cannot be finished twice"
    database.run_sync(lambda s: repo.start(s, _deploy(2, outcome=DeployOutcome.IN_PROGRESS)))


def test_freezes(database: Database) -> None:
    now = T0
    database.run_sync(
        lambda s: repo.add_freeze(
            s,
            Freeze(
                environment="prod",
                reason="incident",
                created_by="U1",
                created_at=now,
                ends_at=now + timedelta(hours=2),
            ),
        )
    )
    assert (
        database.run_sync(lambda s: repo.active_freeze(s, "prod", now + timedelta(hours=1)))
        is not None
    )
    assert (
        database.run_sync(lambda s: repo.active_freeze(s, "prod", now + timedelta(hours=3))) is None
    )
    assert database.run_sync(lambda s: repo.active_freeze(s, "staging", now)) is None
    assert database.run_sync(lambda s: repo.lift_freezes(s, "prod", now, "U2")) == 1
    assert database.run_sync(lambda s: repo.active_freeze(s, "prod", now)) is None


def test_dora_figures(database: Database) -> None:
    rows = [
        _deploy(0, commit_minutes_before=60),  # ok, lead 65 min
        _deploy(100, commit_minutes_before=120),  # rolled back below
        _deploy(110, kind=DeployKind.ROLLBACK, lasted=2),  # restores at 112
        _deploy(200, outcome=DeployOutcome.FAILED, lasted=10),  # failed at 210
        _deploy(240, commit_minutes_before=30),  # restores at 245, lead 35
        _deploy(300, commit_minutes_before=600),  # ok, lead 605
        _deploy(400, service="ledger"),  # other service
        _deploy(500, outcome=DeployOutcome.IN_PROGRESS),  # not finished
    ]
    rows[-1].finished_at = None
    for row in rows:
        database.run_sync(lambda s, r=row: repo.record_finished(s, r))
    figures = database.run_sync(lambda s: repo.dora(s, ["checkout"], T0, T0 + timedelta(days=30)))
    assert figures.deploys == 5  # deploys of checkout that finished; the rollback is not a deploy
    assert figures.failed_changes == 2  # the rolled-back one and the failed one
    # Lead times of successful deploys with a commit time: 65, 125, 35, 605 minutes -> the
    # median of an even count is the mean of the two middle ones: (65 + 125) / 2 = 95.
    assert figures.lead_time_samples == 4
    assert figures.lead_time_median == timedelta(minutes=95)
    # Restores: rolled back at 105 -> 112 (7 min); failed at 210 -> 245 (35 min) -> median 21.
    assert figures.restore_samples == 2
    assert figures.restore_median == timedelta(minutes=21)
    assert figures.days == pytest.approx(30)
