"""The shape of an HTTP route a capability adds under `/api/` (served by `bot.server`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]
"""(method, path under /api/, handler): HTTP routes a capability adds, e.g. POST deployments."""
