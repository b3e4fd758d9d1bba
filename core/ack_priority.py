"""Acks first: work a listener does after its ack waits while Slack requests await theirs.

One event loop serves every request. In a burst (100 people type `/deploy` within a second),
each listener acks within a millisecond or two, but what it does next (plan the deploy, read
the cluster, write the operation row, start the rollout) would compete with the 99 requests
still waiting for their ack, and the last ack would wait for the others' slow work too. So the
HTTP server counts the Slack requests it has not answered yet (`answering`), and a listener
that has acked waits (`yield_to_acks`) until that count is zero, or at most
`MAX_YIELD_SECONDS` under sustained load, before its slow work. Nobody sees the wait: their
ack has been sent, and the work that follows takes seconds anyway.

Bolt sends an ack when its own poll (every 10 ms) notices it; the count includes the
listener's own request, so the wait also covers that.

The count is per process (one HTTP server per process; the terminal shell and Socket Mode do
not count, so their listeners never wait). Waiters are futures of the loop that waits, so the
counter is safe to share between the event loops of successive tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

MAX_YIELD_SECONDS = 1.0
"""Under sustained load the count may never reach zero: slow work then starts anyway."""


class AckQueue:
    def __init__(self) -> None:
        self.waiting = 0
        self._quiet: list[asyncio.Future[None]] = []

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one Slack request, until its response is ready."""
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1
            if self.waiting == 0:
                quiet, self._quiet = self._quiet, []
                for future in quiet:
                    if not future.done():
                        future.set_result(None)

    async def yield_to_acks(self, limit: float = MAX_YIELD_SECONDS) -> None:
        """Return once no Slack request awaits its ack (at most after `limit` seconds)."""
        if self.waiting == 0:
            await asyncio.sleep(0)  # let the response that was just acked be written
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._quiet.append(future)
        try:
            await asyncio.wait_for(future, limit)
        except TimeoutError:
            with contextlib.suppress(ValueError):
                self._quiet.remove(future)


PENDING_ACKS = AckQueue()
