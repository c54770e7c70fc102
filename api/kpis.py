"""`GET /api/v1/kpis`: the tiles of the operations room — availability, faults, repairs, energy, uptime."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.access import Permission, allow
from api.deps import Service
from controller.energy import EnergySource, saving_pct
from controller.faults import DARKENING
from controller.service import ControllerService
from controller.vocabulary import DeviceKind

router = APIRouter(prefix="/api/v1", tags=["map"], dependencies=[allow(Permission.READ)])
MTTR_DAYS = 30


class LampKpis(BaseModel):
    total: int
    available_pct: float | None = Field(
        description="lamps that work: answering, not in fault, and with no open alert that stops their "
        f"light ({', '.join(sorted(DARKENING))}), out of all lamps"
    )
    answering_pct: float | None = Field(description="lamps answering (not offline, not unknown)")
    lit_now: int = Field(description="lamps whose last reading shows them lit")
    fault: int
    offline: int


class EnergyKpis(BaseModel):
    today_kwh: float | None = Field(description="measured since midnight, site time; null: no lamp reported")
    today_baseline_kwh: float | None = Field(
        description="the lamps that reported, at full power from dusk to dawn"
    )
    today_saving_pct: float | None = Field(description="null: nothing to compare (no data, or no dark hours)")
    today_lamps_reporting: int
    month_kwh: float | None
    month_baseline_kwh: float | None
    month_saving_pct: float | None
    month_lamps_reporting: int
    today_source: EnergySource = Field(description="meters (cabinet/feeder), lamps (their counters) or both")
    month_source: EnergySource


class UptimeKpis(BaseModel):
    total: int
    up_pct: float | None = Field(
        description="reporting now: not offline and not under an open stale/offline alert"
    )


class WifiKpis(UptimeKpis):
    clients_now: int | None = Field(
        description="associated clients, summed over the access points that are up; null: none reports"
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
    access_points: WifiKpis


@router.get("/kpis", response_model=Kpis, summary="Key figures for the operations room")
async def kpis(service: Service) -> Kpis:
    now = dt.datetime.now(dt.UTC)
    lamps = service.lamps()
    statuses = service.statuses()
    states = Counter(statuses[r.id].state for r in lamps)
    lit = 0
    for r in lamps:
        values = statuses[r.id].last_values()
        lit += bool(values.get("lamp_on")) and float(values.get("power_w") or 0) > 2.0
    open_alerts = await service.open_alerts()
    by_kind = Counter(kind for _, kind in open_alerts)
    silent = {
        d for d, kind in open_alerts if kind in ("sensorStale", "accessPointOffline", "communicationFailure")
    }
    repairs = await service.alert_store.repair_hours(now - dt.timedelta(days=MTTR_DAYS))
    tz = service.sites[0].timezone if service.sites else "UTC"
    local = now.astimezone(ZoneInfo(tz))  # "today" and "this month" in the (first) site's time zone
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    meters = service.rows("meter")
    today = await service.energy_totals(lamps, midnight, now, meters)
    month = await service.energy_totals(lamps, month_start, now, meters)
    answering = len(lamps) - states["offline"] - states["unknown"]
    dark = {d for d, kind in open_alerts if kind in DARKENING}
    working = sum(1 for r in lamps if statuses[r.id].state == "ok" and r.id not in dark)
    return Kpis(
        at=now,
        lamps=LampKpis(
            total=len(lamps),
            available_pct=round(100 * working / len(lamps), 2) if lamps else None,
            answering_pct=round(100 * answering / len(lamps), 2) if lamps else None,
            lit_now=lit,
            fault=states["fault"],
            offline=states["offline"],
        ),
        faults_open=dict(sorted(by_kind.items())),
        mttr_hours=round(statistics.fmean(repairs), 4) if repairs else None,
        energy=EnergyKpis(
            today_kwh=round(today[0], 3) if today[2] else None,
            today_baseline_kwh=round(today[1], 3) if today[2] else None,
            today_saving_pct=saving_pct(today[0], today[1]) if today[2] else None,
            today_lamps_reporting=today[2],
            month_kwh=round(month[0], 3) if month[2] else None,
            month_baseline_kwh=round(month[1], 3) if month[2] else None,
            month_saving_pct=saving_pct(month[0], month[1]) if month[2] else None,
            month_lamps_reporting=month[2],
            today_source=today[3],
            month_source=month[3],
        ),
        sensors=_uptime(service, "sensor", silent),
        access_points=_wifi(service, silent),
    )


def _uptime(service: ControllerService, kind: DeviceKind, silent: set[str]) -> UptimeKpis:
    devices = service.find(kind=kind)
    up = sum(1 for d in devices if d.status.state not in ("offline", "unknown") and d.row.id not in silent)
    return UptimeKpis(total=len(devices), up_pct=round(100 * up / len(devices), 2) if devices else None)


def _wifi(service: ControllerService, silent: set[str]) -> WifiKpis:
    uptime = _uptime(service, "access_point", silent)
    counts = [
        int(c)
        for d in service.find(kind="access_point")
        if d.status.state not in ("offline", "unknown")
        and d.row.id not in silent
        and isinstance(c := d.status.last_values().get("clients"), int | float)
        and not isinstance(c, bool)
    ]
    return WifiKpis(**uptime.model_dump(), clients_now=sum(counts) if counts else None)
