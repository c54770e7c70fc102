"""Tasks running protocol libraries are stopped even when a racing reply swallows a cancellation."""

from __future__ import annotations

import asyncio

from drivers.tasks import cancel_and_wait
from tests.waiting import until


async def test_a_task_whose_wait_for_swallowed_the_cancellation_is_cancelled_again() -> None:
    """The race as aiomqtt meets it on Python 3.11: a publisher waits for each acknowledgement with
    asyncio.wait_for, and the acknowledgement arrives in the same turn as the cancellation."""
    loop = asyncio.get_running_loop()
    acks: list[asyncio.Future[None]] = []

    async def publishing() -> None:
        while True:
            ack = loop.create_future()
            acks.append(ack)
            await asyncio.wait_for(ack, 10)

    task = asyncio.create_task(publishing())
    await until(lambda: bool(acks), within_s=5, what="the first publish")
    acks[-1].set_result(None)  # the acknowledgement …
    stopping = asyncio.create_task(cancel_and_wait([task], again_s=0.05))  # … and the stop
    await asyncio.wait_for(stopping, 5)
    assert task.cancelled()
    assert len(acks) == 2  # the first cancellation was swallowed: it waited for a second ack


async def test_nothing_to_cancel_returns_at_once() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await asyncio.wait_for(cancel_and_wait([done]), 1)
    await asyncio.wait_for(cancel_and_wait([]), 1)
