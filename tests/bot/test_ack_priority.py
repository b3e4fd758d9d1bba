"""Work after an ack waits while Slack requests still await theirs (core/ack_priority.py)."""

from __future__ import annotations

import asyncio

from core.ack_priority import AckQueue


async def _turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_work_after_an_ack_waits_until_every_waiting_request_is_answered() -> None:
    queue = AckQueue()
    order: list[str] = []
    answer = [asyncio.Event(), asyncio.Event()]

    async def request(n: int) -> None:
        with queue.answering():
            await answer[n].wait()
            order.append(f"answered {n}")

    async def work() -> None:
        await queue.yield_to_acks()
        order.append("work")

    requests = [asyncio.create_task(request(n)) for n in range(2)]
    await _turns()
    assert queue.waiting == 2
    worker = asyncio.create_task(work())
    await _turns()
    answer[0].set()
    await _turns()
    assert not worker.done(), "one request still waits for its ack"
    answer[1].set()
    await asyncio.gather(worker, *requests)
    assert order == ["answered 0", "answered 1", "work"]
    assert queue.waiting == 0


async def test_with_nothing_waiting_work_goes_on_at_once() -> None:
    queue = AckQueue()
    await asyncio.wait_for(queue.yield_to_acks(), timeout=5)


async def test_under_sustained_load_work_waits_at_most_the_limit() -> None:
    queue = AckQueue()
    never = asyncio.Event()

    async def endless_request() -> None:
        with queue.answering():
            await never.wait()

    request = asyncio.create_task(endless_request())
    await _turns()
    await asyncio.wait_for(queue.yield_to_acks(limit=0.01), timeout=5)
    assert queue._quiet == []  # the timed-out waiter is not left behind
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    assert queue.waiting == 0
