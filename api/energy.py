"""Energy: kWh per lamp, group and day from the telemetry store, against a dusk-to-dawn baseline."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.access import Permission, allow
from api.errors import ApiError, ErrorBody
from api.params import parse_every, utc
from controller.registry import DeviceRow
from controller.runtime import Controller
from schedules.astro import AstroClock

router = APIRouter(prefix="/api/v1", tags=["energy"], dependencies=[allow(Permission.READ)])
MAX_WINDOWS = 400


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
    per_lamp: list[LampEnergy]


@router.get(
    "/energy",
    response_model=EnergyOut,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
    summary="Energy used by a group's lamps, per window, and the saving",
    description="kWh from each lamp's energy counter (the spread of `energy_wh` in each window), and "
    "the baseline: the lamp's rated power for every hour the sun is down (the same definition as "
    "`/api/v1/schedules/preview`). Windows start at local midnight of the group's site.",
)
async def energy(
    request: Request,
    group: Annotated[str, Query(description="group path; includes its sub-groups")],
    start: Annotated[
        dt.datetime | None, Query(alias="from", description="default: 7 days before `to`")
    ] = None,
    end: Annotated[dt.datetime | None, Query(alias="to", description="default: now")] = None,
    every: Annotated[str, Query(description="window: 1h, 1d, 7d …")] = "1d",
) -> EnergyOut:
    ctl: Controller = request.app.state.controller
    lamps = [
        row
        for row in ctl.devices.values()
        if row.kind == "lamp"
        and (row.group_path == group or row.group_path.startswith(group.rstrip("/") + "/"))
    ]
    if not lamps:
        raise ApiError(404, "not_found", f"no lamps in group {group!r}")
    end = utc(end) if end else dt.datetime.now(dt.UTC)
    start = utc(start) if start else end - dt.timedelta(days=7)
    every_s = parse_every(every)
    if start >= end:
        raise ApiError(
            400, "invalid_range", f"`from` ({start.isoformat()}) must be before `to` ({end.isoformat()})"
        )
    if (end - start).total_seconds() / every_s > MAX_WINDOWS:
        raise ApiError(400, "too_many_windows", f"at most {MAX_WINDOWS} windows; choose a larger `every`")
    sites = {s.id: s for s in ctl.settings.sites}
    site = sites[lamps[0].site_id]
    clocks = {s.id: AstroClock(s.latitude, s.longitude, s.timezone) for s in sites.values()}
    offset_s = -(start.astimezone(clocks[site.id].tz).utcoffset() or dt.timedelta()).total_seconds()
    first = dt.datetime.fromtimestamp((start.timestamp() - offset_s) // every_s * every_s + offset_s, dt.UTC)
    used = await ctl.store.energy([r.id for r in lamps], first, end, every_s, offset_s)
    windows = []
    t = first
    while t < end:
        windows.append(t)
        t += dt.timedelta(seconds=every_s)
    dark: dict[tuple[str, dt.datetime], float] = {}
    per_lamp = []
    totals = {w: [0.0, 0.0] for w in windows}
    for row in lamps:
        rated = row.rated_power_w or 0.0
        out = []
        for w in windows:
            key = (row.site_id, w)
            if key not in dark:
                dark[key] = clocks[row.site_id].dark_hours(w, min(w + dt.timedelta(seconds=every_s), end))
            kwh = used.get(row.id, {}).get(w, 0.0) / 1000
            base = rated * dark[key] / 1000
            totals[w][0] += kwh
            totals[w][1] += base
            out.append(
                EnergyWindow(
                    start=w, kwh=round(kwh, 4), baseline_kwh=round(base, 4), saving_pct=_saving(kwh, base)
                )
            )
        kwh_sum = sum(x.kwh for x in out)
        base_sum = sum(x.baseline_kwh for x in out)
        per_lamp.append(
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
        per_lamp=per_lamp,
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
    dark = {site: clock.dark_hours(start, end, dt.timedelta(minutes=15)) for site, clock in clocks.items()}
    kwh = sum(sum(v.values()) for v in used.values()) / 1000
    baseline = sum((r.rated_power_w or 0.0) * dark.get(r.site_id, 0.0) for r in lamps) / 1000
    return kwh, baseline


def saving_pct(kwh: float, baseline: float) -> float | None:
    return _saving(kwh, baseline)
