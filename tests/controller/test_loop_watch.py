"""The loop watch: a callback that holds the event loop is measured and named in the log."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from controller.loop_watch import LoopWatch
from tests.waiting import until


def count_at_least(lag: Histogram, seconds: float) -> float:
    """Observations of `lag` above `seconds` (a bucket bound), from its cumulative buckets."""
    samples = [s for m in lag.collect() for s in m.samples if s.name.endswith("_bucket")]
    buckets = {s.labels["le"]: s.value for s in samples}
    return buckets["+Inf"] - buckets[str(seconds)]


def resize_every_image_at_once() -> None:
    """Stands for work that forgets the loop: CPU (or a blocking call) with no await in it."""
    time.sleep(0.5)


async def test_a_long_callback_is_measured_and_the_place_that_held_the_loop_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="controller.loop_watch")
    registry = CollectorRegistry()
    lag = Histogram("lag_seconds", "lag", registry=registry, buckets=(0.1, 0.25, 1.0))
    gc_pause = Histogram("gc_seconds", "collections", ["generation"], registry=registry)
    watch = LoopWatch(lag, gc_pause, blocked_s=0.1, report_every_s=0.3)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.6)  # a loop with nothing long to do
        assert count_at_least(lag, 0.25) == 0
        assert not caplog.records

        resize_every_image_at_once()
        await until(lambda: bool(caplog.records), 5, "the hold logged")
        said = caplog.records[0].getMessage()
        assert "held 1 times" in said
        assert "resize_every_image_at_once" in said
        assert "test_loop_watch.py" in said
        assert count_at_least(lag, 0.25) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_each_garbage_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    lag = Histogram("lag_seconds", "lag", registry=registry)
    gc_pause = Histogram("gc_seconds", "collections", ["generation"], registry=registry)
    task = asyncio.create_task(LoopWatch(lag, gc_pause).run())
    try:
        await asyncio.sleep(0.1)
        gc.collect()
        full = registry.get_sample_value("gc_seconds_count", {"generation": "2"})
        assert full is not None
        assert full >= 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    gc.collect()  # the watch is gone: no longer timed
    assert registry.get_sample_value("gc_seconds_count", {"generation": "2"}) == full
