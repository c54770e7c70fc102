"""The controller as the API sees it: one typed object, and the one place its policy is applied.

Routes receive a `ControllerService` (api/deps.py) and ask it, never the controller's parts: which
devices match a filter, what one device is doing, send a command (refused as `NotReady`,
`NotOwned`, `NotCommandable` or `UnknownDevice`, controller/errors.py), telemetry and energy,
alerts, citizen reports, schedules, firmware, health. Ownership across instances ([cluster]), the
group rule (controller/groups.py) and readiness are decided here, not in the routes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.air_figures import hourly_means
from controller.air_watch import AirWatch
from controller.alerts.book import Alert
from controller.alerts.events import EventHub
from controller.alerts.grouping import AlertGroup, Grouping
from controller.alerts.reports import ReportIn, assess, nearest_lamps
from controller.alerts.store import AlertState, AlertStore, DeadLetterRow, ReportRow
from controller.auth import AuthStore, LoginLockout
from controller.commands import Command
from controller.config import ControllerSettings, Site
from controller.device import Device
from controller.energy import EnergySource, totals
from controller.errors import (
    AirDisabled,
    AlertsDisabled,
    NoLamps,
    NotCommandable,
    NotOwned,
    NotReady,
    UnknownDevice,
)
from controller.firmware import FirmwareService
from controller.fleet import DeviceStatus
from controller.groups import in_group
from controller.metrics import ControllerMetrics
from controller.registry import CommandRow
from controller.runtime import Controller
from controller.scheduling import Scheduling
from controller.shard_keeper import LeaseHealth
from controller.telemetry import Aggregate, TelemetryPoint
from controller.vocabulary import DeviceKind
from schedules.astro import AstroClock

#: a command or schedule change that arrives while the shard's work is rebuilt (a takeover, a
#: hand-back: about a second) waits this long for it, then goes on or answers 503 not_ready
REBUILD_WAIT_S = 5.0


@dataclass(slots=True)  # not frozen: a frozen dataclass is built 2.5 times slower, felt 10,000 at a time
class DeviceInfo:
    """A device: what the config says of it, and what it is doing now."""

    row: Device
    status: DeviceStatus


@dataclass(frozen=True, slots=True)
class HealthFigures:
    started_at: dt.datetime | None
    links: dict[str, bool]
    devices: dict[str, int]
    queue_depth: int
    leases: LeaseHealth | None = None  # None: no leases ([cluster] takeover off, or SQLite)
    #: the links served are watched and scheduled, not only polled (controller/shard_work.py)
    watching: bool = True


class ControllerService:
    def __init__(self, controller: Controller) -> None:
        self._ctl = controller

    @property
    def settings(self) -> ControllerSettings:
        return self._ctl.settings

    @property
    def sites(self) -> tuple[Site, ...]:
        return self._ctl.settings.sites

    @property
    def clocks(self) -> Mapping[str, AstroClock]:
        """Each site's sun, by site id."""
        return self._ctl.clocks

    # -- devices -------------------------------------------------------------------------------

    def find(
        self,
        *,
        site: str | None = None,
        group: str | None = None,
        state: str | None = None,
        kind: DeviceKind | None = None,
    ) -> list[DeviceInfo]:
        """Devices matching every filter given, in config order (`group` includes its sub-groups)."""
        # Each filter is its own pass, taken only when given, so the unfiltered map of a city
        # (GeoJSON, 10,000 devices) pays for one loop.
        rows: Iterable[tuple[str, Device]] = self._ctl.devices.items()
        if site is not None:
            rows = [(i, r) for i, r in rows if r.site_id == site]
        if kind is not None:
            rows = [(i, r) for i, r in rows if r.kind == kind]
        if group is not None:
            rows = [(i, r) for i, r in rows if in_group(r.group_path, group)]
        fleet = self._ctl.fleet.devices
        return [
            DeviceInfo(row, status)
            for device_id, row in rows
            if (status := fleet.get(device_id)) is not None and (state is None or status.state == state)
        ]

    def device(self, device_id: str) -> DeviceInfo:
        row = self._ctl.devices.get(device_id)
        if row is None:
            raise UnknownDevice(f"no device {device_id!r}")
        return DeviceInfo(row, self._ctl.fleet[device_id])

    def devices_by_id(self) -> Mapping[str, Device]:
        """Every device of the city by id (the same mapping until the controller starts again)."""
        return self._ctl.devices

    def rows(self, kind: DeviceKind | None = None, group: str | None = None) -> list[Device]:
        """The devices of the city (of one kind; in `group` and its sub-groups), as configured."""
        return [
            row
            for row in self._ctl.devices.values()
            if (kind is None or row.kind == kind) and (group is None or in_group(row.group_path, group))
        ]

    def lamps(self, group: str | None = None) -> list[Device]:
        return self.rows("lamp", group)

    def status(self, device_id: str) -> DeviceStatus:
        return self._ctl.fleet[device_id]

    def statuses(self) -> dict[str, DeviceStatus]:
        return self._ctl.fleet.devices

    # -- commands ------------------------------------------------------------------------------

    async def command(self, device_id: str, command: Command) -> CommandRow:
        """Send a command and wait for its read-back; the row says how it ended."""
        row = self.device(device_id).row
        await self._ctl.settled(REBUILD_WAIT_S)
        dispatcher = self._ctl.dispatcher
        if dispatcher is None:
            raise NotReady("the controller is still starting")
        if device_id not in self._ctl.owned:
            raise NotOwned(
                f"device {device_id!r} is on link {row.link_id!r}, which another controller instance "
                "serves ([cluster] in the config): send the command there"
            )
        if device_id not in dispatcher.refs:
            link = self._ctl.settings.link(row.link_id)
            raise NotCommandable(
                f"device {device_id!r} is a {row.kind.replace('_', ' ')} on {link.kind} link "
                f"{row.link_id!r}, which carries no commands"
            )
        return await dispatcher.execute(device_id, command)

    async def group_command(self, group: str, command: Command) -> list[CommandRow]:
        """The command to every lamp of `group` (and its sub-groups) that this instance serves."""
        await self._ctl.settled(REBUILD_WAIT_S)
        dispatcher = self._ctl.dispatcher
        if dispatcher is None:
            raise NotReady("the controller is still starting")
        lamps = self.lamps(group)
        if not lamps:
            raise NoLamps(f"no lamps in group {group!r}")
        members = [row.id for row in lamps if row.id in self._ctl.owned]
        if not members:
            raise NotOwned(f"the lamps of group {group!r} are served by other instances")
        return await dispatcher.execute_many(members, command)

    async def commands(self, device_id: str, limit: int, offset: int) -> tuple[Sequence[CommandRow], int]:
        self.device(device_id)
        return await self._ctl.registry.commands(device_id, limit, offset)

    async def command_record(self, device_id: str, command_id: int) -> CommandRow | None:
        self.device(device_id)
        return await self._ctl.registry.command(device_id, command_id)

    # -- telemetry and energy ------------------------------------------------------------------

    async def telemetry(
        self,
        device_id: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        fields: Sequence[str],
        every_s: float | None,
        aggregate: Aggregate,
        limit: int,
    ) -> list[TelemetryPoint]:
        self.device(device_id)
        return await self._ctl.store.query(
            device_id, start, end, fields=fields, every_s=every_s, aggregate=aggregate, limit=limit
        )

    async def energy_used(
        self,
        lamps: Sequence[Device],
        first: dt.datetime,
        end: dt.datetime,
        every_s: float,
        offset_s: float,
        counter: str = "energy_wh",
    ) -> dict[str, dict[dt.datetime, float]]:
        """Wh per device and window start (the spread of each one's energy counter; or of another
        counter, e.g. `burning_hours_h`)."""
        return await self._ctl.store.energy([r.id for r in lamps], first, end, every_s, offset_s, counter)

    async def energy_reported(
        self, devices: Sequence[Device], start: dt.datetime, end: dt.datetime
    ) -> dict[str, tuple[dt.datetime, dt.datetime]]:
        """Each device's first and last energy reading in [start, end): what its figures cover."""
        return await self._ctl.store.reported([r.id for r in devices], start, end)

    async def energy_totals(
        self, lamps: list[Device], start: dt.datetime, end: dt.datetime, meters: Sequence[Device] = ()
    ) -> tuple[float, float, int, EnergySource]:
        """(kWh used, dusk-to-dawn baseline kWh of the lamps counted, how many, from which counters)."""
        return await totals(self._ctl.store, self._ctl.clocks, lamps, start, end, meters)

    # -- air -----------------------------------------------------------------------------------

    @property
    def air(self) -> AirWatch:
        """The city's air index now (controller/air_watch.py)."""
        if self._ctl.air is None:
            if not self.settings.air.enabled:
                raise AirDisabled("the air quality index is off ([air] enabled = false)")
            raise NotReady("the controller is still starting")
        return self._ctl.air

    async def air_means(
        self, device_id: str, fields: Sequence[str], end: dt.datetime, hours: int
    ) -> dict[str, list[float | None]]:
        """A sensor's hourly means of `fields` for the `hours` before `end`, the newest first."""
        return await hourly_means(self._ctl.store, device_id, fields, end, hours, self.settings.air.hour_s)

    # -- alerts, reports, events ---------------------------------------------------------------

    @property
    def alert_store(self) -> AlertStore:
        return self._ctl.alert_store

    @property
    def events(self) -> EventHub:
        return self._ctl.events

    async def open_alerts(self) -> list[tuple[str, str]]:
        """(device id, kind) of every open alert of the city."""
        return await self._ctl.open_alerts()

    async def alerts(
        self,
        *,
        state: AlertState,
        kind: str | None,
        site: str | None,
        group: str | None,
        device: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Alert], int]:
        return await self._ctl.alert_store.query(
            state=state, kind=kind, site=site, group=group, device=device, limit=limit, offset=offset
        )

    @functools.cached_property
    def _links(self) -> tuple[dict[str, str], Counter[str]]:
        link_of = {d: row.link_id for d, row in self._ctl.devices.items()}
        return link_of, Counter(link_of.values())

    async def alert_entries(
        self,
        *,
        state: AlertState,
        kind: str | None,
        site: str | None,
        group: str | None,
        device: str | None,
        cap: int,
    ) -> tuple[list[AlertGroup], list[Alert], int]:
        """The matching alerts (at most `cap`, the newest first) as root-cause groups and the alerts
        in none; and how many matched in all."""
        alerts, total = await self.alerts(
            state=state, kind=kind, site=site, group=group, device=device, limit=cap, offset=0
        )
        cfg = self.settings.alerts
        grouping = Grouping(cfg.group_min_devices, dt.timedelta(seconds=cfg.group_window_s))
        groups, alone = grouping.split(alerts, *self._links)
        if self._ctl.alerts is not None:  # the ids this instance announced them by (MQTT, webhooks)
            causes = self._ctl.alerts.root_causes
            groups = [_announced(g, causes.member_of) for g in groups]
        return groups, alone, total

    async def acknowledge(self, alert_id: int, by: str) -> Alert | None:
        if self._ctl.alerts is None:
            if self.settings.alerts.enabled:
                raise NotReady("the controller is starting to serve its links")
            raise AlertsDisabled("fault detection is disabled ([alerts] enabled = false)")
        return await self._ctl.alerts.acknowledge(alert_id, by)

    async def file_report(self, report: ReportIn) -> ReportRow:
        """Check a citizen's report against the nearest lamps; store and announce the verdict."""
        now = dt.datetime.now(dt.UTC)
        near = nearest_lamps(report, self._ctl.devices.values())
        open_alerts = await self._ctl.alert_store.open_for([row.id for row, _ in near])
        expected = self._ctl.dispatcher.expected if self._ctl.dispatcher else {}
        result = assess(report, near, self._ctl.fleet.devices, open_alerts, expected, now)
        return await self._ctl.alert_store.add_report(
            ReportRow(
                kind=report.kind,
                latitude=report.latitude,
                longitude=report.longitude,
                radius_m=report.radius_m,
                reference=report.reference,
                description=report.description,
                received_at=now,
                verdict=result.verdict,
                reason=result.reason,
                lamps=result.lamps,
                alert_ids=result.alert_ids,
            )
        )

    async def retry_dead_letter(self, letter_id: int) -> DeadLetterRow | None:
        """Send a dead letter's events again (None: no such letter for a configured webhook)."""
        row = await self._ctl.alert_store.take_dead_letter(letter_id, webhooks=set(self._ctl.webhooks))
        if row is not None:
            await self._ctl.webhooks[row.webhook_id].resend(row.body)
        return row

    # -- schedules, firmware -------------------------------------------------------------------

    @property
    def scheduling(self) -> Scheduling:
        if self._ctl.scheduling is None:
            raise NotReady("the controller is still starting")
        return self._ctl.scheduling

    async def schedules_to_change(self) -> Scheduling:
        """The schedules, for a change: one made while a takeover rebuilds the work waits for it
        (at most REBUILD_WAIT_S) rather than being turned away."""
        await self._ctl.settled(REBUILD_WAIT_S)
        return self.scheduling

    @property
    def firmware(self) -> FirmwareService:
        if self._ctl.firmware is None:
            raise NotReady("the controller is still starting")
        return self._ctl.firmware

    def served_elsewhere(self, device_ids: Sequence[str]) -> list[str]:
        """Those of these devices on links another instance serves ([cluster])."""
        return sorted(d for d in device_ids if d in self._ctl.devices and d not in self._ctl.owned)

    # -- access, operations --------------------------------------------------------------------

    @property
    def auth(self) -> AuthStore:
        return self._ctl.auth

    @property
    def logins(self) -> LoginLockout:
        return self._ctl.logins

    @property
    def metrics(self) -> ControllerMetrics:
        return self._ctl.metrics

    def health(self) -> HealthFigures:
        return HealthFigures(
            started_at=self._ctl.started_at,
            links={link_id: d.stats.connected for link_id, d in self._ctl.drivers.items()},
            devices=self._ctl.fleet.counts_by_state(),
            queue_depth=self._ctl.queue.qsize(),
            leases=self._ctl.keeper.health() if self._ctl.keeper is not None else None,
            watching=self._ctl.serving.watching,
        )

    def metrics_text(self) -> bytes:
        self._ctl.refresh_metrics()
        return self._ctl.metrics.render()


def _announced(group: AlertGroup, member_of: Callable[[Alert], str | None]) -> AlertGroup:
    known = next((gid for a in group.alerts if (gid := member_of(a)) is not None), None)
    return dataclasses.replace(group, id=known) if known is not None else group
