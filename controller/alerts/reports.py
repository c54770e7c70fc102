"""Citizen reports ("lamp out near here"): find the nearest lamps and check them against telemetry.

The verdict is `confirmed` (an open alert of the matching kind on a nearby lamp — the report is
linked to it), `not_confirmed` (every nearby lamp reported recently and looks as the report says it
should not), or `unknown` (no lamp nearby, or no fresh telemetry), always with the evidence.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.alerts.book import Alert
from controller.alerts.detectors import Expected
from controller.device import Device
from controller.fleet import DeviceStatus
from schedules.inputs import Number

ReportKind = Literal["lamp_out", "day_burning", "flickering"]
Verdict = Literal["confirmed", "not_confirmed", "unknown"]
#: open alerts that confirm each kind of report
CONFIRMING: dict[str, frozenset[str]] = {
    "lamp_out": frozenset(
        {"lampFailure", "driverFault", "relayFault", "communicationFailure", "lampPowerTooLow"}
    ),
    "day_burning": frozenset({"dayBurning"}),
    "flickering": frozenset({"cyclingLamp"}),
}
EARTH_RADIUS_M = 6_371_000.0
STANDBY_W = 2.0  # what an unlit controller may draw
NEAREST = 5


class ReportIn(BaseModel):
    """What the IOC forwards from a citizen."""

    model_config = ConfigDict(extra="forbid")

    kind: ReportKind = "lamp_out"
    latitude: Number = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: Number = Field(ge=-180, le=180, allow_inf_nan=False)
    radius_m: Number = Field(default=50, gt=0, le=500, description="how far from the point to look")
    reference: str | None = Field(default=None, max_length=200, description="the IOC's ticket id")
    description: str = Field(default="", max_length=2000)


@dataclass
class Assessment:
    verdict: Verdict
    reason: str
    lamps: list[dict[str, Any]] = field(default_factory=list)
    alert_ids: list[int] = field(default_factory=list)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine); street-scale accuracy is plenty."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def nearest_lamps(report: ReportIn, devices: Iterable[Device]) -> list[tuple[Device, float]]:
    near = [
        (row, d)
        for row in devices
        if row.kind == "lamp"
        and (d := distance_m(report.latitude, report.longitude, row.latitude, row.longitude))
        <= report.radius_m
    ]
    return sorted(near, key=lambda x: x[1])[:NEAREST]


def assess(
    report: ReportIn,
    near: list[tuple[Device, float]],
    states: Mapping[str, DeviceStatus],
    open_alerts: Iterable[Alert],
    expected: Mapping[str, Expected],
    now: dt.datetime,
) -> Assessment:
    if not near:
        return Assessment("unknown", f"no lamp within {report.radius_m:g} m of the reported point")
    alerts_by_lamp: dict[str, list[Alert]] = {}
    for a in open_alerts:
        alerts_by_lamp.setdefault(a.device_id, []).append(a)
    lamps: list[dict[str, Any]] = []
    linked: list[Alert] = []
    notes: dict[str, list[str]] = {"confirms": [], "contradicts": [], "no data": []}
    for row, dist in near:
        st = states.get(row.id)
        alerts = alerts_by_lamp.get(row.id, [])
        matching = [a for a in alerts if a.kind in CONFIRMING[report.kind]]
        linked += matching
        finding, note = _check_lamp(report.kind, row, st, matching, expected.get(row.id, Expected()), now)
        notes[finding].append(f"{row.id} {note}")
        values = ((st.last_reading_doc() if st else None) or {}).get("values", {})
        lamps.append(
            {
                "device_id": row.id,
                "distance_m": round(dist, 1),
                "finding": finding,
                "note": note,
                "state": st.state if st else "unknown",
                "last_seen": st.last_seen.isoformat() if st and st.last_seen else None,
                "lamp_on": values.get("lamp_on"),
                "power_w": values.get("power_w"),
                "dim_level_pct": values.get("dim_level_pct"),
                "open_alerts": [a.kind for a in alerts],
            }
        )
    if notes["confirms"]:
        return Assessment("confirmed", "; ".join(notes["confirms"]), lamps, [a.id for a in linked if a.id])
    if len(notes["contradicts"]) == len(near):
        return Assessment("not_confirmed", "; ".join(notes["contradicts"]), lamps)
    return Assessment("unknown", "; ".join(notes["no data"] + notes["contradicts"]), lamps)


def _check_lamp(
    kind: ReportKind,
    row: Device,
    st: DeviceStatus | None,
    matching: list[Alert],
    asked: Expected,
    now: dt.datetime,
) -> tuple[Literal["confirms", "contradicts", "no data"], str]:
    """What one lamp's alerts and latest reading say about the report, and why."""
    if matching:
        return "confirms", "has open alert " + ", ".join(a.kind for a in matching)
    if st is None or st.last_seen is None:
        return "no data", "has never reported"
    age = (now - st.last_seen).total_seconds()
    if age > max(3 * row.poll_interval_s, 60):
        return "no data", f"last reported {age:.0f} s ago"
    values = st.last_values()
    lit = bool(values.get("lamp_on")) and float(values.get("power_w") or 0) > STANDBY_W
    asked_lit = bool(asked.on) and bool(asked.level if asked.level is not None else 100)
    if kind == "flickering":
        return "contradicts", "reports a steady state"
    if kind == "lamp_out":
        if lit:
            return "contradicts", f"reports lit ({values.get('power_w', 0):.0f} W) just now"
        if asked_lit:
            return "confirms", f"reports dark though asked for {asked.level} %"
        return "contradicts", "is off as asked (nothing asks for light now)"
    if not lit:
        return "contradicts", "reports dark just now"
    if asked_lit:
        return "contradicts", f"is lit as asked ({asked.level} %)"
    return "confirms", "reports lit though nothing asks for light"
