"""Which shards this instance serves, kept as leases (controller/leases.py): its own shard at start,
any shard whose holder has died, and its own shard back from whoever took it over.

`tick()` runs every `lease_s / 4`. Each database call has a deadline shorter than the lease, so a
database that hangs (a partition drops packets, it does not refuse them) cannot keep the keeper
from noticing that a lease ran out; `holds(link)` is the fence every command and alert asks first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from controller.db import DATABASE_AWAY_ERRORS
from controller.leases import Lease, LeaseTable

log = logging.getLogger(__name__)
T = TypeVar("T")
#: a lease is taken this long after its expiry by the database's clock, so that the acquisition
#: (its own round trip later) finds it expired
EXPIRY_MARGIN_S = 0.05


@dataclass(slots=True)
class TickOutcome:
    """What changed in one tick: shards gained, lost (lease ran out or was taken), to hand back."""

    gained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    hand_back: list[str] = field(default_factory=list)
    #: seconds until the next of the others' leases expires (None: none runs); when sooner than
    #: the next tick the keeper looks again then, not up to a tick later (a dead instance's links
    #: served ~0.75 s sooner on average)
    next_expiry_s: float | None = None

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost or self.hand_back)


@dataclass(frozen=True, slots=True)
class HeldShard:
    shard: str
    links: tuple[str, ...]
    token: int
    valid_for_s: float  # by this instance's clock; 0 once it ran out
    own: bool


@dataclass(frozen=True, slots=True)
class LeaseHealth:
    """What /healthz says about this instance's leases."""

    holder: str
    home: str | None
    held: list[HeldShard]
    database_reachable: bool
    leases_lost: int

    @property
    def serving_home(self) -> bool:
        """A standby has no shard of its own to miss."""
        return self.home is None or any(h.own and h.valid_for_s > 0 for h in self.held)


def process_name() -> str:
    """This process among the instances: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ShardKeeper:
    def __init__(self, lease_s: float, *, home: str | None, home_links: frozenset[str]) -> None:
        #: made on the keeper's own loop (controller/lease_thread.py), or given by a test
        self.table: LeaseTable | None = None
        self.lease_s = lease_s
        self.home = home  # None: a standby, which only takes over
        self.home_links = home_links
        #: unique per process: a restarted instance is a new holder, whatever its number
        self.holder = process_name()
        #: replaced, never changed in place: the controller's loop reads it from another thread
        self.held: dict[str, Lease] = {}
        self.lost_total = 0  # leases that ran out or were taken while held (a metric)
        self.database_ok = True
        self._answered_at = time.monotonic()  # the database's last answer to the keeper
        #: a whole city restarting: each instance gets a lease's time to take its own shard
        #: before the first one up takes them all over (and hands them back one by one)
        self._take_over_from = time.monotonic() + lease_s

    def _table(self) -> LeaseTable:
        assert self.table is not None, "the keeper has no lease table yet"
        return self.table

    @property
    def tick_s(self) -> float:
        return self.lease_s / 4

    def links(self) -> frozenset[str]:
        """The links of every shard held (polled), whether or not its lease may command now."""
        return frozenset().union(*(lease.links for lease in self.held.values()))

    def health(self) -> LeaseHealth:
        now = time.monotonic()
        held = [
            HeldShard(
                shard,
                tuple(sorted(lease.links)),
                lease.token,
                round(max(0.0, lease.valid_until - now), 1),
                shard == self.home,
            )
            for shard, lease in sorted(self.held.items())
        ]
        reachable = self.database_ok and now - self._answered_at < self.lease_s
        return LeaseHealth(self.holder, self.home, held, reachable, self.lost_total)

    def holds(self, link_id: str) -> bool:
        """The fence: may this instance command (or raise alerts on) this link at this moment?"""
        return any(link_id in lease.links and lease.valid() for lease in self.held.values())

    async def start(self) -> None:
        """Offer our own shard and take it if it is free (else claim it back); never raises for a
        database that is away, the ticks go on trying."""
        if self.home is not None:
            await self._call(self._table().offer(self.home, self.home_links))
        await self.tick()

    async def tick(self) -> TickOutcome:
        out = TickOutcome()
        self.database_ok = True
        for shard, lease in list(self.held.items()):
            renewed = await self._call(self._table().renew(lease, self.holder))
            if renewed is None:
                # Database away: the clock fences commands and alerts off; polling goes on, so
                # that no reading is lost while nobody can tell who serves the links.
                if not lease.valid() and not lease.suspended:
                    lease.suspended = True
                    self.lost_total += 1
                    log.error("shard %s: lease ran out, database away: no commands from here", shard)
                continue
            still_ours, claimed = renewed
            if not still_ours:  # it ran out (a pause, a partition); another may hold it now
                self.held = {k: v for k, v in self.held.items() if k != shard}
                out.lost.append(shard)
                if not lease.suspended:
                    self.lost_total += 1
                log.error("shard %s: lease lost; its links are no longer served from here", shard)
            elif claimed and shard != self.home:
                out.hand_back.append(shard)
        if self.home is not None and self.home not in self.held:
            mine = await self._call(self._table().acquire(self.home, self.holder, own=True))
            if mine is not None:
                self._gain(mine, out)
            elif self.database_ok:
                await self._call(self._table().claim(self.home))
        if time.monotonic() < self._take_over_from:
            return out
        expired, out.next_expiry_s = await self._call(self._table().taken_over(self.holder)) or ([], None)
        for shard in expired:
            if shard in self.held or shard == self.home:
                continue
            theirs = await self._call(self._table().acquire(shard, self.holder, own=False))
            if theirs is not None:
                self._gain(theirs, out)
        return out

    def next_tick_s(self, out: TickOutcome) -> float:
        """How long to wait before the next tick: a tick, or until just after the next of the
        others' leases can be taken."""
        if out.next_expiry_s is None:
            return self.tick_s
        return max(0.05, min(self.tick_s, out.next_expiry_s + EXPIRY_MARGIN_S))

    async def release(self, shard: str) -> None:
        """Hand a shard back (its work here already stopped)."""
        lease = self.held.get(shard)
        if lease is not None:
            self.held = {k: v for k, v in self.held.items() if k != shard}
            lease.valid_until = 0.0
            await self._call(self._table().release(lease, self.holder))
            log.info("shard %s released", shard)

    async def release_all(self) -> None:
        """At shutdown: let the others take over at once rather than after the lease."""
        for shard in self.held:
            await self.release(shard)

    def _gain(self, lease: Lease, out: TickOutcome) -> None:
        self.held = {**self.held, lease.shard: lease}
        out.gained.append(lease.shard)
        whose = "its own" if lease.shard == self.home else "taken over"
        log.warning(
            "shard %s (%s): %d links, fencing token %d", lease.shard, whose, len(lease.links), lease.token
        )

    async def _call(self, work: Awaitable[T]) -> T | None:
        """One database call with a deadline; None (and `database_ok` false) if it is away."""
        try:
            async with asyncio.timeout(self.tick_s):
                answer = await work
            self._answered_at = time.monotonic()
            return answer
        except DATABASE_AWAY_ERRORS as exc:
            if self.database_ok:
                log.warning("shard leases: database away (%s)", type(exc).__name__)
            self.database_ok = False
            return None
