"""The shard keeper on a thread of its own, with its own event loop and database engine.

On the controller's loop, a city's first polls, a takeover's rebuild or a burst of API work held
the loop for seconds: renewals came late, leases ran out under live instances, and shards went back
and forth between them (measured at 50,000 lamps). On its own loop the keeper renews on time as
long as the process runs; a paused process (SIGSTOP) stops both loops alike, and the fence is the
same monotonic clock read from either thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from controller.db import create_engine
from controller.leases import LeaseTable
from controller.shard_keeper import ShardKeeper, TickOutcome

log = logging.getLogger(__name__)
T = TypeVar("T")


class KeeperThread:
    def __init__(self, keeper: ShardKeeper, database_url: str) -> None:
        self.keeper = keeper
        self.database_url = database_url
        #: what changed, for the controller's loop (bounded: a tick's outcome per slot, and the
        #: consumer only rebuilds from the latest state, so a full queue drops nothing it needs)
        self.outcomes: asyncio.Queue[TickOutcome] = asyncio.Queue(maxsize=100)
        self._main: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failed: BaseException | None = None

    async def start(self) -> None:
        """Start the thread; return once the keeper has offered and tried to take its own shard."""
        self._main = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="shard-leases", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._started.wait)
        if self._failed is not None:
            raise self._failed

    async def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` (a coroutine of the keeper's) on the keeper's loop and wait for it."""
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def stop(self) -> None:
        """Release every lease (the others take over at once), then end the thread."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        try:
            await self.call(self.keeper.release_all())
        finally:
            assert self._stop is not None
            self._loop.call_soon_threadsafe(self._stop.set)
            await asyncio.to_thread(self._thread.join, 10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), or logged once running
            if not self._started.is_set():
                self._failed = exc
                self._started.set()
            else:
                log.exception("shard leases: the keeper's thread ended")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        engine = create_engine(self.database_url)
        self.keeper.table = LeaseTable(engine, self.keeper.lease_s)
        try:
            await self.keeper.start()
            self._started.set()
            wait_s = self.keeper.tick_s
            while not self._stop.is_set():
                try:
                    async with asyncio.timeout(wait_s):
                        await self._stop.wait()
                except TimeoutError:
                    pass
                if self._stop.is_set():
                    break
                outcome = await self.keeper.tick()
                wait_s = self.keeper.next_tick_s(outcome)
                if outcome.changed:
                    self._tell(outcome)
        finally:
            await engine.dispose()

    def _tell(self, outcome: TickOutcome) -> None:
        assert self._main is not None
        self._main.call_soon_threadsafe(self._put, outcome)

    def _put(self, outcome: TickOutcome) -> None:
        if self.outcomes.full():
            self.outcomes.get_nowait()  # the oldest: the keeper's state is what counts
        self.outcomes.put_nowait(outcome)
