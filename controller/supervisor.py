"""Owns every long-running task: restarts one that crashes (with backoff), stops them in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from drivers.backoff import Backoff
from drivers.tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class _Supervised:
    name: str
    group: str
    task: asyncio.Task[None]
    restarts: int = 0


class Supervisor:
    """Nothing is fire-and-forget: every task has a name, a group and a restart policy."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Supervised] = {}

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]], *, group: str = "default") -> None:
        if name in self._tasks:
            raise ValueError(f"task {name!r} already running")
        entry = _Supervised(
            name, group, asyncio.get_running_loop().create_task(self._run(name, factory), name=name)
        )
        self._tasks[name] = entry

    def restarts(self) -> dict[str, int]:
        return {n: t.restarts for n, t in self._tasks.items()}

    async def stop(self, group: str | None = None, *, again_s: float = 0.5) -> None:
        """Cancel the tasks of one group (or all) and wait until they have finished.

        `again_s`: how long to wait before cancelling a task again that has not ended. Short only
        for tasks with nothing to finish once cancelled (pollers): a second cancellation would cut
        short the cleanup of one that has."""
        chosen = [t for t in self._tasks.values() if group is None or t.group == group]
        # again until each has ended: a cancellation racing a reply can be swallowed (drivers/tasks.py)
        await cancel_and_wait([t.task for t in chosen], again_s=again_s)
        for t in chosen:
            self._tasks.pop(t.name, None)

    async def _run(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        while True:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                entry = self._tasks.get(name)
                if entry is not None:
                    entry.restarts += 1
                delay = backoff.next_delay()
                log.exception("task %s crashed; restarting in %.1f s", name, delay)
                await asyncio.sleep(delay)


class CriticalSection:
    """Runs writes that must finish even when their caller is cancelled; `join()` waits for them.

    Cancelling a task in the middle of a database write would drop the batch it had already
    taken and can leave a transaction open (SQLite then reports "database is locked").
    """

    def __init__(self) -> None:
        self._pending: set[asyncio.Future[Any]] = set()

    async def run(self, work: Awaitable[T]) -> T:
        future = asyncio.ensure_future(work)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return await asyncio.shield(future)

    async def join(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)
