"""How many live event streams (`GET /api/v1/events`) may be open: in all, and per caller.

A stream holds a connection, a task and a queue of up to 1,000 events for as long as the client
likes; without a cap one viewer could open them until memory ran out.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator

from fastapi import Request

from api.access import CurrentPrincipal
from api.errors import ApiError

RETRY_S = 10


class StreamSlots:
    def __init__(self, *, total: int, per_caller: int) -> None:
        self.total = total
        self.per_caller = per_caller
        self.open: Counter[str] = Counter()

    @contextlib.contextmanager
    def take(self, caller: str) -> Iterator[None]:
        """Hold a slot while the stream is open; 429 (this caller) or 503 (everyone) when none is left."""
        if self.open[caller] >= self.per_caller:
            raise ApiError(
                429,
                "too_many_streams",
                f"{caller} already has {self.open[caller]} event streams open (at most {self.per_caller})",
                headers={"Retry-After": str(RETRY_S)},
            )
        if sum(self.open.values()) >= self.total:
            raise ApiError(
                503,
                "busy",
                f"this instance serves at most {self.total} event streams; retry in {RETRY_S} s",
                headers={"Retry-After": str(RETRY_S)},
            )
        self.open[caller] += 1
        try:
            yield
        finally:
            self.open[caller] -= 1
            if not self.open[caller]:
                del self.open[caller]


async def stream_slot(request: Request, principal: CurrentPrincipal) -> AsyncIterator[None]:
    """A dependency: the caller's slot, held until its stream ends (FastAPI keeps a yield
    dependency open for as long as a streaming answer runs)."""
    slots: StreamSlots = request.app.state.streams
    with slots.take(principal.actor):
        yield
