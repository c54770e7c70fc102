"""Energy: kWh per lamp, group and day from the telemetry store, against a dusk-to-dawn baseline."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.access import Permission, allow
from api.deps import Heavy, Service
from api.errors import ApiError, ErrorBody
from api.params import parse_every, time_range
from controller.energy import EnergyReport, energy_table, first_window, metering
from schedules.inputs import Instant

router = APIRouter(prefix="/api/v1", tags=["energy"], dependencies=[allow(Permission.READ)])
MAX_WINDOWS = 400
MAX_SPAN = dt.timedelta(days=366)
MAX_CELLS = 500_000  # lamps × windows read from the store and summed
MAX_PER_LAMP_CELLS = 50_000  # … and returned one by one


@router.get(
    "/energy",
    response_model=EnergyReport,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Energy used by a group's lamps, per window, and the saving",
    description="kWh from the energy counters (the spread of `energy_wh` in each window): a cabinet or "
    "feeder meter's (`kind = meter`) for the lamps of its group and below, else each lamp's own; "
    "`source` and `meters` say which. The baseline: the lamps' rated power for every hour the sun "
    "is down (the same definition as `/api/v1/schedules/preview`). Windows start at local "
    "midnight of the group's site. "
    f"Limits: at most {MAX_WINDOWS} windows and {MAX_SPAN.days} days; lamps × windows at most "
    f"{MAX_CELLS:,}, and {MAX_PER_LAMP_CELLS:,} with `per_lamp` (else 422 `too_expensive`).",
)
async def energy(
    service: Service,
    heavy: Heavy,
    group: Annotated[str, Query(max_length=300, description="group path; includes its sub-groups")],
    start: Annotated[Instant | None, Query(alias="from", description="default: 7 days before `to`")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="default: now")] = None,
    every: Annotated[str, Query(max_length=20, description="window: 1h, 1d, 7d …")] = "1d",
    per_lamp: Annotated[bool, Query(description="each lamp's windows too (false: group totals only)")] = True,
) -> Response:
    lamps = service.lamps(group)
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
    clocks = service.clocks
    first, offset_s = first_window(start, every_s, clocks[lamps[0].site_id].tz)
    meters = metering(service.rows("meter", group), lamps)
    counters = lamps + [m for m in service.rows("meter", group) if m.id in meters]
    used = await service.energy_used(counters, first, end, every_s, offset_s)
    covered = await service.energy_reported(counters, first, end)
    return await heavy.json(
        lambda: energy_table(
            group, lamps, clocks, used, first, end, every_s, per_lamp=per_lamp, meters=meters, covered=covered
        )
    )
