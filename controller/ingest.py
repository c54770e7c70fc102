"""The one reading path: queue → live state + telemetry store, in batches."""

from __future__ import annotations

import asyncio
import logging

from controller.fleet import Fleet
from controller.metrics import ControllerMetrics
from controller.supervisor import CriticalSection
from controller.telemetry import TelemetryStore
from drivers.backoff import Backoff
from drivers.base import Reading
from drivers.ratelog import RateLimitedLog

log = logging.getLogger(__name__)


class ReadingIngest:
    """Drains the bounded reading queue in batches; a failed store write is retried, not dropped.

    While a batch is being retried nothing else is taken from the queue, so pollers feel the
    back-pressure through the bounded queue instead of memory growing without limit.
    """

    def __init__(
        self,
        queue: asyncio.Queue[Reading],
        store: TelemetryStore,
        fleet: Fleet,
        metrics: ControllerMetrics,
        *,
        batch_size: int = 1000,
        linger_s: float = 0.1,
    ) -> None:
        self.queue = queue
        self.store = store
        self.fleet = fleet
        self.metrics = metrics
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._writes = CriticalSection()
        self._rejections_log = RateLimitedLog(log, interval_s=60.0)

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            # once taken off the queue, a batch is stored even if this task is being cancelled
            await self._writes.run(self._fill_and_handle(batch))

    async def drain(self) -> int:
        """Ingest whatever is still queued (used at shutdown, after the pollers have stopped)."""
        await self._writes.join()
        total = 0
        while not self.queue.empty():
            batch: list[Reading] = []
            self._take_ready(batch)
            await self._handle(batch)
            total += len(batch)
        return total

    async def _fill_and_handle(self, batch: list[Reading]) -> None:
        self._take_ready(batch)
        if len(batch) < self.batch_size and self.linger_s > 0:
            # A store transaction costs far more than a row: let a batch fill for a moment.
            await asyncio.sleep(self.linger_s)
            self._take_ready(batch)
        await self._handle(batch)

    def _take_ready(self, batch: list[Reading]) -> None:
        while len(batch) < self.batch_size:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break

    async def _handle(self, batch: list[Reading]) -> None:
        rejected = 0
        for reading in batch:
            self.fleet.record_reading(reading)
            rejected += len(reading.rejected)
            for name, why in reading.rejected.items():  # the rest of the reading is kept
                self._rejections_log.warning(
                    (reading.device_id, name),
                    "%s: value of %s rejected, the rest of the reading kept: %s",
                    reading.device_id,
                    name,
                    why,
                )
        if rejected:
            self.metrics.decode_rejections.inc(rejected)
        backoff = Backoff(base_s=0.2, cap_s=10.0)
        while True:
            try:
                await self.store.write(batch)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.store_errors.inc()
                delay = backoff.next_delay()
                log.error(
                    "telemetry write of %d readings failed (%s); retry in %.1f s",
                    len(batch),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        self.metrics.readings_stored.inc(len(batch))
