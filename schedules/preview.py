"""What a lamp or group will do over a period, and what it saves: the same `Plan.resolve` the runner uses."""

from __future__ import annotations

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
    def saving_pct(self) -> float:
        return 100.0 * (1 - self.energy_kwh / self.baseline_kwh) if self.baseline_kwh else 0.0


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
        if not plan.clock.is_daylight(t):
            baseline_wh += rated_power_w * lamps * hours
        t = step_end
    return Preview(points, list(plan.transitions(target, start, end)), energy_wh / 1000, baseline_wh / 1000)
