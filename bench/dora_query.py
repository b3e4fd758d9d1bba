"""DORA over 100,000 recorded deploys, on SQLite and PostgreSQL.

Seeds 100,000 deploys and rollbacks across 50 services over a year (a fraction failed or rolled
back, most with commit times), then times the query behind `/forge dora` for one service and
for one team over 30 days and over 365 days.

    uv run python bench/dora_query.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from bench.provenance import print_header  # noqa: E402
from storage import deployments, migrate  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import DeploymentRecord  # noqa: E402

NOW = datetime(2026, 11, 24, tzinfo=UTC)
SERVICES = [f"svc-{i:02d}" for i in range(50)]


def seed(db: Database, total: int) -> None:
    rng = random.Random(7)
    rows = []
    for _ in range(total):
        service = rng.choice(SERVICES)
        started = NOW - timedelta(seconds=rng.uniform(0, 365 * 86400))
        rollback = rng.random() < 0.05
        failed = rng.random() < 0.05
        rows.append(
            {
                "service": service,
                "team": f"team-{SERVICES.index(service) // 5}",
                "environment": rng.choice(["staging", "prod"]),
                "kind": "rollback" if rollback else "deploy",
                "version": f"1.{rng.randint(0, 999)}.0",
                "previous_version": "",
                "actor": "U0BENCH",
                "source": "api",
                "started_at": started,
                "finished_at": started + timedelta(minutes=rng.uniform(1, 20)),
                "outcome": "failed" if failed else "succeeded",
                "failure_reason": "",
                "commit_sha": "abc",
                "commit_time": started - timedelta(hours=rng.uniform(0.2, 72))
                if rng.random() < 0.8
                else None,
                "message_channel": "",
                "message_ts": "",
                "hotfix": False,
                "in_flight_key": None,
            }
        )
    for start in range(0, len(rows), 5000):
        batch = rows[start : start + 5000]
        db.run_sync(lambda s, b=batch: s.execute(insert(DeploymentRecord), b))


def timed(
    db: Database, services: list[str], days: int, repeats: int = 15
) -> tuple[float, float, int]:
    samples = []
    figures = None
    for _ in range(repeats):
        started = time.perf_counter()
        figures = db.run_sync(
            lambda s: deployments.dora(s, services, NOW - timedelta(days=days), NOW)
        )
        samples.append((time.perf_counter() - started) * 1000)
    assert figures is not None
    return statistics.median(samples), max(samples), figures.deploys


def run(name: str, url: str, total: int) -> None:
    db = Database(url)
    migrate.upgrade(db.engine)
    started = time.perf_counter()
    seed(db, total)
    print(f"{name}: seeded {total:,} deploys in {time.perf_counter() - started:.1f} s")
    for label, services in (("one service", ["svc-07"]), ("one team (5 services)", SERVICES[5:10])):
        for days in (30, 365):
            median, worst, deploys = timed(db, services, days)
            print(
                f"  {label:>22}, {days:>3} days: median {median:6.1f} ms, max {worst:6.1f} ms ({deploys:,} deploys counted)"
            )
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=100_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print_header("dora_query")
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{tmp}/dora.db", args.deploys)
    name = f"forgebot_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        run("PostgreSQL", args.postgres.rsplit("/", 1)[0] + f"/{name}", args.deploys)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
