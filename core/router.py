"""`/forge <subcommand>` and its short aliases, and the one error boundary every listener uses.

`/env request` is `/forge env request`, `/deploy ...` is `/forge deploy ...`: an alias is the
subcommand's own name as a slash command. Every listener goes through `Boundary`, which acks
if the handler did not, turns errors into friendly ephemeral replies (never a stack trace),
audits the outcome, counts it in metrics and tags logs with a request id.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from core import metrics
from core.ack_priority import PENDING_ACKS
from core.audit import AuditLog, AuditRecord
from core.auth import Actor
from core.block_limits import escape
from core.errors import DependencyUnavailable, ForgebotError, NotAuthorized, UserInputError
from core.logs import request_id
from storage.db import DatabaseUnavailable
from storage.models import AuditOutcome

log = logging.getLogger(__name__)

ALIASES = ("env", "deploy", "rollback", "slo", "cost")
TOP_COMMAND = "/forge"


@dataclass(frozen=True)
class Invocation:
    """A slash command as the bot sees it: `/forge <subcommand> <args>`."""

    subcommand: str
    args: str
    actor: Actor
    channel_id: str
    response_url: str
    trigger_id: str
    command: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Invocation:
        command = str(body.get("command", TOP_COMMAND))
        text = " ".join(str(body.get("text", "")).split())
        if command == TOP_COMMAND:
            subcommand, _, args = text.partition(" ")
        else:
            subcommand, args = command.lstrip("/"), text
        return cls(
            subcommand=subcommand.lower(),
            args=args.strip(),
            actor=Actor(
                user_id=str(body.get("user_id", "")),
                slack_team_id=str(body.get("team_id", "")),
                enterprise_id=str(body.get("enterprise_id") or ""),
            ),
            channel_id=str(body.get("channel_id", "")),
            response_url=str(body.get("response_url", "")),
            trigger_id=str(body.get("trigger_id", "")),
            command=command,
        )


class Ack:
    """Bolt's ack, remembering whether it was called (errors after the ack go via respond)."""

    def __init__(self, ack: AsyncAck) -> None:
        self._ack = ack
        self.done = False

    async def __call__(self, text: str | None = None, **kwargs: Any) -> None:
        if self.done:
            return
        self.done = True
        if text is not None:
            kwargs["text"] = text
        await self._ack(**kwargs)
        # This listener's slow work waits while Slack requests (its own included) await their
        # ack: in a burst, acks first (core/ack_priority.py; bench/deploy_throughput.py).
        await PENDING_ACKS.yield_to_acks()


CommandHandler = Callable[[Invocation, Ack, AsyncRespond], Awaitable[None]]


@dataclass(frozen=True)
class Subcommand:
    name: str
    summary: str
    usage: list[str]
    handler: CommandHandler
    examples: list[str] = field(default_factory=list)

    def usage_text(self) -> str:
        return "\n".join(f"`{TOP_COMMAND} {line}`" for line in self.usage)


def usage_lines(usage: str) -> list[str]:
    """A capability's usage text (lines like "`/forge env list`") as `Subcommand.usage`."""
    return [line.removeprefix(f"`{TOP_COMMAND} ").removesuffix("`") for line in usage.splitlines()]


def ephemeral(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"response_type": "ephemeral", "text": text}
    if blocks:
        body["blocks"] = blocks
    return body


