"""What the shell reads: lines in order, the end of input, and Ctrl-C as an event."""

from __future__ import annotations

import io
import os
import signal

from bot.shell_input import INTERRUPT, LineSource


async def test_lines_then_the_end_of_input_for_good() -> None:
    source = LineSource.open(io.StringIO("/forge help\n:quit\n"), None)
    assert [await source.next() for _ in range(4)] == ["/forge help", ":quit", None, None]


async def test_ctrl_c_arrives_as_an_interrupt_not_an_exception() -> None:
    source = LineSource.from_lines([])
    source._queue.get_nowait()  # no end of input yet: only the interrupt will come
    source.catch_interrupts()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert await source.next() is INTERRUPT
    finally:
        source.release_interrupts()
