"""The city's air, hour by hour: each air sensor's hourly index (VN_AQI or US EPA, `[air]`) from
the telemetry it stored, kept as telemetry itself (`air_quality_index`), each district's index (the
worst of its sensors'), and a district's alert when its air enters the alert level.

Once an hour, just after the hour: every sensor's last 12 hourly means are read from the store (the
NowCast's window) and its index computed; the instance that serves a sensor's link stores its index,
and the instance that serves a district's first sensor raises and clears the district's alert, so
that several instances sharing a city ([cluster]) neither write twice nor alert twice. Every instance
computes every sensor, so each one's API answers for the whole city. The reading path is not touched:
the index costs the ingest nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Collection, Mapping
from zoneinfo import ZoneInfo

from controller.air_figures import (
    INDEX_FIELD,
    AirFigure,
    DistrictAlarm,
    by_pollutant,
    district_of,
    hour_end,
    hourly_means,
    reliability,
)
from controller.air_index import NOWCAST_HOURS, POLLUTANT_FIELDS, IndexResult, hourly_index
from controller.air_settings import AirSettings
from controller.alerts.service import AlertService
from controller.device import Device
from controller.faults import FaultKind
from controller.metrics import ControllerMetrics
from controller.supervisor import CriticalSection
from controller.telemetry import TelemetryStore
from controller.words import say
from drivers.base import Reading

log = logging.getLogger(__name__)
#: sensors whose hours are read at once (each is one store query). Few: the hourly job is not
#: urgent, and 16 at once (with the run at start) took ~20 % off `make bench-mqtt`'s ingest rate,
#: the telemetry store's writes queued behind the queries; 2 keeps it within the noise.
CONCURRENCY = 2
ALERT_KIND: FaultKind = "airQuality"


def air_sensors(devices: Mapping[str, Device], fields_of: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Sensor id → the pollutant fields its profile maps (sensors that map none are not air sensors)."""
    out: dict[str, list[str]] = {}
    for device_id, row in devices.items():
        if row.kind != "sensor":
            continue
        fields = [f for f in fields_of.get(row.profile, ()) if f in POLLUTANT_FIELDS]
        if "pm2_5_ugm3" in fields or "pm10_ugm3" in fields:
            out[device_id] = fields
    return out


