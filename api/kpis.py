"""`GET /api/v1/kpis`: the tiles of the operations room — availability, faults, repairs, energy, uptime."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.access import Permission, allow
from api.energy import saving_pct, totals
from controller.runtime import Controller

router = APIRouter(prefix="/api/v1", tags=["map"], dependencies=[allow(Permission.READ)])
MTTR_DAYS = 30


class LampKpis(BaseModel):
    total: int
    available_pct: float | None = Field(description="lamps answering (not offline, not unknown)")
    lit_now: int = Field(description="lamps whose last reading shows them lit")
    fault: int
    offline: int


class EnergyKpis(BaseModel):
    today_kwh: float
    today_baseline_kwh: float
    today_saving_pct: float | None
    month_kwh: float
    month_baseline_kwh: float
    month_saving_pct: float | None


class UptimeKpis(BaseModel):
    total: int
    up_pct: float | None = Field(
        description="reporting now: not offline and not under an open stale/offline alert"
    )


class Kpis(BaseModel):
    at: dt.datetime
    lamps: LampKpis
    faults_open: dict[str, int] = Field(description="open alerts by kind")
    mttr_hours: float | None = Field(
        description=f"mean time to repair, alerts cleared in the last {MTTR_DAYS} days"
    )
    energy: EnergyKpis
    sensors: UptimeKpis
    access_points: UptimeKpis


@router.get("/kpis", response_model=Kpis, summary="Key figures for the operations room")
async def kpis(request: Request) -> Kpis:
    ctl: Controller = request.app.state.controller
    now = dt.datetime.now(dt.UTC)
    rows = list(ctl.devices.values())
    lamps = [r for r in rows if r.kind == "lamp"]
    states = Counter(ctl.fleet[r.id].state for r in lamps)
    lit = 0
    for r in lamps:
        values = (ctl.fleet[r.id].last_reading_doc() or {}).get("values", {})
        lit += bool(values.get("lamp_on")) and float(values.get("power_w") or 0) > 2.0
    open_alerts = await ctl.open_alerts()
    by_kind = Counter(kind for _, kind in open_alerts)
    silent = {
        d for d, kind in open_alerts if kind in ("sensorStale", "accessPointOffline", "communicationFailure")
    }
    repairs = await ctl.alert_store.repair_hours(now - dt.timedelta(days=MTTR_DAYS))
    tz = ctl.settings.sites[0].timezone if ctl.settings.sites else "UTC"
    local = now.astimezone(ZoneInfo(tz))  # "today" and "this month" in the (first) site's time zone
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    today = await totals(ctl, lamps, midnight, now)
    month = await totals(ctl, lamps, month_start, now)
    answering = len(lamps) - states["offline"] - states["unknown"]
    return Kpis(
        at=now,
        lamps=LampKpis(
            total=len(lamps),
            available_pct=round(100 * answering / len(lamps), 2) if lamps else None,
            lit_now=lit,
            fault=states["fault"],
            offline=states["offline"],
        ),
        faults_open=dict(sorted(by_kind.items())),
        mttr_hours=round(statistics.fmean(repairs), 4) if repairs else None,
        energy=EnergyKpis(
            today_kwh=round(today[0], 3),
            today_baseline_kwh=round(today[1], 3),
            today_saving_pct=saving_pct(*today),
            month_kwh=round(month[0], 3),
            month_baseline_kwh=round(month[1], 3),
            month_saving_pct=saving_pct(*month),
        ),
        sensors=_uptime(ctl, "sensor", silent),
        access_points=_uptime(ctl, "access_point", silent),
    )


def _uptime(ctl: Controller, kind: str, silent: set[str]) -> UptimeKpis:
    ids = [r.id for r in ctl.devices.values() if r.kind == kind]
    up = sum(1 for d in ids if ctl.fleet[d].state not in ("offline", "unknown") and d not in silent)
    return UptimeKpis(total=len(ids), up_pct=round(100 * up / len(ids), 2) if ids else None)
