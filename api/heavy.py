"""Requests that cost real CPU (long previews, energy tables, long telemetry series) run off the event loop.

The event loop polls devices, keeps MQTT sessions alive and answers every other request: one
preview computed on it stalled the whole controller for 14 s (brokers delivered last wills, false
alerts went out). Such work runs in a worker thread, including the JSON encoding of its answer;
at most `workers` at a time, and a request that would wait behind `queue` others is told to come
back (503 `busy`, with Retry-After) instead of piling up.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TypeVar

from fastapi import Response
from pydantic import BaseModel

from api.errors import ApiError
from api.json_chunks import model_json

T = TypeVar("T")
BUSY_RETRY_S = 2


#: how long a thread may hold the GIL while another wants it. The default 5 ms lets a worker
#: thread make the event loop wait that long at every system call it makes (a send, a poll):
#: dozens of waits per loop turn. 1 ms keeps the loop's turns short while work runs beside it.
GIL_SWITCH_INTERVAL_S = 0.001


class HeavyWork:
    def __init__(self, *, workers: int = 2, queue: int = 16) -> None:
        if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # process-wide: the loop is the process's heart
        self.workers = workers
        self.queue = queue
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in a worker thread, after the requests ahead of it."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        if self._waiting >= self.queue:
            raise ApiError(
                503,
                "busy",
                f"{self._waiting} costly requests are ahead of this one; retry in {BUSY_RETRY_S} s",
                headers={"Retry-After": str(BUSY_RETRY_S)},
            )
        self._waiting += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(fn)
        finally:
            self._waiting -= 1

    async def json(self, build: Callable[[], BaseModel]) -> Response:
        """Build a response model and encode it, both in a worker thread."""

        def encoded() -> bytes:
            return model_json(build())  # in steps: one long encoding call would hold the loop

        return Response(await self.run(encoded), media_type="application/json")
