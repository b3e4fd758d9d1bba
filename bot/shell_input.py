"""What the shell reads: typed lines, the end of input, and Ctrl-C, in the order they happen.

A terminal is read by a daemon thread (a blocked `readline` never keeps the process alive at
exit), scripts and in-memory streams are read up front. Ctrl-C arrives through the event loop's
signal handler as `INTERRUPT`, so the shell decides what it means where it is: cancel the form
being filled in, or leave at the prompt. No KeyboardInterrupt tears through the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from enum import Enum
from pathlib import Path
from typing import TextIO


class Interrupt(Enum):
    INTERRUPT = "interrupt"


INTERRUPT = Interrupt.INTERRUPT
Input = str | Interrupt | None
"""A line (without its newline), `INTERRUPT` (Ctrl-C) or None (end of input)."""


class LineSource:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Input] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._signal_installed = False

    @classmethod
    def from_lines(cls, lines: list[str]) -> LineSource:
        source = cls()
        for line in lines:
            source._queue.put_nowait(line)
        source._queue.put_nowait(None)
        return source

    @classmethod
    def open(cls, stream: TextIO, script: str | None) -> LineSource:
        """A script file, an in-memory stream, or a terminal/pipe read as it is typed."""
        if script and script != "-":
            return cls.from_lines(Path(script).read_text(encoding="utf-8").splitlines())
        try:
            stream.fileno()
        except (OSError, ValueError, AttributeError):
            return cls.from_lines(stream.read().splitlines())
        source = cls()
        threading.Thread(target=source._read, args=(stream,), daemon=True).start()
        return source

    def _read(self, stream: TextIO) -> None:
        while True:
            try:
                line = stream.readline()
            except (OSError, ValueError):
                line = ""
            if not line:
                self._put(None)
                return
            self._put(line.rstrip("\n"))

    def _put(self, item: Input) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is reading
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def catch_interrupts(self) -> None:
        """Turn Ctrl-C into `INTERRUPT` while the shell runs (where the platform allows it)."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._loop.add_signal_handler(signal.SIGINT, self._queue.put_nowait, INTERRUPT)
            self._signal_installed = True

    def release_interrupts(self) -> None:
        if self._signal_installed:
            self._loop.remove_signal_handler(signal.SIGINT)
            self._signal_installed = False

    async def next(self) -> Input:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # the end of input stays the end
        return item
