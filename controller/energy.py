"""Energy: kWh from each lamp's energy counter (the spread of `energy_wh` in a window) against a
baseline — the lamp's rated power for every hour the sun is down (the same definition as the
schedule preview's). Windows start at local midnight of the group's site.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from controller.registry import DeviceRow
from controller.telemetry import TelemetryStore
from schedules.astro import AstroClock


class EnergyWindow(BaseModel):
    start: dt.datetime
    kwh: float
    baseline_kwh: float = Field(description="the same lamps at full rated power while the sun is down")
    saving_pct: float | None


class LampEnergy(BaseModel):
    device_id: str
    kwh: float
    baseline_kwh: float
    saving_pct: float | None
    windows: list[EnergyWindow]


class EnergyReport(BaseModel):
    group: str
    start: dt.datetime
    end: dt.datetime
    every_s: float
    lamps: int
    kwh: float
    baseline_kwh: float
    saving_pct: float | None
    windows: list[EnergyWindow] = Field(description="the group's totals per window")
    per_lamp: list[LampEnergy] = Field(description="empty with per_lamp=false")


def first_window(start: dt.datetime, every_s: float, tz: ZoneInfo) -> tuple[dt.datetime, float]:
    """The start of the window `start` falls in, aligned to local midnight in `tz` (the site's),
    and the offset (s) the store groups by."""
    offset_s = -(start.astimezone(tz).utcoffset() or dt.timedelta()).total_seconds()
    first = dt.datetime.fromtimestamp((start.timestamp() - offset_s) // every_s * every_s + offset_s, dt.UTC)
    return first, offset_s


def energy_table(
    group: str,
    lamps: list[DeviceRow],
    clocks: Mapping[str, AstroClock],
    used: dict[str, dict[dt.datetime, float]],
    first: dt.datetime,
    end: dt.datetime,
    every_s: float,
    *,
    per_lamp: bool,
) -> EnergyReport:
    """The table, from the counters' spreads (`used`: lamp → window start → Wh). Costly for big
    groups: the API runs it in a worker thread."""
    step = dt.timedelta(seconds=every_s)
    windows = []
    t = first
    while t < end:
        windows.append(t)
        t += step
    dark = {
        (site, w): clock.dark_hours(w, min(w + step, end)) for site, clock in clocks.items() for w in windows
    }
    out_lamps = []
    totals = {w: [0.0, 0.0] for w in windows}
    for row in lamps:
        rated = row.rated_power_w or 0.0
        mine = used.get(row.id, {})
        out = []
        for w in windows:
            kwh = mine.get(w, 0.0) / 1000
            base = rated * dark[(row.site_id, w)] / 1000
            totals[w][0] += kwh
            totals[w][1] += base
            if per_lamp:
                out.append(
                    EnergyWindow(
                        start=w,
                        kwh=round(kwh, 4),
                        baseline_kwh=round(base, 4),
                        saving_pct=saving_pct(kwh, base),
                    )
                )
        if per_lamp:
            kwh_sum = sum(x.kwh for x in out)
            base_sum = sum(x.baseline_kwh for x in out)
            out_lamps.append(
                LampEnergy(
                    device_id=row.id,
                    kwh=round(kwh_sum, 4),
                    baseline_kwh=round(base_sum, 4),
                    saving_pct=saving_pct(kwh_sum, base_sum),
                    windows=out,
                )
            )
    kwh_all = sum(v[0] for v in totals.values())
    base_all = sum(v[1] for v in totals.values())
    return EnergyReport(
        group=group,
        start=first,
        end=end,
        every_s=every_s,
        lamps=len(lamps),
        kwh=round(kwh_all, 4),
        baseline_kwh=round(base_all, 4),
        saving_pct=saving_pct(kwh_all, base_all),
        windows=[
            EnergyWindow(start=w, kwh=round(k, 4), baseline_kwh=round(b, 4), saving_pct=saving_pct(k, b))
            for w, (k, b) in totals.items()
        ],
        per_lamp=out_lamps,
    )


def saving_pct(kwh: float, baseline: float) -> float | None:
    return round(100 * (1 - kwh / baseline), 1) if baseline > 0 else None


async def totals(
    store: TelemetryStore,
    clocks: Mapping[str, AstroClock],
    lamps: list[DeviceRow],
    start: dt.datetime,
    end: dt.datetime,
) -> tuple[float, float, int]:
    """(kWh used, dusk-to-dawn baseline kWh, lamps that reported) over [start, end), as one window.
    The baseline counts only the lamps that reported energy, so lamps without data never show as
    energy saved; with none, there is nothing to compare (0 lamps)."""
    if not lamps or end <= start:
        return 0.0, 0.0, 0
    span = (end - start).total_seconds()
    used = await store.energy([r.id for r in lamps], start, end, span, start.timestamp() % span)
    reported = [r for r in lamps if used.get(r.id)]
    dark = {site: clock.dark_hours(start, end) for site, clock in clocks.items()}
    kwh = sum(sum(v.values()) for v in used.values()) / 1000
    baseline = sum((r.rated_power_w or 0.0) * dark.get(r.site_id, 0.0) for r in reported) / 1000
    return kwh, baseline, len(reported)
