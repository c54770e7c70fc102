"""Energy: kWh per lamp, group and day from the telemetry store, against a dusk-to-dawn baseline."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api.access import Permission, allow
from api.errors import ApiError, ErrorBody
from api.heavy import heavy_work
from api.params import parse_every, time_range
from controller.registry import DeviceRow
from controller.runtime import Controller
from schedules.astro import AstroClock
from schedules.inputs import Instant

router = APIRouter(prefix="/api/v1", tags=["energy"], dependencies=[allow(Permission.READ)])
MAX_WINDOWS = 400
MAX_SPAN = dt.timedelta(days=366)
MAX_CELLS = 500_000  # lamps × windows read from the store and summed
MAX_PER_LAMP_CELLS = 50_000  # … and returned one by one


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


class EnergyOut(BaseModel):
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


@router.get(
    "/energy",
    response_model=EnergyOut,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Energy used by a group's lamps, per window, and the saving",
    description="kWh from each lamp's energy counter (the spread of `energy_wh` in each window), and "
    "the baseline: the lamp's rated power for every hour the sun is down (the same definition as "
    "`/api/v1/schedules/preview`). Windows start at local midnight of the group's site. "
    f"Limits: at most {MAX_WINDOWS} windows and {MAX_SPAN.days} days; lamps × windows at most "
    f"{MAX_CELLS:,}, and {MAX_PER_LAMP_CELLS:,} with `per_lamp` (else 422 `too_expensive`).",
)
async def energy(
    request: Request,
    group: Annotated[str, Query(max_length=300, description="group path; includes its sub-groups")],
    start: Annotated[Instant | None, Query(alias="from", description="default: 7 days before `to`")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="default: now")] = None,
    every: Annotated[str, Query(max_length=20, description="window: 1h, 1d, 7d …")] = "1d",
    per_lamp: Annotated[bool, Query(description="each lamp's windows too (false: group totals only)")] = True,
) -> Response:
    ctl: Controller = request.app.state.controller
    lamps = [
        row
        for row in ctl.devices.values()
        if row.kind == "lamp"
        and (row.group_path == group or row.group_path.startswith(group.rstrip("/") + "/"))
    ]
    if not lamps:
        raise ApiError(404, "not_found", f"no lamps in group {group!r}")
    start, end = time_range(start, end, default_span=dt.timedelta(days=7), max_span=MAX_SPAN)
    every_s = parse_every(every)
    windows_n = math.ceil((end - start).total_seconds() / every_s) + 1
    if windows_n > MAX_WINDOWS:
        raise ApiError(400, "too_many_windows", f"at most {MAX_WINDOWS} windows; choose a larger `every`")
    cells, cap = len(lamps) * windows_n, MAX_PER_LAMP_CELLS if per_lamp else MAX_CELLS
    if cells > cap:
        raise ApiError(
            422,
            "too_expensive",
            f"{len(lamps)} lamps × {windows_n} windows is more than {cap:,} figures"
            + ("; ask per_lamp=false for the group's totals" if per_lamp and cells <= MAX_CELLS else "")
            + "; or choose a smaller group, a shorter span or a larger `every`",
        )
    sites = {s.id: s for s in ctl.settings.sites}
    clocks = {s.id: AstroClock(s.latitude, s.longitude, s.timezone) for s in sites.values()}
    site_tz = clocks[lamps[0].site_id].tz
    offset_s = -(start.astimezone(site_tz).utcoffset() or dt.timedelta()).total_seconds()
    first = dt.datetime.fromtimestamp((start.timestamp() - offset_s) // every_s * every_s + offset_s, dt.UTC)
    used = await ctl.store.energy([r.id for r in lamps], first, end, every_s, offset_s)
    return await heavy_work(request).json(
        lambda: _table(group, lamps, clocks, used, first, end, every_s, per_lamp=per_lamp)
    )


def _table(
    group: str,
    lamps: list[DeviceRow],
    clocks: dict[str, AstroClock],
    used: dict[str, dict[dt.datetime, float]],
    first: dt.datetime,
    end: dt.datetime,
    every_s: float,
    *,
    per_lamp: bool,
) -> EnergyOut:
    """The answer, from the counters' spreads (`used`: lamp → window start → Wh). Runs off the loop."""
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
                        start=w, kwh=round(kwh, 4), baseline_kwh=round(base, 4), saving_pct=_saving(kwh, base)
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
                    saving_pct=_saving(kwh_sum, base_sum),
                    windows=out,
                )
            )
    kwh_all = sum(v[0] for v in totals.values())
    base_all = sum(v[1] for v in totals.values())
    return EnergyOut(
        group=group,
        start=first,
        end=end,
        every_s=every_s,
        lamps=len(lamps),
        kwh=round(kwh_all, 4),
        baseline_kwh=round(base_all, 4),
        saving_pct=_saving(kwh_all, base_all),
        windows=[
            EnergyWindow(start=w, kwh=round(k, 4), baseline_kwh=round(b, 4), saving_pct=_saving(k, b))
            for w, (k, b) in totals.items()
        ],
        per_lamp=out_lamps,
    )


def _saving(kwh: float, baseline: float) -> float | None:
    return round(100 * (1 - kwh / baseline), 1) if baseline > 0 else None


async def totals(
    ctl: Controller, lamps: list[DeviceRow], start: dt.datetime, end: dt.datetime
) -> tuple[float, float]:
    """(kWh used, dusk-to-dawn baseline kWh) of these lamps over [start, end), as one window."""
    if not lamps or end <= start:
        return 0.0, 0.0
    span = (end - start).total_seconds()
    used = await ctl.store.energy([r.id for r in lamps], start, end, span, start.timestamp() % span)
    clocks = {s.id: AstroClock(s.latitude, s.longitude, s.timezone) for s in ctl.settings.sites}
    dark = {site: clock.dark_hours(start, end) for site, clock in clocks.items()}
    kwh = sum(sum(v.values()) for v in used.values()) / 1000
    baseline = sum((r.rated_power_w or 0.0) * dark.get(r.site_id, 0.0) for r in lamps) / 1000
    return kwh, baseline


def saving_pct(kwh: float, baseline: float) -> float | None:
    return _saving(kwh, baseline)
