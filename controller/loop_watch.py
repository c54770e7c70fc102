"""How late the event loop runs, and what held it when it ran late.

Everything of one instance (pollers, ingest, alerts, the API) shares one event loop, so one long
callback delays them all; the API's latency percentiles show it first. A task ticks every `TICK_S`
and records how late each tick woke (`lamplighter_event_loop_lag_seconds`). A thread watches the
ticks: while none has come for `BLOCKED_S`, the loop is stuck in something, and the thread samples the
loop thread's stack every `SAMPLE_S`. Once a minute the longest hold and the places seen most are
logged (INFO, WARNING from a second up), so an operator sees *where* — asyncio's own debug mode
would say which callback, at a cost on every callback, and is not for production.

A full garbage collection is named as such: it runs inside whatever code allocated last, whose stack
would otherwise be blamed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import Histogram

log = logging.getLogger(__name__)

TICK_S = 0.05
BLOCKED_S = 0.1
SAMPLE_S = 0.02
REPORT_EVERY_S = 60.0
#: stack frames named per place: the innermost one, then up to this many of ours
OUR_FRAMES = 3
_ROOT = Path(__file__).resolve().parent.parent
_OURS = tuple(str(_ROOT / p) for p in ("controller", "drivers", "api", "schedules", "firmware_bridge"))


def where(frame: FrameType | None) -> str:
    """The innermost frame, then the project's own frames above it: `file:line function` each."""
    parts: list[str] = []
    ours = 0
    while frame is not None and ours < OUR_FRAMES:
        file = frame.f_code.co_filename
        mine = file.startswith(_OURS)
        if mine or not parts:
            short = str(Path(file).relative_to(_ROOT)) if mine else "/".join(Path(file).parts[-2:])
            parts.append(f"{short}:{frame.f_lineno} {frame.f_code.co_name}")
            ours += mine
        frame = frame.f_back
    return " ← ".join(parts)


class LoopWatch:
    def __init__(
        self,
        lag: Histogram,
        gc_pause: Histogram,
        blocked_s: float = BLOCKED_S,
        report_every_s: float = REPORT_EVERY_S,
    ):
        self.lag = lag
        self.gc_pause = gc_pause
        self._gc_started = 0.0
        self.blocked_s = blocked_s
        self.report_every_s = report_every_s
        self._beat = time.monotonic()
        self._loop_thread = 0
        self._stop = threading.Event()
        self._collecting: int | None = None  # the generation being collected, None outside
        self._seen: Counter[str] = Counter()
        self._held: list[float] = []  # each hold of the window, seconds
        self._holding = 0.0

    async def run(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._stop.clear()
        gc.callbacks.append(self._gc)
        watcher = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        watcher.start()
        try:
            while True:
                t = time.monotonic()
                await asyncio.sleep(TICK_S)
                self._beat = now = time.monotonic()
                self.lag.observe(max(0.0, now - t - TICK_S))
        finally:
            self._stop.set()
            gc.callbacks.remove(self._gc)
            await asyncio.to_thread(watcher.join)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._collecting = info["generation"]
        else:
            self._collecting = None
            took = time.perf_counter() - self._gc_started
            self.gc_pause.labels(str(info["generation"])).observe(took)

    def _watch(self) -> None:
        reported = time.monotonic()
        while not self._stop.wait(SAMPLE_S):
            held = time.monotonic() - self._beat - TICK_S
            if held >= self.blocked_s:
                self._holding = max(self._holding, held)
                self._seen[self._sample()] += 1
            elif self._holding:
                self._held.append(self._holding)
                self._holding = 0.0
            if self._held and time.monotonic() - reported >= self.report_every_s:
                self.report()
                reported = time.monotonic()

    def _sample(self) -> str:
        generation = self._collecting
        if generation is not None:
            return f"garbage collection (generation {generation})"
        try:
            return where(sys._current_frames().get(self._loop_thread))
        except AttributeError:  # another thread's frames change as they are read (seen once)
            return "(the loop's stack changed while it was read)"

    def report(self) -> None:
        """Log the window's holds and where they were seen most, then start a new window."""
        held, seen = self._held, self._seen
        self._held, self._seen = [], Counter()
        if not held:
            return
        places = "; ".join(f"{n}× {place}" for place, n in seen.most_common(3))
        log.log(
            logging.WARNING if max(held) >= 1.0 else logging.INFO,
            "event loop held %d times for %.2f s or more (longest %.2f s, %.1f s in all); seen in: %s",
            len(held),
            self.blocked_s,
            max(held),
            sum(held),
            places,
        )
