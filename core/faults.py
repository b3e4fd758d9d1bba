"""A test-only fault hook: makes this process SIGKILL itself at a named step.

Inert unless `FORGEBOT_FAULT_KILL_AT` is set (never set it in production). Its value is
`STEP` or `STEP#N`: the process kills itself (`kill -9`, no clean-up, no goodbye) the N-th
time (default the first) execution passes `point(STEP)`. A value `@PATH` names a file holding
`STEP#N` instead, read at each point, so a running process can be armed (the count starts when
the file's content changes; an empty or missing file disarms it). The fault suite (`tests/faults/`) and
`bench/faults.py` use it to interrupt an operation at a precise step, then restart the bot
without the variable and check that the operation still ends once, and that the person is told.

The named steps:

- `operation.accepted:KIND`: an acked request's row is written, before its work starts;
- `operation.claimed:KIND`: a process claimed the operation row, before its handler runs;
- `operation.handled:KIND`: the handler returned, before its outcome is written;
- `operation.finished:KIND`: the outcome is written;
- `kube.write`: a Kubernetes write (create, update, patch, delete) has been answered;
- `slack.dm`: a direct message is about to be posted;
- `slack.post`: a Slack message has been posted.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

ENV = "FORGEBOT_FAULT_KILL_AT"

log = logging.getLogger(__name__)
_passed: Counter[str] = Counter()


def _parse(value: str) -> tuple[str, int] | None:
    value = value.strip()
    if not value:
        return None
    step, _, nth = value.partition("#")
    return step, int(nth or 1)


_SETTING = os.environ.get(ENV, "")
_armed_with = ""


def _target() -> tuple[str, int] | None:
    global _armed_with
    if not _SETTING.startswith("@"):
        return _parse(_SETTING)
    try:
        with open(_SETTING[1:], encoding="utf-8") as armed:
            value = armed.read()
    except OSError:
        value = ""
    if value != _armed_with:
        _armed_with = value
        _passed.clear()
    return _parse(value)


def point(step: str) -> None:
    """Execution passes `step`; the process dies here if the fault hook names it."""
    if not _SETTING:
        return
    target = _target()
    if target is None or step != target[0]:
        return
    _passed[step] += 1
    if _passed[step] == target[1]:
        log.warning("fault hook: killing this process at %s#%d", step, _passed[step])
        os.kill(os.getpid(), signal.SIGKILL)
