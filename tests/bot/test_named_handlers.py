"""Every Slack handler is a named, module-level function (issue 16): no closure inside a
`register()`, so a traceback names it, a test can import it, and each capability's `register`
is a table of named handlers bound to their typed dependencies."""

from __future__ import annotations

import functools
from typing import Any

from tests.fixtures.slack import RunningBot


def _named(function: Any) -> Any:
    """The function a registered listener finally calls: through `functools.partial` and the
    kernel's listener objects (`core.interactions`), which keep it as `.handler`."""
    while True:
        if isinstance(function, functools.partial):
            function = function.func
        elif callable(function) and hasattr(function, "handler"):
            function = function.handler
        else:
            return function


def _where(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


async def test_no_listener_or_subcommand_is_a_closure(running_bot: RunningBot) -> None:
    runtime = running_bot.runtime
    assert runtime.bolt is not None and runtime.ctx is not None
    listeners = [_named(listener.ack_function) for listener in runtime.bolt._async_listeners]
    subcommands = [_named(sub.handler) for sub in runtime.ctx.router.subcommands.values()]
    handlers = listeners + subcommands

    closures = sorted({_where(h) for h in handlers if "<locals>" in _where(h)})

    assert not closures, f"handlers defined inside a function: {closures}"
    # The walk reached the capabilities' own functions, not only the kernel's wrappers.
    assert len(handlers) > 40
    assert all(_where(h).startswith(("commands.", "core.")) for h in handlers), sorted(
        {_where(h) for h in handlers}
    )
