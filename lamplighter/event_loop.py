"""The event loop the long-running commands (`run`, `simulate`) run on.

uvloop where it is installed (Linux and macOS; not on Windows): measured in `make bench-polling`,
the controller spends ~18 % less CPU per reading on it (docs/benchmarks.md). Everything we use
goes through the loop's public API (transports, add_reader for serial, subprocesses, signals), which
uvloop implements; the lease keeper's own thread keeps a standard loop (controller/lease_thread.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # a platform without it: the standard loop
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the fastest loop this machine has."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
