"""Live events for `GET /api/v1/events`: one bounded queue per listener, and a short replay buffer.

Publishing never waits: a listener too slow to keep up loses events (counted, and told so with a
`lagged` event) instead of slowing alert delivery for everyone. Each event has a sequence id, so a
reconnecting browser (`Last-Event-ID`) gets what it missed from the replay buffer. An id is the
time it was published, in microseconds since the epoch (one more than the last if that is later):
a browser reconnecting after a restart, or to another instance of the city, gets replayed what
came after the event it last saw — with ids counted from 1 at each start it got nothing.

With several instances, `share` passes what this instance publishes to the others (PostgreSQL
NOTIFY, controller/event_news.py), and theirs are published here: each instance's stream is the
city's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class HubEvent:
    id: int
    name: str  # e.g. "alert", "report", "lagged"
    data: str  # JSON


@dataclass(eq=False)
class Listener:
    queue: asyncio.Queue[HubEvent]
    dropped: int = 0
    _told: int = field(default=0, repr=False)

    def lag_notice(self) -> int:
        """Events dropped since the listener was last told (0 if none)."""
        new = self.dropped - self._told
        self._told = self.dropped
        return new


class EventHub:
    def __init__(self, *, listener_queue: int = 1000, replay: int = 1000) -> None:
        self.listener_queue = listener_queue
        self.listeners: set[Listener] = set()
        self.replay: deque[HubEvent] = deque(maxlen=replay)
        self.dropped = 0
        self._last_id = 0
        #: where what is published here also goes (the other instances); not for what they sent
        self.share: Callable[[str, str], None] | None = None

    def publish(self, name: str, data: str, *, from_peer: bool = False) -> HubEvent:
        self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
        event = HubEvent(self._last_id, name, data)
        if self.share is not None and not from_peer:
            self.share(name, data)
        self.replay.append(event)
        for listener in self.listeners:
            try:
                listener.queue.put_nowait(event)
            except asyncio.QueueFull:
                listener.dropped += 1
                self.dropped += 1
        return event

    def offer(self, messages: Sequence[BaseModel]) -> None:
        """The alert channel: each alert event becomes an `alert` event, a root-cause group's an
        `alert_group` event."""
        for msg in messages:
            self.publish(
                "alert_group" if getattr(msg, "type", "alert") == "group" else "alert", msg.model_dump_json()
            )

    @asynccontextmanager
    async def listen(self, last_event_id: int | None = None) -> AsyncIterator[Listener]:
        listener = Listener(asyncio.Queue(self.listener_queue))
        if last_event_id is not None:
            for event in self.replay:
                if event.id > last_event_id and not listener.queue.full():
                    listener.queue.put_nowait(event)
        self.listeners.add(listener)
        try:
            yield listener
        finally:
            self.listeners.discard(listener)
