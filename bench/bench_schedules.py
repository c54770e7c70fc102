"""Schedule planning speed: a 24 h plan for 1,000 groups, and every level for 100,000 lamps at once.

    python -m bench.bench_schedules [--groups 1000] [--lamps 100000]

The plan: each group's transitions over the next 24 h (what the runner schedules). The catch-up:
`resolve` for every lamp at one instant (what a restart does before the next transition).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from zoneinfo import ZoneInfo

from schedules.astro import AstroClock
from schedules.model import Calendar, CalendarRule, Override, Program, Step
from schedules.plan import Plan, Target

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def build(groups: int) -> tuple[Plan, list[str]]:
    programs = {
        f"p{i}": Program(
            id=f"p{i}",
            steps=(
                Step(event="sunset", offset_min=-10 + i, level=100),
                Step(at="23:00", level=60 + i, ramp_min=10),
                Step(at="01:00", level=40),
                Step(event="sunrise", offset_min=10, level=0),
            ),
        )
        for i in range(5)
    }
    names = [f"city/d{g // 50:02d}/g{g:04d}" for g in range(groups)]
    calendars = {
        name: Calendar(
            id=f"c{i}",
            default_program=f"p{i % 5}",
            rules=(
                CalendarRule(program="p0", holiday="any"),
                CalendarRule(program="p1", lunar_month=8, lunar_day=15),
                CalendarRule(program="p2", weekdays=("sat", "sun")),
            ),
        )
        for i, name in enumerate(names)
    }
    start = dt.datetime(2026, 11, 25, 20, tzinfo=TZ)
    overrides = tuple(
        Override(
            id=f"o{i}", group=names[i * 10], level=100, start=start, expiry=start + dt.timedelta(hours=2)
        )
        for i in range(groups // 10)
    )
    return Plan(AstroClock(21.0285, 105.8542, "Asia/Ho_Chi_Minh"), programs, calendars, overrides), names


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--lamps", type=int, default=100_000)
    args = parser.parse_args()
    plan, names = build(args.groups)
    start = dt.datetime(2026, 11, 25, 12, tzinfo=TZ)
    t0 = time.perf_counter()
    transitions = sum(
        len(list(plan.transitions(Target(name), start, start + dt.timedelta(hours=24)))) for name in names
    )
    plan_s = time.perf_counter() - t0
    instant = dt.datetime(2026, 11, 25, 23, 5, tzinfo=TZ)
    per_group = args.lamps // args.groups
    t0 = time.perf_counter()
    for name in names:  # lamps of one group share the group's decision unless one has its own override
        decision = plan.resolve(Target(name), instant)
        for lamp in range(per_group):
            plan.active_override(Target(name, f"{name}-{lamp}"), instant) or decision
    catch_up_s = time.perf_counter() - t0
    print(f"24 h plan for {args.groups} groups: {transitions} transitions in {plan_s:.3f} s (goal < 1 s)")
    print(
        f"catch-up: levels of {args.lamps} lamps in {args.groups} groups at one instant: {catch_up_s:.3f} s"
    )


if __name__ == "__main__":
    main()