class AirWatch:
    def __init__(
        self,
        settings: AirSettings,
        store: TelemetryStore,
        devices: Mapping[str, Device],
        fields_of: Mapping[str, list[str]],
        owned: Collection[str],
        zones: Mapping[str, ZoneInfo],
        metrics: ControllerMetrics,
        alerts: AlertService | None = None,
        writes: CriticalSection | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.rows = devices
        self.zones = zones
        self.metrics = metrics
        self.alerts = alerts
        self.writes = writes or CriticalSection()
        self.fields = air_sensors(devices, fields_of)
        self.owned = {d for d in self.fields if d in owned}
        members: dict[str, list[str]] = defaultdict(list)
        for device_id in self.fields:
            members[district_of(devices[device_id].group_path, settings.district_depth)].append(device_id)
        self.members = {d: tuple(sorted(ids)) for d, ids in sorted(members.items())}
        #: the districts this instance alerts for: those whose first sensor it serves
        self.alerting = {d for d, ids in self.members.items() if ids[0] in self.owned}
        self.alarms = {d: DistrictAlarm.of(settings) for d in self.alerting}
        self.sensors: dict[str, AirFigure] = {}
        self.districts: dict[str, AirFigure] = {}
        self.last_end: dt.datetime | None = None

    async def start(self) -> None:
        """Take the districts' open alerts back (raised before a restart); clear those of districts
        that no longer exist."""
        if self.alerts is None:
            return
        for alert in await self.alerts.restore_areas(ALERT_KIND):
            if alert.device_id in self.alarms:
                self.alarms[alert.device_id].raised = True
            elif alert.device_id not in self.members:
                await self.alerts.area(alert.device_id, ALERT_KIND, None, site=alert.site, group=alert.group)

    async def run(self) -> None:
        """Each hour just after it ends (and at once on start, for the last complete hour)."""
        hour_s = self.settings.hour_s
        grace = min(30.0, hour_s / 8)  # readings of the hour's last seconds are still on their way
        while True:
            end = hour_end(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=grace), hour_s)
            if end != self.last_end:
                await self.compute(end)
            wake = end + dt.timedelta(seconds=hour_s + grace)
            await asyncio.sleep(max(0.05, (wake - dt.datetime.now(dt.UTC)).total_seconds()))

    async def compute(self, end: dt.datetime) -> None:
        """The index of the hour that ends at `end`, for every sensor and district; stored, alerted."""
        hour_s = self.settings.hour_s
        hour = end - dt.timedelta(seconds=hour_s)
        started = asyncio.get_running_loop().time()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(device_id: str) -> tuple[str, AirFigure, bool]:
            async with gate:
                means = await hourly_means(
                    self.store, device_id, [*self.fields[device_id], INDEX_FIELD], end, NOWCAST_HOURS, hour_s
                )
            stored = means.pop(INDEX_FIELD)[0] is not None  # computed before a restart
            hourly = by_pollutant(means)
            result = hourly_index(self.settings.index, hourly)
            figure = AirFigure(self.settings.index, hour, result, reliability(hourly, result.dominant))
            return device_id, figure, stored

        done = await asyncio.gather(*(one(d) for d in self.fields))
        self.sensors = {d: figure for d, figure, _ in done}
        fresh = [
            Reading(d, hour, {INDEX_FIELD: f.index})
            for d, f, stored in done
            if f.index is not None and d in self.owned and not stored
        ]
        if fresh:
            await self.writes.run(self.store.write(fresh))
        self.districts = {name: self._district(name, ids, hour) for name, ids in self.members.items()}
        self.last_end = end
        elapsed = asyncio.get_running_loop().time() - started
        log.info(
            "air: %s for the hour from %s: %d sensors, %d with an index, %d districts (%.2f s)",
            self.settings.index,
            hour.isoformat(timespec="minutes"),
            len(self.sensors),
            sum(f.index is not None for f in self.sensors.values()),
            len(self.districts),
            elapsed,
        )
        await self._alert(hour)

    def _district(self, name: str, ids: tuple[str, ...], hour: dt.datetime) -> AirFigure:
        figures = [(d, self.sensors[d]) for d in ids if self.sensors[d].index is not None]
        if not figures:
            return AirFigure(self.settings.index, hour, IndexResult(None), 0.0, sensors=len(ids), members=ids)
        worst_id, worst = max(figures, key=lambda item: (item[1].index or 0, -ids.index(item[0])))
        return AirFigure(
            self.settings.index,
            hour,
            worst.result,
            worst.reliability,
            sensor=worst_id,
            sensors=len(ids),
            sensors_with_index=len(figures),
            members=ids,
        )

    async def _alert(self, hour: dt.datetime) -> None:
        if self.alerts is None:
            return
        for name in sorted(self.alerting):
            figure = self.districts[name]
            change = self.alarms[name].judge(figure.index)
            if change is None:
                continue
            row = self.rows[figure.members[0]]
            local = hour.astimezone(self.zones.get(row.site_id, ZoneInfo("UTC")))
            evidence = None
            if change == "raised":
                evidence = say(
                    "en",
                    "evidence.air_quality",
                    scheme=say("en", f"air.scheme.{self.settings.index}"),
                    index=figure.index,
                    hour=local.isoformat(timespec="minutes"),
                    sensor=figure.sensor,
                    pollutant=say("en", f"air.pollutant.{figure.result.dominant}"),
                )
            await self.alerts.area(name, ALERT_KIND, evidence, site=row.site_id, group=name)
