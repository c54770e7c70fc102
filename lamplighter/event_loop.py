"""The event loop the long-running commands (`run`, `simulate`) run on.

uvloop where it is installed (Linux and macOS; not on Windows): measured in `make bench-polling`,
the controller spends ~18 % less CPU per reading on it (docs/benchmarks.md). Everything we use
goes through the loop's public API (transports, add_reader for serial, subprocesses, signals), which
uvloop implements; the lease keeper's own thread keeps a standard loop (controller/lease_thread.py).

Not with the embedded MQTT broker in the process: amqtt writes to connections it has closed (a
refused login, a client gone), which the standard loop ignores and uvloop refuses with an error
per message (RuntimeError "the handler is closed", tracebacks in the log). A city that wants the
faster loop runs Mosquitto (docs/deployment.md).

The garbage collector's young generation is made larger (`YOUNG_COLLECTION_EVERY`): at CPython's
default (700 allocations) a controller of a 16,700-lamp shard ran a full collection every 1–10 s,
each 50–100 ms with everything waiting (`lamplighter_gc_pause_seconds`; the readings that live until
the next poll fill the oldest generation). At 10,000 there was no full collection in a minute's
load, a young one took ~4–5 ms and a middle one ~20–30 ms; at 50,000, 20 and 95 ms, which the API's
p99 showed (docs/deployment.md, "Watching the event loop").
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: allocations (less deallocations) of tracked objects between two young collections (CPython: 700)
YOUNG_COLLECTION_EVERY = 10_000


def loop_factory(*, embedded_broker: bool = False) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if embedded_broker:
        return None
    try:
        import uvloop
    except ImportError:  # a platform without it: the standard loop
        return None
    return uvloop.new_event_loop


def tune_collector() -> None:
    """The young generation made larger (see above); the older ones as they were."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)


def resume_collector() -> bool:
    """After `lamplighter run` has started (lamplighter/__main__.py paused the collector): resume
    it. What start-up built is frozen by then (`Controller.start`: never scanned again), with the
    few thousand objects of start-up's cyclic garbage (4,000–4,800 at 50,000 lamps: a full
    collection to free them took 0.4 s, not worth a restart's time). False if it was not paused."""
    if gc.isenabled():
        return False
    gc.enable()
    return True


def run(main: Coroutine[Any, Any, T], *, embedded_broker: bool = False) -> T:
    """asyncio.run on the fastest loop this machine has (the standard one with the embedded broker),
    with the collector's young generation made larger."""
    tune_collector()
    with asyncio.Runner(loop_factory=loop_factory(embedded_broker=embedded_broker)) as runner:
        return runner.run(main)
