"""Live events shared by the instances of a city: PostgreSQL NOTIFY on a channel of their own.

Each instance publishes its alerts and the citizen reports it answered to its own live stream
(`GET /api/v1/events`, controller/alerts/events.py); an IOC or a browser connected to one instance
must see the city's. So each event is also offered here and sent in notifications of at most
PAYLOAD_MAX bytes; the others' NewsListener (controller/state_news.py) publishes them in their
streams. Best effort, like the stream itself: an event too large for a notification, or sent while
the database is away, is counted and said; `GET /api/v1/alerts` and the reports API have them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.state_news import EVENTS_CHANNEL, PAYLOAD_MAX, notifications
from drivers.backoff import Backoff
from drivers.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

#: events taken into one transaction of notifications
BATCH = 500


def event_payloads(sender: str, events: Sequence[tuple[str, str]]) -> tuple[list[str], int]:
    """The events, as (name, JSON data), in notifications of at most PAYLOAD_MAX bytes each; and
    how many did not fit in one alone (left out)."""
    return notifications(sender, "events", [[name, data] for name, data in events])


class EventRelay:
    """Sends what this instance publishes to the other instances (a bounded queue, never waits)."""

    def __init__(self, engine: AsyncEngine, me: str, *, queue_size: int = 10_000) -> None:
        self.engine = engine
        self.me = me
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(queue_size)
        self.sent = 0
        self.dropped = 0
        self._warnings = RateLimitedLog(log, interval_s=60.0)

    def offer(self, name: str, data: str) -> None:
        try:
            self.queue.put_nowait((name, data))
        except asyncio.QueueFull:
            self._drop(1, "full", "the queue to the other instances is full")

    async def run(self) -> None:
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            payloads, too_big = event_payloads(self.me, batch)
            if too_big:
                self._drop(too_big, "large", f"larger than a notification ({PAYLOAD_MAX} bytes)")
            try:
                async with self.engine.begin() as conn:  # sent when it commits, in order
                    for payload in payloads:
                        await conn.execute(select(func.pg_notify(EVENTS_CHANNEL, payload)))
            except (SQLAlchemyError, OSError) as exc:
                self._drop(len(batch) - too_big, "database", f"not sent ({exc})")
                await asyncio.sleep(backoff.next_delay())
                continue
            self.sent += len(batch) - too_big
            backoff.reset()

    def _drop(self, n: int, kind: str, why: str) -> None:
        self.dropped += n
        self._warnings.warning(kind, "live events: %d not shared with the other instances: %s", n, why)
