"""`forgebot serve | shell | demo | db upgrade | config check`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.clock import SystemClock
from core.config import Settings
from core.logs import configure_logging
from core.text import plural

if TYPE_CHECKING:
    from core.catalog import Catalog, CatalogError


class CliError(Exception):
    """A command cannot go on: its message is printed as one line, the exit code is 2."""


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}") from None


def _first_line(exc: BaseException) -> str:
    """An exception as one line, without secrets (drivers quote URLs and passwords)."""
    from core.logs import redact

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(lines[0] if lines else type(exc).__name__)


def _catalog_or_exit(path: Path) -> Catalog:
    from core.catalog import CatalogError, load_catalog

    try:
        return load_catalog(path)
    except CatalogError as exc:
        _print_problems(exc)
        raise SystemExit(2) from None


def _print_problems(exc: CatalogError) -> None:
    print(f"forgebot: the catalog has {plural(len(exc.problems), 'problem')}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings()
    path = Path(args.catalog) if args.catalog else settings.catalog_path
    catalog = _catalog_or_exit(path)
    print(
        f"{path}: OK: {len(catalog.teams)} teams, {len(catalog.services)} services, "
        f"{len(catalog.environments)} environments, {len(catalog.templates)} templates"
    )
    if settings.prometheus_url and any(s.slos for s in catalog.services):
        return asyncio.run(_check_slo_queries(settings, catalog))
    return 0


async def _check_slo_queries(settings: Settings, catalog: Catalog) -> int:
    from bot.gateways import prometheus_from
    from commands.slo.check import PrometheusUnavailable, check_slo_queries

    prometheus = prometheus_from(settings)
    assert prometheus is not None
    try:
        problems = await check_slo_queries(catalog, prometheus, SystemClock().now())
    except PrometheusUnavailable as exc:
        print(f"SLO queries not checked: {exc}", file=sys.stderr)
        return 0
    finally:
        await prometheus.close()
    if problems:
        print(f"forgebot: {plural(len(problems), 'SLO query problem')}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print("SLO queries: OK against Prometheus")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from storage import migrate
    from storage.db import make_engine

    settings = _settings()
    try:
        engine = make_engine(settings.database_url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise CliError(
            "unsupported FORGEBOT_DATABASE_URL (use sqlite:///PATH or "
            f"postgresql://USER:PASSWORD@HOST:PORT/DB): {_first_line(exc)}"
        ) from None
    try:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine, args.revision)
        after = migrate.current_revision(engine)
    except SQLAlchemyError as exc:
        raise CliError(
            f"cannot migrate the database: {_first_line(getattr(exc, 'orig', None) or exc)}"
        ) from None
    finally:
        engine.dispose()
    print(f"database migrated: {before or 'empty'} -> {after}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(_serve(settings, args.host or settings.host, args.port or settings.port))


async def _serve(settings: Settings, host: str, port: int) -> int:
    from bot.server import ServingState, build_web_app, listen

    if settings.slack_bot_token is None:
        print(
            "forgebot: set SLACK_BOT_TOKEN (the app's Bot User OAuth Token, xoxb-...); "
            "to try forgebot without Slack run `forgebot demo`",
            file=sys.stderr,
        )
        return 2
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        print(
            "forgebot: set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode); "
            "to try forgebot without Slack run `forgebot demo`",
            file=sys.stderr,
        )
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # Listen first (liveness), then load the heavy parts behind it (readiness).
    clock = SystemClock()
    state = ServingState()
    listener = await listen(build_web_app(state, clock), host, port)
    # The catalog (pydantic models, YAML) loads behind the listening socket too.
    catalog_module = await asyncio.to_thread(importlib.import_module, "core.catalog")
    try:
        catalog = await asyncio.to_thread(catalog_module.load_catalog, settings.catalog_path)
    except catalog_module.CatalogError as exc:
        _print_problems(exc)
        await listener.runner.cleanup()
        return 2
    runtime_module = await asyncio.to_thread(importlib.import_module, "bot.runtime")
    runtime = runtime_module.Runtime(settings, catalog, clock=clock)
    runtime._runner = listener.runner
    try:
        if settings.slack_app_token is not None:
            await runtime.prepare()
            await _start_socket_mode(runtime, settings)
            if settings.slack_signing_secret is not None:
                await runtime.attach(state)
            else:
                await runtime.start_background()
                state.db = runtime.db
                runtime.start_warmups()
        else:
            await runtime.attach(state)
        print(f"forgebot ready on {listener.url}", file=sys.stderr)
    except runtime_module.StartupError as exc:
        print(f"forgebot: {exc}", file=sys.stderr)
        await runtime.stop()
        return 2
    await stop.wait()
    await runtime.stop()
    return 0


async def _start_socket_mode(runtime: object, settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    from bot.runtime import Runtime

    assert isinstance(runtime, Runtime) and runtime.bolt is not None
    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(runtime.bolt, settings.slack_app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]


def cmd_shell(args: argparse.Namespace) -> int:
    from bot.shell import run_shell

    settings = _settings()
    configure_logging("console", args.log_level)
    catalog = _catalog_or_exit(settings.catalog_path)
    try:
        return asyncio.run(run_shell(settings, catalog, user=args.user, script=args.script))
    except KeyboardInterrupt:
        print("\nforgebot shell: interrupted", file=sys.stderr)
        return 130


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.shell import run_demo

    configure_logging("console", args.log_level)
    try:
        return asyncio.run(run_demo(script=args.script, user=args.user, keep=args.keep))
    except KeyboardInterrupt:  # Ctrl-C before the prompt came: everything started is stopped
        print("\nforgebot demo: interrupted", file=sys.stderr)
        return 130


def cmd_manifests(args: argparse.Namespace) -> int:
    """Print forgebot's RBAC for the catalog (see integrations/kubernetes/rbac.py)."""
    from integrations.kubernetes.rbac import render

    catalog = _catalog_or_exit(Path(args.catalog) if args.catalog else _settings().catalog_path)
    sys.stdout.write(render(catalog, namespace=args.namespace))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forgebot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve Slack (HTTP mode or Socket Mode)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    for name, func, helptext in (
        ("shell", cmd_shell, "type slash commands in a terminal, against your configuration"),
        ("demo", cmd_demo, "the shell on a built-in sandbox: no Slack, no cluster needed"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--user", default=None, help="Slack user id to act as")
        p.add_argument("--script", default=None, help="read commands from this file ('-' = stdin)")
        p.add_argument("--log-level", default="WARNING")
        if name == "demo":
            p.add_argument("--keep", action="store_true", help="keep the demo database afterwards")
        p.set_defaults(func=func)

    db = sub.add_parser("db", help="database tasks")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)

    config = sub.add_parser("config", help="configuration tasks")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate the catalog")
    check.add_argument("--catalog", default=None)
    check.set_defaults(func=cmd_config_check)

    rbac = sub.add_parser(
        "manifests", help="print forgebot's least-privilege RBAC generated from the catalog"
    )
    rbac.add_argument("--catalog", default=None)
    rbac.add_argument("--namespace", default="forgebot", help="where forgebot runs")
    rbac.set_defaults(func=cmd_manifests)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"forgebot: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
