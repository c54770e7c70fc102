"""`GET /api/v1/monthly-report`: a group's month — energy and saving per day (from meters where it
has some), burning hours, availability, faults and repair times — as JSON, CSV or a spreadsheet."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.access import Permission, allow
from api.deps import Heavy, Service
from api.errors import ApiError, ErrorBody
from api.report_files import to_csv, to_xlsx
from api.wifi import MAX_AP_HOURS, wifi_builder
from controller.energy import energy_table, first_window, metering
from controller.monthly_report import MonthlyReport, assemble, month_span
from controller.wifi_figures import WifiSummary
from controller.words import Language

router = APIRouter(prefix="/api/v1", tags=["energy"], dependencies=[allow(Permission.READ)])
#: lamps × days read and summed for one report
MAX_LAMP_DAYS = 500_000
DAY_S = 86_400.0
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/monthly-report",
    response_model=MonthlyReport,
    responses={
        200: {"content": {"text/csv": {}, XLSX: {}}},
        400: {"model": ErrorBody},
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
    },
    summary="A group's month: energy, saving, burning hours, availability, faults",
    description="Days are the group's site's (local midnight to midnight); a month still running ends "
    "now. Energy from the group's cabinet/feeder meters where it has some, else its lamps' counters "
    "(`source`). `format=csv`: the days and the month's total; `format=xlsx`: summary, days and "
    f"faults sheets (and Wi-Fi, when the group has access points); headings in `lang`. At most "
    f"{MAX_LAMP_DAYS:,} lamp-days and {MAX_AP_HOURS:,} access-point hours (else 422).",
)
async def monthly_report(
    service: Service,
    heavy: Heavy,
    group: Annotated[str, Query(max_length=300, description="group path; includes its sub-groups")],
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")],
    format: Literal["json", "csv", "xlsx"] = "json",
    lang: Language = "vi",
) -> Response:
    lamps = service.lamps(group)
    if not lamps:
        raise ApiError(404, "not_found", f"no lamps in group {group!r}")
    clock = service.clocks[lamps[0].site_id]
    try:
        start, end = month_span(month, clock.tz, dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise ApiError(400, "invalid_month", str(exc)) from None
    aps = service.rows("access_point", group)
    if len(lamps) * 31 > MAX_LAMP_DAYS or len(aps) * 31 * 24 > MAX_AP_HOURS:
        raise ApiError(
            422,
            "too_expensive",
            f"{len(lamps)} lamps and {len(aps)} access points over a month: choose a smaller group",
        )
    meter_rows = service.rows("meter", group)
    meters = metering(meter_rows, lamps)
    first, offset_s = first_window(start, DAY_S, clock.tz)
    counters = lamps + [m for m in meter_rows if m.id in meters]
    used = await service.energy_used(counters, first, end, DAY_S, offset_s)
    covered = await service.energy_reported(counters, first, end)
    burning = await service.energy_used(lamps, first, end, DAY_S, offset_s, counter="burning_hours_h")
    spans = await service.alert_store.between(group, start, end)
    clocks = service.clocks
    wifi = await wifi_builder(service, group, aps, first, end, [first]) if aps else None

    def build() -> MonthlyReport:
        table = energy_table(
            group, lamps, clocks, used, first, end, DAY_S, per_lamp=False, meters=meters, covered=covered
        )
        return assemble(
            group, month, clock.tz, lamps, table, burning, spans, WifiSummary.of(wifi()) if wifi else None
        )

    if format == "json":
        return await heavy.json(build)
    name = "lamplighter-" + re.sub(r"[^A-Za-z0-9_.-]", "_", group.strip("/")) + f"-{month}"
    if format == "csv":
        body = await heavy.run(lambda: to_csv(build(), lang))
        media = "text/csv; charset=utf-8"
    else:
        body = await heavy.run(lambda: to_xlsx(build(), lang))
        media = XLSX
    headers = {"Content-Disposition": f'attachment; filename="{name}.{format}"'}
    return Response(body, media_type=media, headers=headers)
