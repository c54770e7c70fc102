"""The supervisor restarts crashed tasks and stops even tasks that swallow a cancellation."""

from __future__ import annotations

import asyncio
import contextlib

from controller.supervisor import CriticalSection, Supervisor
from tests.waiting import until


async def test_crashed_task_is_restarted() -> None:
    sup = Supervisor()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)

    sup.spawn("flaky", flaky)
    await until(lambda: runs == 2, within_s=5, what="the task restarted once")
    assert sup.restarts() == {"flaky": 1}
    await sup.stop()


async def test_stop_ends_a_task_that_swallows_one_cancellation() -> None:
    sup = Supervisor()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # what a racing wait_for can do once
            await asyncio.sleep(3600)
        await asyncio.Event().wait()  # then runs on until cancelled a second time

    sup.spawn("stubborn", stubborn, group="pollers")
    await asyncio.sleep(0)
    await asyncio.wait_for(sup.stop("pollers"), 5)
    assert sup.restarts() == {}


async def test_critical_section_finishes_work_when_caller_is_cancelled() -> None:
    section = CriticalSection()
    done: list[str] = []

    async def write() -> None:
        await asyncio.sleep(0.1)
        done.append("written")

    task = asyncio.create_task(section.run(write()))
    await asyncio.sleep(0.01)
    task.cancel()
    await section.join()
    assert done == ["written"]
