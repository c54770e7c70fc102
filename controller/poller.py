"""One poller task per link: reads each device when its interval comes due, in due order."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from controller.fleet import Fleet
from controller.metrics import ControllerMetrics
from drivers.base import DeviceRef, Driver, Reading
from drivers.errors import DriverError, LinkUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PolledDevice:
    ref: DeviceRef
    interval_s: float


class LinkPoller:
    """Polls the devices of one link. A failed device never stops the others.

    Polls are scheduled at a fixed rate from their due time (no drift); a poll that falls more
    than one interval behind is rescheduled from now rather than replayed in a burst. While the
    link is down, devices wait for the driver's next reconnect attempt instead of spinning.
    """

    def __init__(
        self,
        driver: Driver,
        devices: Sequence[PolledDevice],
        queue: asyncio.Queue[Reading],
        fleet: Fleet,
        metrics: ControllerMetrics,
    ) -> None:
        self.driver = driver
        self.devices = list(devices)
        self.queue = queue
        self.fleet = fleet
        link = driver.link_id
        self._ok = metrics.polls.labels(link, "ok")
        self._seconds = metrics.poll_seconds.labels(link)
        self._metrics = metrics

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        seq = itertools.count()
        now = loop.time()
        # Spread first polls over each device's interval so a restart does not burst the link.
        n = max(1, len(self.devices))
        heap = [(now + d.interval_s * i / n, next(seq), d) for i, d in enumerate(self.devices)]
        heapq.heapify(heap)
        while heap:
            due, _, dev = heap[0]
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            start = loop.time()
            hold = await self._poll(dev)
            now = loop.time()
            self._seconds.observe(now - start)
            nxt = due + dev.interval_s
            if nxt < now - dev.interval_s:
                nxt = now
            heapq.heapreplace(heap, (max(nxt, now + hold), next(seq), dev))

    async def _poll(self, dev: PolledDevice) -> float:
        """Poll one device; return how long it must wait at least (link backoff), else 0."""
        try:
            reading = await self.driver.read(dev.ref)
        except LinkUnavailable as exc:
            self._fail(dev, exc)
            return max(self.driver.stats.next_attempt_in_s, 0.05)
        except DriverError as exc:
            self._fail(dev, exc)
            await asyncio.sleep(0)  # a read can fail without I/O: never let a loop of them starve others
            return 0.0
        self._ok.inc()
        await self.queue.put(reading)  # bounded: a slow store slows polling rather than losing data
        return 0.0

    def _fail(self, dev: PolledDevice, exc: DriverError) -> None:
        self._metrics.polls.labels(self.driver.link_id, exc.kind).inc()
        self.fleet.record_failure(dev.ref.device_id, exc)
        log.debug("poll %s failed: %s", dev.ref.device_id, exc)
