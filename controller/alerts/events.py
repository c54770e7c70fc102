"""Live events for `GET /api/v1/events`: one bounded queue per listener, and a short replay buffer.

Publishing never waits: a listener too slow to keep up loses events (counted, and told so with a
`lagged` event) instead of slowing alert delivery for everyone. Each event has a sequence id, so a
reconnecting browser (`Last-Event-ID`) gets what it missed from the replay buffer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Sequence
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
        self._ids = itertools.count(1)

    def publish(self, name: str, data: str) -> HubEvent:
        event = HubEvent(next(self._ids), name, data)
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
