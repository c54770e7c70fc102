"""`GET /api/v1/wifi`: the public Wi-Fi service of a group — per access point and window, peak and
mean associated clients, data carried, availability; the group's totals and busiest places."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.access import Permission, allow
from api.deps import Heavy, Service
from api.errors import ApiError, ErrorBody
from api.params import parse_every, time_range
from controller.device import Device
from controller.energy import first_window
from controller.service import ControllerService
from controller.wifi_figures import WifiReport, hour_figures, wifi_report
from schedules.inputs import Instant

router = APIRouter(prefix="/api/v1", tags=["wifi"], dependencies=[allow(Permission.READ)])
MAX_SPAN = dt.timedelta(days=93)
MAX_WINDOWS = 400
#: access points × hours read from the store for one answer
MAX_AP_HOURS = 250_000
HOUR_S = 3600.0


@router.get(
    "/wifi",
    response_model=WifiReport,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Public Wi-Fi of a group: clients, data, availability, busiest places",
    description="Per access point and window (starting at the site's local midnight): peak and mean "
    "associated clients, data carried (MB, from the hourly mean of received plus sent throughput) "
    "and availability (the share of time without an `accessPointOffline` alert); evenings an access "
    "point was up and served no one (`idle_evenings`: a dead radio behind a live link?); the group's totals "
    f"and its ten busiest access points. At most {MAX_SPAN.days} days, {MAX_WINDOWS} windows and "
    f"{MAX_AP_HOURS:,} access-point hours a request (else 422).",
)
async def wifi(
    service: Service,
    heavy: Heavy,
    group: Annotated[str, Query(max_length=300, description="group path; includes its sub-groups")],
    start: Annotated[Instant | None, Query(alias="from", description="default: 7 days before `to`")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="default: now")] = None,
    every: Annotated[str, Query(max_length=20, description="window: 1h, 1d, 7d … (at least an hour)")] = "1d",
) -> Response:
    aps = service.rows("access_point", group)
    if not aps:
        raise ApiError(404, "not_found", f"no access points in group {group!r}")
    start, end = time_range(start, end, default_span=dt.timedelta(days=7), max_span=MAX_SPAN)
    every_s = max(parse_every(every), HOUR_S)
    first, _ = first_window(start, every_s, service.clocks[aps[0].site_id].tz)
    windows = [
        first + dt.timedelta(seconds=every_s * i)
        for i in range(math.ceil((end - first).total_seconds() / every_s))
    ]
    if len(windows) > MAX_WINDOWS:
        raise ApiError(400, "too_many_windows", f"at most {MAX_WINDOWS} windows; choose a larger `every`")
    hours_n = math.ceil((end - first).total_seconds() / HOUR_S)
    if len(aps) * hours_n > MAX_AP_HOURS:
        raise ApiError(
            422, "too_expensive", f"{len(aps)} access points × {hours_n} hours: a smaller group or span"
        )
    return await heavy.json(await wifi_builder(service, group, aps, first, end, windows))


async def wifi_builder(
    service: ControllerService,
    group: str,
    aps: list[Device],
    first: dt.datetime,
    end: dt.datetime,
    windows: list[dt.datetime],
) -> Callable[[], WifiReport]:
    """Read what the report needs (hourly aggregates, offline alerts); the report is built by the
    returned function, in a worker thread."""
    hours_n = math.ceil((end - first).total_seconds() / HOUR_S)
    hours = {}
    for ap in aps:
        means = await service.telemetry(
            ap.id,
            first,
            end,
            fields=["clients", "rx_kbps", "tx_kbps"],
            aggregate="mean",
            every_s=HOUR_S,
            limit=hours_n + 2,
        )
        peaks = await service.telemetry(
            ap.id, first, end, fields=["clients"], aggregate="max", every_s=HOUR_S, limit=hours_n + 2
        )
        hours[ap.id] = hour_figures([(p.ts, p.values) for p in means], [(p.ts, p.values) for p in peaks])
    offline: dict[str, list[tuple[dt.datetime, dt.datetime | None]]] = defaultdict(list)
    for device, kind, up, down in await service.alert_store.between(group, first, end):
        if kind == "accessPointOffline":
            offline[device].append((up, down))
    pairs = [(ap.id, ap.group_path) for ap in aps]
    tz = service.clocks[aps[0].site_id].tz
    return lambda: wifi_report(group, pairs, hours, offline, windows, end, tz)
