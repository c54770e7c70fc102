"""Energy: kWh from the counters (the spread of `energy_wh` in a window) against a baseline — the
lamps' rated power for every hour the sun is down (the same definition as the schedule preview's).
Windows start at local midnight of the group's site.

Where a cabinet or feeder meter (`kind = "meter"`) sits in a group, its counter is the truth for
the lamps of that group and below: they are counted by the meter, not by their own counters (a
meter also sees what the controllers and cables draw). Of meters nested in each other's groups
only the outermost counts, so no kWh is counted twice. Each figure says which source it used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from controller.device import Device
from controller.groups import in_group
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


#: where a kWh figure comes from: cabinet meters, the lamps' own counters, or both (some lamps metered)
EnergySource = Literal["meters", "lamps", "meters+lamps"]


class EnergyReport(BaseModel):
    group: str
    source: EnergySource = Field(
        description="meters: the group's cabinet/feeder meters; lamps: the lamps' counters"
    )
    meters: list[str] = Field(description="the meters counted (their lamps' own counters are not)")
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


def metering(meters: Sequence[Device], lamps: Sequence[Device]) -> dict[str, list[Device]]:
    """The meters that count (the outermost), each with the lamps it meters."""
    outer = [
        m for m in meters if not any(o is not m and in_group(m.group_path, o.group_path) for o in meters)
    ]
    return {m.id: [r for r in lamps if in_group(r.group_path, m.group_path)] for m in outer}


def source_of(metered: int, unmetered: int) -> EnergySource:
    return "lamps" if not metered else "meters" if not unmetered else "meters+lamps"


def energy_table(
    group: str,
    lamps: list[Device],
    clocks: Mapping[str, AstroClock],
    used: dict[str, dict[dt.datetime, float]],
    first: dt.datetime,
    end: dt.datetime,
    every_s: float,
    *,
    per_lamp: bool,
    meters: Mapping[str, list[Device]] | None = None,
    covered: Mapping[str, tuple[dt.datetime, dt.datetime]] | None = None,
) -> EnergyReport:
    """The table, from the counters' spreads (`used`: device → window start → Wh; the meters'
    too, `meters` from `metering`). `covered`: each counter's first and last reading in the range —
    a window's baseline covers only that span (a controller started at noon claims no saving for
    the morning). Costly for big groups: the API runs it in a worker thread."""
    meters = meters or {}
    counter_of = {r.id: m for m, rows in meters.items() for r in rows}
    step = dt.timedelta(seconds=every_s)
    windows = []
    t = first
    while t < end:
        windows.append(t)
        t += step
    dark_cache: dict[tuple[str, dt.datetime, dt.datetime], float] = {}

    def dark(site: str, a: dt.datetime, b: dt.datetime) -> float:
        key = (site, a, b)
        if key not in dark_cache:
            clock = clocks.get(site)
            dark_cache[key] = clock.dark_hours(a, b) if clock is not None and a < b else 0.0
        return dark_cache[key]

    out_lamps = []
    totals = {w: [0.0, 0.0] for w in windows}
    for row in lamps:
        rated = row.rated_power_w or 0.0
        mine = used.get(row.id, {})
        counter = counter_of.get(row.id, row.id)
        counted = used.get(counter, {})
        seen_from, seen_to = covered[counter] if covered and counter in covered else (first, end)
        out = []
        for w in windows:
            kwh = mine.get(w, 0.0) / 1000
            # no saving is claimed for a window, or the part of one, its counter did not report in
            span = (max(w, seen_from), min(w + step, end, seen_to))
            base = rated * dark(row.site_id, *span) / 1000 if w in counted else 0.0
            totals[w][0] += 0.0 if row.id in counter_of else kwh
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
    for meter in meters:
        for w, wh in used.get(meter, {}).items():
            if w in totals:
                totals[w][0] += wh / 1000
    kwh_all = sum(v[0] for v in totals.values())
    base_all = sum(v[1] for v in totals.values())
    return EnergyReport(
        group=group,
        source=source_of(len(counter_of), len(lamps) - len(counter_of)),
        meters=sorted(meters),
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
    lamps: list[Device],
    start: dt.datetime,
    end: dt.datetime,
    meters: Sequence[Device] = (),
) -> tuple[float, float, int, EnergySource]:
    """(kWh used, baseline kWh, lamps counted, source) over [start, end), as one window.

    The baseline covers what the energy figure covers: each lamp's rated power over the dark hours
    between the first and last energy reading in the window of its counter (its meter's, or its
    own). A controller started at noon does not claim a night's saving it never measured, and
    lamps without data count for nothing."""
    if not lamps or end <= start:
        return 0.0, 0.0, 0, "lamps"
    metered = metering(meters, lamps)
    by_meter = {r.id: m for m, rows in metered.items() for r in rows}
    own = [r.id for r in lamps if r.id not in by_meter]
    ids = own + list(metered)
    span = (end - start).total_seconds()
    used = await store.energy(ids, start, end, span, start.timestamp() % span)
    covered = await store.reported(ids, start, end)
    kwh = sum(sum(v.values()) for v in used.values()) / 1000
    dark: dict[tuple[str, dt.datetime, dt.datetime], float] = {}  # lamps mostly share a span
    baseline_wh = 0.0
    reporting = counted_by_meter = 0
    for r in lamps:
        counter = by_meter.get(r.id, r.id)
        if counter not in covered or not used.get(counter):
            continue
        reporting += 1
        counted_by_meter += counter != r.id
        first, last = (t.replace(second=0, microsecond=0) for t in covered[counter])
        key = (r.site_id, first, last)
        if key not in dark:
            clock = clocks.get(r.site_id)
            dark[key] = clock.dark_hours(first, last) if clock is not None else 0.0
        baseline_wh += (r.rated_power_w or 0.0) * dark[key]
    return kwh, baseline_wh / 1000, reporting, source_of(counted_by_meter, reporting - counted_by_meter)
