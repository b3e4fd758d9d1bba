"""Prometheus metrics for the bot itself, served on /metrics.

`deploy/grafana-dashboard.json` and `deploy/prometheus-rules.yaml` query these names; a test
keeps them in step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "forgebot_slack_requests_total",
    "Slack requests received, by kind and HTTP status",
    ["kind", "status"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "forgebot_ack_seconds",
    "Time from receiving a Slack request to sending its HTTP response",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5),
)
COMMANDS = Counter(
    "forgebot_commands_total",
    "Commands and interactions handled, by name and outcome",
    ["command", "outcome"],
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "forgebot_handler_seconds",
    "Time to finish a command or interaction, after the ack",
    ["command"],
    registry=REGISTRY,
)
SLACK_API_CALLS = Counter(
    "forgebot_slack_api_calls_total",
    "Slack Web API calls by method and outcome",
    ["method", "outcome"],
    registry=REGISTRY,
)
DEPENDENCY_SECONDS = Histogram(
    "forgebot_dependency_seconds",
    "Calls to Kubernetes, AWS and Prometheus",
    ["system", "operation", "outcome"],
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "forgebot_job_runs_total",
    "Scheduled job runs by job and outcome (not `job`: Prometheus' scrape sets that label)",
    ["scheduled_job", "outcome"],
    registry=REGISTRY,
)
SLACK_RETRIES = Counter(
    "forgebot_slack_api_retries_total",
    "Slack Web API calls retried, by method and reason (rate_limited = HTTP 429)",
    ["method", "reason"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "forgebot_handlers_in_flight",
    "Commands and interactions being handled (graceful shutdown waits for them)",
    registry=REGISTRY,
)
LEADER_CHANGES = Counter(
    "forgebot_scheduler_leader_changes_total",
    "Times this replica became (elected) or stopped being (deposed) the scheduler leader",
    ["change"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "forgebot_scheduler_leader", "1 when this replica runs the scheduler", registry=REGISTRY
)
READY = Gauge("forgebot_ready", "1 when the database is reachable", registry=REGISTRY)


@contextmanager
def observe_call(system: str, operation: str) -> Iterator[None]:
    """Time one call to an external system (kubernetes, aws, prometheus, ...) and count its
    outcome: "ok" or the exception's type name. `operation` must be low-cardinality (a verb or
    an API operation name, never an object name)."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        DEPENDENCY_SECONDS.labels(system, operation, outcome).observe(time.perf_counter() - started)
