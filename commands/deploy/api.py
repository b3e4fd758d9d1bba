"""`POST /api/deployments`: CI/CD pipelines record deploys made outside Slack.

Authenticated with `Authorization: Bearer <FORGEBOT_API_TOKEN>` (compared in constant time).
An `Idempotency-Key` header makes retries of the same report record it once.

    curl -X POST https://forgebot.example.com/api/deployments \\
      -H "Authorization: Bearer $FORGEBOT_API_TOKEN" -H "Idempotency-Key: $CI_PIPELINE_ID" \\
      -d '{"service": "checkout", "environment": "prod", "version": "1.4.2",
           "commit_sha": "9fceb02", "commit_time": "2026-11-24T09:12:00Z",
           "finished_at": "2026-11-24T10:02:00Z", "outcome": "succeeded"}'
"""

from __future__ import annotations

import hmac
from typing import Literal

from aiohttp import web
from core.routes import Handler
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import Session

from commands.deploy.parse import DIGEST, TAG
from core.catalog import Catalog
from core.clock import Clock
from storage import deployments as repo
from storage import idempotency
from storage.db import Database, DatabaseUnavailable
from storage.models import DeployKind, DeploymentRecord, DeployOutcome


class DeploymentReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str
    environment: str
    version: str
    kind: Literal["deploy", "rollback"] = "deploy"
    outcome: Literal["succeeded", "failed"] = "succeeded"
    commit_sha: str = Field(default="", max_length=64, pattern=r"^[0-9a-fA-F]*$")
    commit_time: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    actor: str = Field(default="ci", max_length=100)
    failure_reason: str = Field(default="", max_length=1000)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not (TAG.fullmatch(value) or DIGEST.fullmatch(value)):
            raise ValueError("not an image tag or sha256 digest")
        return value


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def deployments_route(catalog: Catalog, db: Database, clock: Clock, token: str | None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not token:
            return _error(503, "the API is disabled: set FORGEBOT_API_TOKEN")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "missing or wrong bearer token")
        try:
            report = DeploymentReport.model_validate_json(await request.read())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            return _error(422, problems)
        service = catalog.service(report.service)
        if service is None:
            return _error(422, f"unknown service {report.service}")
        if catalog.environment(report.environment) is None:
            return _error(422, f"unknown environment {report.environment}")
        now = clock.now()
        finished = report.finished_at or now
        record = DeploymentRecord(
            service=service.name,
            team=service.team,
            environment=report.environment,
            kind=DeployKind(report.kind),
            version=report.version,
            actor=report.actor,
            source="api",
            started_at=report.started_at or finished,
            finished_at=finished,
            outcome=DeployOutcome(report.outcome),
            failure_reason=report.failure_reason,
            commit_sha=report.commit_sha,
            commit_time=report.commit_time,
        )
        key = request.headers.get("Idempotency-Key", "").strip()[:200]

        def store(session: Session) -> int | None:
            if key and not idempotency.claim(session, f"api:deployments:{key}", now):
                return None
            return repo.record_finished(session, record).id

        try:
            stored = await db.run(store)
        except DatabaseUnavailable:
            return _error(503, "database unavailable; retry with the same Idempotency-Key")
        if stored is None:
            return web.json_response({"status": "duplicate", "idempotency_key": key}, status=200)
        return web.json_response({"id": stored, "status": "recorded"}, status=201)

    return handle
