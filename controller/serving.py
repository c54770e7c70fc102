"""Which links this instance serves now: the shard's work (controller/shard_work.py) built for
them, rebuilt one at a time when the leases held change (a shard gained, lost or to be handed
back), and its database part tried again while the database is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from controller.db import database_is_away
from controller.lease_thread import KeeperThread
from controller.shard_keeper import ShardKeeper
from controller.shard_work import Carried, City, ShardWork
from drivers.ratelog import RateLimitedLog

log = logging.getLogger(__name__)


def _always(_link: str) -> bool:
    return True


class ShardServing:
    def __init__(self, city: City, keeper: ShardKeeper | None, leases: KeeperThread | None) -> None:
        self.city = city
        self.keeper = keeper
        self.leases = leases
        self.shard: ShardWork | None = None
        self.links: frozenset[str] | None = None  # the links the shard's work was built for
        self._lock = asyncio.Lock()

    @property
    def watching(self) -> bool:
        """The links served are watched and scheduled, not only polled."""
        return self.shard is None or self.shard.watching

    async def serve(self, links: frozenset[str], release: Sequence[str] = ()) -> None:
        """Serve this set of links: the shard's work built for it, the previous one stopped first
        (then the shards in `release` are handed back: nothing here commands them any more)."""
        async with self._lock:  # one at a time: each rebuilds `owned` in place
            await self._serve_now(links, release)

    async def settled(self, within_s: float) -> None:
        """Wait for the shard's work being rebuilt (a takeover, a hand-back), at most `within_s`:
        the rebuild holds the lock, and a waiter takes it in turn and lets it go at once."""
        if self._lock.locked():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s), self._lock:
                    pass

    async def _serve_now(self, links: frozenset[str], release: Sequence[str]) -> None:
        # the lamps still served keep the levels sent them (a takeover sends only the taken ones')
        # and what they were last asked
        before: Carried | None = None
        t0 = time.perf_counter()
        if self.shard is not None:
            await self.shard.stop()  # first: a pass cut short forgets what it did not send
            before = self.shard.carried()
            took = time.perf_counter() - t0
            n, steps = len(self.shard.links), self.shard.steps_said()
            log.info("stopped the work of %d links in %.1f s: %s", n, took, steps)
        self.links = None
        if self.keeper is not None and self.leases is not None:
            for shard in release:
                await self.leases.call(self.keeper.release(shard))
        fence = self.keeper.holds if self.keeper is not None else _always
        self.shard = ShardWork(self.city, links, fence, before)
        t0 = time.perf_counter()
        self.shard.start_polling()
        self.links = links
        # if it fails (database away or stalled), the links are polled still and the lease
        # keeper's next tick tries again (`watch_again`)
        await self.shard.start_watching()
        took = time.perf_counter() - t0
        n, steps = len(self.city.owned), self.shard.steps_said()
        log.info("serving %d links, %d devices (built in %.1f s: %s)", len(links), n, took, steps)

    async def watch_again(self) -> None:
        """The database's part of the shard's work, after it failed: its links were polled meanwhile."""
        async with self._lock:
            shard = self.shard
            if shard is None or shard.watching:
                return
            t0 = time.perf_counter()
            await shard.start_watching()
            took = time.perf_counter() - t0
            n = len(self.city.owned)
            log.info("watching %d devices again (in %.1f s: %s)", n, took, shard.steps_said())

    async def keep_leases_forever(self) -> None:
        """Rebuild the shard's work when the set of links changes (a shard gained, lost or to be
        handed back). The renewals run on the keeper's thread, whatever this loop is doing; fencing
        a lost lease needs neither: the keeper's clock does it (`holds`)."""
        keeper, leases, metrics = self.keeper, self.leases, self.city.metrics
        assert keeper is not None
        assert leases is not None
        hand_back: set[str] = set()
        waiting = RateLimitedLog(log, interval_s=60.0)  # a database away for long: not every tick
        while True:
            try:
                outcome = await asyncio.wait_for(leases.outcomes.get(), keeper.tick_s)
                metrics.shard_leases_lost.inc(len(outcome.lost))
                hand_back.update(outcome.hand_back)
            except TimeoutError:
                pass  # nothing new: still look whether a failed rebuild needs doing again
            held = keeper.held
            metrics.shard_leases.set(len(held))
            handed = frozenset().union(*(held[s].links for s in hand_back if s in held))
            wanted = keeper.links() - handed
            try:
                if wanted != self.links or hand_back:
                    release, hand_back = sorted(hand_back), set()
                    await self.serve(wanted, release)
                elif not self.watching:
                    await self.watch_again()
            except Exception as exc:
                if not database_is_away(exc):
                    log.exception("serving the links of the shards held failed; trying again")
                else:  # a stall as well (WATCH_START_S): TimeoutError
                    what = type(exc).__name__
                    waiting.warning(
                        "db", "the shard's work waits for the database (%s); its links are polled", what
                    )
