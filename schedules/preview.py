"""What a lamp or group will do over a period, and what it saves: the same `Plan.resolve` the runner uses."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from schedules.plan import Plan, Target, TimedStep


@dataclass(frozen=True)
class PreviewPoint:
    at: dt.datetime
    level: int
    cause: str


@dataclass(frozen=True)
class Preview:
    points: list[PreviewPoint]
    transitions: list[TimedStep]
    energy_kwh: float
    baseline_kwh: float  # the same lamps at full power from sunset to sunrise

    @property
    def saving_pct(self) -> float | None:
        """None when there is nothing to compare with (no dark hours in the span)."""
        return 100.0 * (1 - self.energy_kwh / self.baseline_kwh) if self.baseline_kwh else None


def preview(
    plan: Plan,
    target: Target,
    start: dt.datetime,
    end: dt.datetime,
    *,
    every: dt.timedelta = dt.timedelta(minutes=5),
    rated_power_w: float = 100.0,
    lamps: int = 1,
) -> Preview:
    """Sample the level every `every` (a step function: each sample holds until the next)."""
    if end <= start:
        raise ValueError("the preview must end after it starts")
    if every <= dt.timedelta(0):
        raise ValueError("`every` must be positive")
    points: list[PreviewPoint] = []
    energy_wh = baseline_wh = 0.0
    t = start
    while t < end:
        step_end = min(t + every, end)
        hours = (step_end - t) / dt.timedelta(hours=1)
        decision = plan.resolve(target, t)
        points.append(PreviewPoint(t, decision.level, decision.cause))
        energy_wh += decision.level / 100 * rated_power_w * lamps * hours
        baseline_wh += rated_power_w * lamps * plan.clock.dark_hours(t, step_end)
        t = step_end
    transitions = [_settled(plan, target, step) for step in plan.transitions(target, start, end)]
    return Preview(points, transitions, energy_wh / 1000, baseline_wh / 1000)


def _settled(plan: Plan, target: Target, step: TimedStep) -> TimedStep:
    """An override's end says "expires" (level -1, for the runner); show the level that follows."""
    if step.level >= 0:
        return step
    after = plan.resolve(target, step.at)
    return dataclasses.replace(step, level=after.level, cause=f"{step.cause}: back to {after.cause}")


def changes(current: Preview, draft: Preview) -> list[tuple[dt.datetime, int, int]]:
    """Where a draft differs from what is planned: (from when, level now planned, level drafted),
    once per stretch of difference. Both previews must be sampled alike."""
    out: list[tuple[dt.datetime, int, int]] = []
    previous: tuple[int, int] | None = None
    for now, then in zip(current.points, draft.points, strict=True):
        pair = (now.level, then.level)
        if pair != previous and now.level != then.level:
            out.append((now.at, now.level, then.level))
        previous = pair
    return out