class Boundary:
    """Wraps every listener: ack, audit, metrics, request ids and friendly errors."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self.in_flight: set[asyncio.Task[Any]] = set()

    async def drain(self, timeout: float) -> bool:
        """Wait for handlers still working after their ack (graceful shutdown); True if all
        finished within `timeout` seconds."""
        running = {t for t in self.in_flight if t is not asyncio.current_task()}
        if not running:
            return True
        _, pending = await asyncio.wait(running, timeout=timeout) if timeout > 0 else ((), running)
        return not pending

    @property
    def busy(self) -> bool:
        """Some handler other than the caller is still working after its ack."""
        return any(t is not asyncio.current_task() for t in self.in_flight)

    async def wait_idle(self) -> None:
        """Wait until no handler (other than the caller) is working (tests, the demo)."""
        while running := {t for t in self.in_flight if t is not asyncio.current_task()}:
            await asyncio.gather(*running, return_exceptions=True)

    async def run(
        self,
        name: str,
        actor: Actor,
        channel_id: str,
        arguments: dict[str, Any],
        ack: Ack,
        reply: Callable[[dict[str, Any]], Awaitable[Any]] | None,
        work: Callable[[], Awaitable[None]],
        *,
        audit: bool = True,
    ) -> None:
        token = request_id.set(uuid.uuid4().hex[:12])
        started = time.perf_counter()
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        metrics.IN_FLIGHT.inc()
        outcome, error = AuditOutcome.OK, ""
        try:
            await work()
        except UserInputError as exc:
            outcome, error = AuditOutcome.INVALID, str(exc)
            text = f":warning: {exc}"
            if exc.usage:
                text += f"\n*Usage:*\n{exc.usage}"
            await self._tell(ack, reply, text)
        except NotAuthorized as exc:
            outcome, error = AuditOutcome.DENIED, str(exc)
            await self._tell(ack, reply, f":no_entry: {exc}")
        except (DependencyUnavailable, DatabaseUnavailable) as exc:
            outcome, error = AuditOutcome.ERROR, str(exc)
            what = "the database" if isinstance(exc, DatabaseUnavailable) else str(exc)
            log.warning("%s unavailable: %s", name, exc)
            await self._tell(
                ack,
                reply,
                f":hourglass: forgebot is temporarily unavailable ({what}). Try again in a minute."
                if isinstance(exc, DatabaseUnavailable)
                else f":hourglass: {exc}. Try again in a minute."
                if exc.retryable
                else f":information_source: {exc}.",
            )
        except ForgebotError as exc:
            outcome, error = AuditOutcome.ERROR, str(exc)
            await self._tell(ack, reply, f":x: {exc}")
        except Exception as exc:
            outcome, error = AuditOutcome.ERROR, f"{type(exc).__name__}: {exc}"
            reference = request_id.get()
            log.exception("%s failed", name)
            await self._tell(
                ack,
                reply,
                f":x: Something went wrong on our side. Reference `{reference}` "
                "for the platform team.",
            )
        finally:
            if not ack.done:
                await ack()
            metrics.COMMANDS.labels(name, outcome.value).inc()
            metrics.HANDLER_SECONDS.labels(name).observe(time.perf_counter() - started)
            if audit:
                await self.audit.record(
                    AuditRecord(
                        actor_user_id=actor.user_id,
                        actor_slack_team_id=actor.slack_team_id,
                        channel_id=channel_id,
                        command=name,
                        outcome=outcome,
                        arguments=arguments,
                        error=error,
                    )
                )
            request_id.reset(token)
            metrics.IN_FLIGHT.dec()
            if task is not None:
                self.in_flight.discard(task)

    @staticmethod
    async def _tell(
        ack: Ack, reply: Callable[[dict[str, Any]], Awaitable[Any]] | None, text: str
    ) -> None:
        if not ack.done:
            await ack(text=text, response_type="ephemeral")
        elif reply is not None:
            try:
                await reply(ephemeral(text))
            except Exception:
                log.warning("could not deliver an error reply", exc_info=True)


class CommandRouter:
    def __init__(self, boundary: Boundary) -> None:
        self.boundary = boundary
        self.subcommands: dict[str, Subcommand] = {}

    def add(self, subcommand: Subcommand) -> None:
        if subcommand.name in self.subcommands:
            raise ValueError(f"subcommand {subcommand.name} registered twice")
        self.subcommands[subcommand.name] = subcommand

    def closest(self, name: str) -> str | None:
        matches = difflib.get_close_matches(name, list(self.subcommands), n=1, cutoff=0.5)
        return matches[0] if matches else None

    async def dispatch(self, body: dict[str, Any], ack: AsyncAck, respond: AsyncRespond) -> None:
        invocation = Invocation.from_body(body)
        safe_ack = Ack(ack)
        name = invocation.subcommand or "help"
        subcommand = self.subcommands.get(name)

        async def work() -> None:
            if subcommand is None:
                raise UserInputError(self.unknown_message(invocation.subcommand))
            await subcommand.handler(invocation, safe_ack, respond)

        await self.boundary.run(
            f"{name}" if subcommand else "unknown",
            invocation.actor,
            invocation.channel_id,
            {
                "command": invocation.command,
                "text": invocation.args,
                "subcommand": invocation.subcommand,
            },
            safe_ack,
            respond,
            work,
        )

    def unknown_message(self, given: str) -> str:
        guess = self.closest(given)
        hint = f" Did you mean `{TOP_COMMAND} {guess}`?" if guess else ""
        known = ", ".join(f"`{n}`" for n in sorted(self.subcommands))
        return f"`{escape(given)}` is not a forgebot command.{hint} Commands: {known}. Try `{TOP_COMMAND} help`."
