"""Other instances hear of a device's state change within a second: PostgreSQL LISTEN/NOTIFY.

Every reading updates a device's row at the state flush (15 s); what an operations room watches —
a lamp going out, switching, dimming, a device going offline — is announced at once: the instance
saves those rows and, in the same transaction, notifies the channel with their ids. PostgreSQL
delivers a notification when (and only if) its transaction commits, so a listener never reads a
row older than the news. The others read those rows and take them (controller/cluster.py).

A schedule object stored (a program, a calendar, an override) is announced the same way on a
channel of its own: the other instances read the schedules again at once (controller/shard_work.py)
rather than at their next look, up to SCHEDULE_SYNC_S later.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from drivers.backoff import Backoff

log = logging.getLogger(__name__)

CHANNEL = "lamplighter_states"
SCHEDULES_CHANNEL = "lamplighter_schedules"
EVENTS_CHANNEL = "lamplighter_events"  # the live events' (controller/event_news.py)
PAYLOAD_MAX = 7000  # bytes of JSON per notification (PostgreSQL's limit is 8000)
ANNOUNCE_EVERY_S = 0.5


def notifications(sender: str, key: str, items: Sequence[object]) -> tuple[list[str], int]:
    """The items in notifications `{"from": sender, key: [...]}` of at most PAYLOAD_MAX bytes each,
    in order; and how many did not fit in one alone (left out)."""
    out: list[str] = []
    batch: list[object] = []
    base = len(_dumps({"from": sender, key: []}).encode())
    size, too_big = base, 0
    for item in items:
        cost = len(_dumps(item).encode()) + 2
        if base + cost > PAYLOAD_MAX:
            too_big += 1
            continue
        if batch and size + cost > PAYLOAD_MAX:
            out.append(_dumps({"from": sender, key: batch}))
            batch, size = [], base
        batch.append(item)
        size += cost
    if batch:
        out.append(_dumps({"from": sender, key: batch}))
    return out, too_big


def _dumps(value: object) -> str:
    # Vietnamese alert titles as UTF-8 (2–3 bytes a letter), not \u escapes (6): more a notification
    return json.dumps(value, ensure_ascii=False)


def payloads(sender: str, ids: Sequence[str]) -> list[str]:
    """The ids in notifications that each fit PAYLOAD_MAX."""
    return notifications(sender, "ids", ids)[0]


async def announce(conn: AsyncConnection, sender: str, ids: Sequence[str]) -> None:
    """Notify the channel of these devices' changes (sent when the caller's transaction commits)."""
    for payload in payloads(sender, ids):
        await conn.execute(select(func.pg_notify(CHANNEL, payload)))


async def announce_schedules(conn: AsyncConnection, sender: str) -> None:
    """Notify that a schedule object changed (sent when the caller's transaction commits)."""
    await conn.execute(select(func.pg_notify(SCHEDULES_CHANNEL, json.dumps({"from": sender}))))


class NewsListener:
    """Listens on the channels on a connection of its own (reconnecting with backoff), hands every
    other instance's ids to `on_news`, calls `on_schedules` when another stored a schedule, and
    hands `on_events` the live events another published."""

    def __init__(
        self,
        url: URL,
        me: str,
        on_news: Callable[[list[str]], None],
        on_schedules: Callable[[], None] | None = None,
        on_events: Callable[[list[tuple[str, str]]], None] | None = None,
    ) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.me = me
        self.on_news = on_news
        self.on_schedules = on_schedules
        self.on_events = on_events
        self.heard = 0

    async def run(self) -> None:
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                delay = backoff.next_delay()
                log.warning("state news: cannot listen (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(functools.partial(_set, lost))
                await conn.add_listener(CHANNEL, self._heard)
                if self.on_schedules is not None:
                    await conn.add_listener(SCHEDULES_CHANNEL, self._heard_schedules)
                if self.on_events is not None:
                    await conn.add_listener(EVENTS_CHANNEL, self._heard_events)
                backoff.reset()
                # A connection cut without a goodbye ends nothing by itself: ask now and then.
                while not lost.is_set():
                    try:
                        async with asyncio.timeout(5.0):
                            await lost.wait()
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("state news: connection lost (%s)", exc)
            finally:
                conn.terminate()
            # Whatever was announced meanwhile comes with the next state read-back.
            await asyncio.sleep(backoff.next_delay())

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            news = json.loads(payload)
            ids = [str(x) for x in news["ids"]]
            sender = str(news["from"])
        except (ValueError, KeyError, TypeError):
            log.warning("state news: payload not understood: %.100s", payload)
            return
        if sender != self.me:
            self.heard += len(ids)
            self.on_news(ids)

    def _heard_schedules(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            sender = str(json.loads(payload)["from"])
        except (ValueError, KeyError, TypeError):
            log.warning("schedule news: payload not understood: %.100s", payload)
            return
        if sender != self.me and self.on_schedules is not None:
            self.on_schedules()

    def _heard_events(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            news = json.loads(payload)
            sender = str(news["from"])
            events = [(str(name), str(data)) for name, data in news["events"]]
        except (ValueError, KeyError, TypeError):
            log.warning("live events: payload not understood: %.100s", payload)
            return
        if sender != self.me and self.on_events is not None:
            self.on_events(events)


def _set(event: asyncio.Event, _conn: object) -> None:
    event.set()
