"""The runner wakes its owner at transitions and override moments, and ticks only during photocell periods."""

from __future__ import annotations

import asyncio
import datetime as dt

from schedules.model import Calendar, Override
from schedules.plan import Plan, Target
from schedules.runner import TransitionRunner
from tests.schedules.test_plan import HANOI, NIGHTLY, TZ
from tests.waiting import until


def override(start: dt.datetime, expiry: dt.datetime) -> Override:
    return Override(id="storm", group="hanoi", level=100, start=start, expiry=expiry)


async def test_it_arms_each_groups_next_transition_and_the_override_moments_to_come() -> None:
    calls: list[str] = []

    async def woken() -> None:
        calls.append("transition")

    plan = Plan(HANOI, {"nightly": NIGHTLY}, {"hanoi": Calendar(id="hanoi", default_program="nightly")})
    noon = dt.datetime(2026, 6, 22, 12, 0, tzinfo=TZ)
    past = override(noon - dt.timedelta(hours=2), noon - dt.timedelta(hours=1))
    storm = override(noon.replace(hour=22), noon.replace(hour=23, minute=30))
    runner = TransitionRunner(woken, woken)  # not started: the jobs wait, so their times can be read
    runner.arm({"hn": plan}, {"hn": ["hanoi"]}, [past, storm], photocell=False, now=noon)

    first = next(iter(plan.transitions(Target("hanoi"), noon, noon + dt.timedelta(days=1))))
    armed = sorted(job.trigger.run_date for job in runner.scheduler.get_jobs())
    assert armed == [first.at, storm.start, storm.expiry]
    assert first.at.astimezone(TZ).hour == 18  # ten minutes before sunset
    runner.arm({"hn": plan}, {"hn": []}, [], photocell=False, now=noon)  # re-arming replaces every job
    assert runner.scheduler.get_jobs() == []
    assert calls == []


async def test_it_fires_at_the_moment_and_ticks_only_while_asked() -> None:
    fired: list[str] = []

    async def transition() -> None:
        fired.append("transition")

    async def photocell() -> None:
        fired.append("photocell")

    runner = TransitionRunner(transition, photocell, photocell_every_s=0.1)
    runner.start()
    try:
        now = dt.datetime.now(dt.UTC)
        soon = override(now + dt.timedelta(seconds=0.3), now + dt.timedelta(hours=1))
        runner.arm({}, {}, [soon], photocell=True, now=now)
        await until(lambda: "transition" in fired and fired.count("photocell") >= 2, within_s=5)
        runner.photocell_done()
        await asyncio.sleep(0.05)  # a tick already under way may finish
        ticks = fired.count("photocell")
        await asyncio.sleep(0.4)
        assert fired.count("photocell") == ticks
        assert fired.count("transition") == 1
    finally:
        runner.stop()
