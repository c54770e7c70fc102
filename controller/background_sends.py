"""The schedules' levels sent in the background, one pass at a time, and again while some lamps'
are not confirmed.

At 50,000 lamps a pass takes minutes on a loaded machine (each link's lamps in turn), so neither
the API call that saved a change nor a takeover waits for it: they ask for a pass and return. A
request during a pass is served by one more pass after it; the running pass's reminders give way
to it (controller/level_sends.py). A pass that leaves lamps unconfirmed (a
timeout under load, a lamp not answering) is followed by another after RETRY_FIRST_S, doubling up
to RETRY_CAP_S — sooner if a change asks first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from drivers.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RETRY_FIRST_S = 15.0
RETRY_CAP_S = 300.0


class BackgroundSends:
    def __init__(self, send: Callable[[], Awaitable[bool]], *, retry_first_s: float = RETRY_FIRST_S) -> None:
        """`send`: one pass; True while some lamps' levels are still not confirmed."""
        self.send = send
        self.retry_first_s = retry_first_s
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._wake = asyncio.Event()  # a request while waiting to retry

    def idle(self) -> bool:
        """No pass runs or waits to retry."""
        return self._task is None or self._task.done()

    def wanted(self) -> bool:
        """Is a pass asked for after the one running (a change waits for it)?"""
        return self._again

    def request(self) -> None:
        """A pass soon: now if none runs, after the one running otherwise."""
        self._again = True
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="schedule-sends")

    async def stop(self) -> None:
        if self._task is not None:  # again if a racing reply swallowed it (pymodbus' wait_for)
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        retry_s = self.retry_first_s
        while True:
            unconfirmed = False
            while self._again:
                self._again = False
                self._wake.clear()
                try:
                    unconfirmed = await self.send()
                except Exception:  # sent again at the retry below; say so meanwhile
                    log.exception("schedules: sending the lamps their levels failed")
                    unconfirmed = True
            if not unconfirmed:
                return
            with contextlib.suppress(TimeoutError):  # a request comes first, or the retry
                await asyncio.wait_for(self._wake.wait(), retry_s)
            retry_s = min(2 * retry_s, RETRY_CAP_S)
            self._again = True
