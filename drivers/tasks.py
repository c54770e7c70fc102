"""Stopping tasks that run protocol libraries: cancel, and cancel again until they have ended."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, again_s: float = 0.5) -> None:
    """Cancel these tasks and wait until each has ended, cancelling again every `again_s` one
    that has not.

    On Python 3.11 `asyncio.wait_for` returns its result instead of raising when a cancellation
    arrives in the same turn as the result: pymodbus waits so for every reply, aiomqtt for every
    connection, publish and acknowledgement. A loop around such a call then runs on, and a single
    `cancel()` followed by `await task` waits for ever (most likely what hung a test for 120 s:
    simulated MQTT devices publishing at QoS 1, stopped by one cancel and a gather). `again_s`:
    short for tasks with nothing to finish once cancelled; a second cancellation cuts short the
    clean-up of one that has.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_s)
