"""Assembles and runs one forgebot process: database, Slack clients, context, app, server, jobs.

`forgebot serve`, the terminal shell, the demo and the tests all start the bot through
`Runtime`, so what is tested is what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot import app as bolt_app
from bot.composition import build_context
from bot.context import AppContext
from bot.leader import Leadership, build_elector
from bot.server import ServingState, build_web_app, listen
from core import metrics
from core.ack_priority import PENDING_ACKS
from core.catalog import Catalog
from core.clock import Clock, SystemClock
from core.config import Settings
from core.logs import register_secret
from core.scheduler import Scheduler
from integrations.aws.cost_explorer import CostExplorerGateway, CostSource
from integrations.aws.session import AwsClients, AwsConfig
from integrations.kubernetes.gateway import KubeGateway
from integrations.slack.web import SlackOutbox, build_web_client
from storage import migrate
from storage.db import Database, DatabaseUnavailable

log = logging.getLogger(__name__)


class StartupError(Exception):
    """forgebot cannot start; the message says what to fix."""


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    clock: Clock = field(default_factory=SystemClock)
    run_scheduler: bool = True
    cost_source: CostSource | None = None
    """Cost Explorer by default (standard credential chain); the demo and benches pass moto's."""
    db: Database | None = None
    ctx: AppContext | None = None
    bolt: AsyncApp | None = None
    scheduler: Scheduler | None = None
    url: str = ""
    leadership: Leadership | None = None
    _job_grace: float = 0.0
    """Seconds a running job may finish when this replica steps down (only when stopping)."""
    _state: ServingState | None = None
    _runner: web.AppRunner | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    async def prepare(self) -> AppContext:
        """Everything but the listening socket: usable by Socket Mode and the tests."""
        settings = self.settings
        for secret in (
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.api_token,
            settings.prometheus_token,
            settings.prometheus_password,
            settings.alertmanager_token,
            settings.github_webhook_secret,
            settings.gitlab_webhook_token,
            settings.github_token,
            settings.gitlab_token,
        ):
            register_secret(secret.get_secret_value() if secret else None)
        db = Database(settings.database_url)
        self.db = db
        try:
            if settings.is_embedded_sqlite:
                # Alembic is imported only when the schema is behind (a new database, a new
                # release); a restart of an up-to-date bot checks one row.
                await asyncio.to_thread(migrate.upgrade_if_behind, db.engine)
            else:
                await asyncio.to_thread(migrate.require_current, db.engine)
        except migrate.UnmigratedDatabase as exc:
            raise StartupError(str(exc)) from None
        except Exception as exc:
            raise StartupError(f"cannot use the database: {exc}") from None
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        client = build_web_client(token, base_url=settings.slack_api_url)
        kube = KubeGateway(
            self.catalog.clusters(),
            kubeconfig=settings.kubeconfig,
            concurrency=settings.kube_concurrency,
        )
        ctx = build_context(
            settings,
            self.catalog,
            self.clock,
            db,
            client,
            SlackOutbox(
                client,
                observe=lambda method, outcome: metrics.SLACK_API_CALLS.labels(
                    method, outcome
                ).inc(),
            ),
            kube,
        )
        ctx.cost_source = self.cost_source or CostExplorerGateway(
            AwsClients(AwsConfig.from_settings(settings)), self.clock
        )
        self.ctx = ctx
        self.scheduler = Scheduler(db, self.clock, replica=settings.replica or socket.gethostname())
        ctx.scheduler = self.scheduler
        self.bolt = bolt_app.build_bolt_app(ctx)
        return ctx

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen, then prepare and attach: what `forgebot serve` does, in one call."""
        state = ServingState()
        listener = await listen(build_web_app(state, self.clock), host, port)
        self._runner, self.url = listener.runner, listener.url
        try:
            await self.attach(state)
        except BaseException:
            await self.stop()
            raise
        return self.url

    async def attach(self, state: ServingState) -> None:
        """Make an already listening server ready: HTTP mode needs the signing secret."""
        ctx = self.ctx or await self.prepare()
        assert self.bolt is not None and self.db is not None
        secret = ctx.settings.slack_signing_secret
        if secret is None:
            raise StartupError("SLACK_SIGNING_SECRET is not set (HTTP mode needs it)")
        await self.start_background()
        # Everything loaded so far lives as long as the process; freezing it keeps the cyclic
        # GC from rescanning hundreds of thousands of import-time objects mid-request.
        gc.collect()
        gc.freeze()
        self._state = state
        state.attach(self.bolt, self.db, secret.get_secret_value(), ctx.routes)
        self.start_warmups()

    async def start_background(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        groups = ctx.auth.usergroups()
        if groups:
            self._background.append(asyncio.create_task(ctx.auth.groups.refresh_forever(groups)))
        try:
            resumed = await ctx.operations.recover()
        except DatabaseUnavailable as exc:
            resumed = 0
            log.warning("start-up recovery skipped, database unavailable (%s)", exc)
        if resumed:
            log.info("resumed %d unfinished operations", resumed)
        # Heartbeat of the leases held here and recovery, in every process (see bot.operations).
        ctx.operations.start_maintenance()
        if self.run_scheduler and self.scheduler is not None and self.scheduler.jobs:
            await self.start_leadership()

    def start_warmups(self) -> None:
        """Once ready: load the Kubernetes and AWS clients (their first use is slow), one at a
        time, each after the Slack requests that are waiting for an ack."""
        ctx = self.ctx
        assert ctx is not None

        async def warm_up() -> None:
            await PENDING_ACKS.yield_to_acks()
            await ctx.kube.warm()
            if isinstance(ctx.cost_source, CostExplorerGateway):
                await PENDING_ACKS.yield_to_acks()
                await ctx.cost_source.warm()

        self._background.append(asyncio.create_task(warm_up()))

    async def start_leadership(self) -> None:
        """Elect the scheduler leader among the replicas (see `bot.leader`); every replica
        serves HTTP, only the leader fires scheduled jobs."""
        ctx, scheduler = self.ctx, self.scheduler
        assert ctx is not None and scheduler is not None
        try:
            elector = build_elector(
                ctx.settings,
                scheduler.replica,
                in_cluster=bool(os.environ.get("KUBERNETES_SERVICE_HOST")),
            )
        except ValueError as exc:
            raise StartupError(str(exc)) from None

        async def elected() -> None:
            ran = await scheduler.take_over()
            if ran:
                log.info("ran %d scheduled job(s) a previous leader missed or left", ran)
            # Capabilities' work on becoming leader (off-hours reconciles at once after downtime).
            for hook in ctx.startup_hooks:
                self._background.append(asyncio.create_task(hook()))

        async def deposed() -> None:
            await scheduler.step_down(grace=self._job_grace)

        self.leadership = Leadership(
            elector,
            on_elected=elected,
            on_deposed=deposed,
            lease_seconds=ctx.settings.lease_seconds,
        )
        # The first round runs before the replica reports ready, so a lone replica (SQLite)
        # is the leader from its first request on.
        await self.leadership.step()
        self.leadership.start()

    async def stop(self, drain_seconds: float | None = None) -> None:
        """Graceful shutdown (SIGTERM), each step bounded by one budget:

        not ready -> stop accepting and finish the HTTP requests in flight (acks) -> finish
        the handlers still working after their ack and running operations -> step down as
        scheduler leader (release the lease or lock) -> drain the Slack outbox -> close the
        clients and the database pool."""
        budget = self.settings.shutdown_seconds if drain_seconds is None else drain_seconds
        deadline = time.monotonic() + budget

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        if self._state is not None:
            self._state.draining = True
        if self._runner is not None:
            # Closes the listening socket, then waits (bounded) for requests in flight.
            self._runner._shutdown_timeout = min(left(), 10.0)
            await self._runner.cleanup()
            self._runner = None
        if self.ctx is not None:
            if not await self.ctx.boundary.drain(left()):
                log.warning("shutdown: handlers still running after the grace period")
            if not await self.ctx.operations.drain(left()):
                log.warning("shutdown: handing unfinished operations to the other replicas")
            await self.ctx.operations.stop_maintenance()
            await self.ctx.operations.release()
        if self.leadership is not None:
            self._job_grace = left()
            await self.leadership.stop()
        elif self.scheduler is not None:
            await asyncio.to_thread(self.scheduler.shutdown)
        if self.ctx is not None:
            await self.ctx.audit.flush(max(left(), 1.0))
            await self.ctx.slack.close(timeout=max(left(), 1.0))
            await self.ctx.kube.close()
            if self.ctx.prometheus is not None:
                await self.ctx.prometheus.close()
            for host in self.ctx.codehosts.values():
                await host.close()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.db is not None:
            await asyncio.to_thread(self.db.close)
