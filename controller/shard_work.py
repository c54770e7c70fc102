"""What an instance does for the links it serves: poll them, command, schedule and watch their
devices, update their firmware. Built for one set of links and rebuilt when the set changes (a
shard taken over, lost or handed back, controller/shard_keeper.py); what serves the whole city
(registry, fleet, telemetry store, ingest, API, outbound messages) stays up meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from controller.air_watch import AirWatch
from controller.alerts import AlertChannel, AlertService, thresholds_by_device
from controller.alerts.book import AlertBook
from controller.alerts.detectors import Expected
from controller.alerts.events import EventHub
from controller.alerts.grouping import Grouping
from controller.alerts.store import AlertStore
from controller.alerts.webhooks import WebhookSender
from controller.cluster import SCHEDULE_SYNC_S
from controller.commands import CommandDispatcher
from controller.config import ControllerSettings
from controller.device import Device
from controller.firmware import FirmwareService
from controller.fleet import Fleet
from controller.links import make_driver
from controller.metrics import ControllerMetrics
from controller.outbound import StatePublisher
from controller.poller import LinkPoller, PolledDevice
from controller.registry import Registry
from controller.scheduling import Scheduling
from controller.supervisor import CriticalSection, Supervisor
from controller.telemetry import TelemetryStore
from controller.words import LANGUAGES
from drivers.base import DeviceRef, Driver, ListeningDriver, Reading
from schedules.astro import AstroClock

log = logging.getLogger(__name__)

#: supervisor groups: the shard's pollers stop with the city's (before the queue is drained)
POLLERS = "shard-pollers"
TASKS = "shard"
#: a burst of schedule changes made elsewhere (a script's hundred overrides) is read a few at a time
SCHEDULE_NEWS_GAP_S = 0.2
#: the database's part of a start (the history, alerts, schedules: ~0.5 s for 34,900 devices in
#: `make bench-city`); beyond it the start gives up and is tried again, its links polled meanwhile
WATCH_START_S = 30.0


class City(Protocol):
    """What the shard's work uses of the controller that serves the whole city."""

    settings: ControllerSettings
    registry: Registry
    fleet: Fleet
    metrics: ControllerMetrics
    supervisor: Supervisor
    queue: asyncio.Queue[Reading]
    store: TelemetryStore
    devices: dict[str, Device]
    #: the city's devices by link (walking all 52,500 for each shard held the loop ~0.3 s)
    devices_of_link: dict[str, list[Device]]
    owned: dict[str, Device]
    clocks: dict[str, AstroClock]
    alert_store: AlertStore
    events: EventHub
    webhooks: dict[str, WebhookSender]
    publisher: StatePublisher | None
    city_drivers: dict[str, Driver | ListeningDriver]
    ble_backends: dict[str, type[BaseBleakClient] | type[BaseBleakScanner]]
    _state_writes: CriticalSection
    #: this instance's name among the others; set when another announces a schedule change
    me: str
    schedule_news: asyncio.Event

    @property
    def syncs_schedules(self) -> bool: ...


class Carried(NamedTuple):
    """What a shard's work, stopped, hands to the work built after it."""

    links: frozenset[str]
    #: the levels its schedules sent its lamps (None: it had no schedules running)
    sent: Mapping[str, int] | None
    #: what each of its devices was last asked, as its fault detection judged them
    expected: Mapping[str, Expected]


class ShardWork:
    def __init__(
        self,
        city: City,
        links: frozenset[str],
        fence: Callable[[str], bool],
        before: Carried | None = None,
    ) -> None:
        """`fence(link)`: may this instance command that link now (its lease still runs); `before`:
        what the work it replaces knew (None: the first, every lamp is sent its level)."""
        self.city = city
        self.before = before
        self.links = links
        self.fence = fence
        self.drivers: dict[str, Driver | ListeningDriver] = {}  # made for this shard
        self.dispatcher: CommandDispatcher | None = None
        self.alerts: AlertService | None = None
        self.air: AirWatch | None = None
        self.scheduling: Scheduling | None = None
        self.firmware: FirmwareService | None = None
        self._asked_known = False  # what the devices were last asked is in the dispatcher
        self._watching = False
        #: how long each step of the last `start` or `stop` took (the log says: where a takeover's
        #: seconds go)
        self.steps: list[tuple[str, float]] = []
        self._step_t0 = 0.0

    def _step(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append((name, now - self._step_t0))
        self._step_t0 = now

    def steps_said(self) -> str:
        return ", ".join(f"{name} {took:.2f}" for name, took in self.steps)

    def start_polling(self) -> None:
        """The links' drivers, the dispatcher and the pollers: nothing here waits for the database,
        so readings flow whatever it does (a takeover while PostgreSQL fails over used to leave
        every held link unpolled until the rebuild could read the history)."""
        c, settings = self.city, self.city.settings
        self._step_t0 = time.perf_counter()
        c.owned.clear()  # in place: the API, the publisher and the peers' read-back hold this dict
        c.owned.update({row.id: row for link in self.links for row in c.devices_of_link.get(link, ())})
        by_link: dict[str, list[DeviceRef]] = defaultdict(list)
        for row in c.owned.values():
            address = row.unit_id if row.unit_id is not None else row.address
            by_link[row.link_id].append(DeviceRef(row.id, address, settings.profile(row.profile)))
        self.drivers = {
            link.id: make_driver(link, by_link[link.id], settings, c.ble_backends.get(link.id))
            for link in settings.links
            if link.id in self.links and link.id not in c.city_drivers
        }
        every = {**c.city_drivers, **self.drivers}
        refs = {
            ref.device_id: (ref, driver)
            for link_id, driver in every.items()
            if isinstance(driver, Driver) and link_id in self.links
            for ref in by_link[link_id]
        }
        self.dispatcher = CommandDispatcher(refs, c.registry, c.metrics, fence=self.fence)
        # The links served before as well: what their devices were asked is known here, up to the
        # last command; the history is read for the others only (a takeover's 14,600 of 34,900).
        if self.before is not None and self._kept:
            known = self.before.expected
            self.dispatcher.expected.update({d: known[d] for d in c.owned if d in known})
        self._step("drivers")
        for link_id, driver in self.drivers.items():
            if isinstance(driver, ListeningDriver):
                listen = functools.partial(
                    driver.run, c.queue.put, c.fleet.set_availability, c.fleet.record_rejection
                )
                c.supervisor.spawn(f"listen:{link_id}", listen, group=POLLERS)
            elif by_link[link_id]:
                polled = [
                    PolledDevice(ref, c.owned[ref.device_id].poll_interval_s) for ref in by_link[link_id]
                ]
                poller = LinkPoller(driver, polled, c.queue, c.fleet, c.metrics)
                c.supervisor.spawn(f"poll:{link_id}", poller.run, group=POLLERS)
        self._step("pollers")

    @property
    def watching(self) -> bool:
        """Its devices watched, scheduled and commanded: every part that reads the database up."""
        return self._watching

    async def start_watching(self) -> None:
        """What reads the database: the command history, the open alerts, the schedules, the
        firmware campaigns. Within WATCH_START_S, else TimeoutError (a stalled database must not
        hold the rebuild that would follow a lease lost meanwhile); a part that started is kept,
        and the next call (the lease keeper's next tick) starts the others."""
        c, settings = self.city, self.city.settings
        assert self.dispatcher is not None, "start_polling first"
        self._step_t0 = time.perf_counter()
        async with asyncio.timeout(WATCH_START_S):
            if not self._asked_known:
                if self.links - self._kept:
                    asked = await c.registry.last_asked(self.links - self._kept)
                    self.dispatcher.remember(asked, not_before=datetime.now(UTC))
                self._asked_known = True
                self._step("last asked")
            if settings.alerts.enabled and self.alerts is None:
                await self._start_alerts()
                self._step("alerts")
            if settings.air.enabled and self.air is None:
                await self._start_air()
                self._step("air")
            if self.scheduling is None:
                await self._start_scheduling()
                self._step("schedules")
            if self.firmware is None:
                firmware = FirmwareService(settings, c.owned, c.fleet, c.registry.engine, self._every())
                await firmware.start()
                self.firmware = firmware
                self._step("firmware")
        self._watching = True

    @property
    def _kept(self) -> frozenset[str]:
        """The links the work before this one served as well."""
        return self.before.links & self.links if self.before is not None else frozenset()

    def _every(self) -> dict[str, Driver | ListeningDriver]:
        return {**self.city.city_drivers, **self.drivers}

    async def _start_scheduling(self) -> None:
        c = self.city
        assert self.dispatcher is not None
        scheduling = Scheduling(
            c.registry.engine,
            c.owned,
            c.clocks,
            self.dispatcher,
            c.fleet,
            city=c.devices,
            announce_as=c.me if c.syncs_schedules else None,
        )
        await scheduling.start(self.before.sent if self.before is not None else None)
        self.scheduling = scheduling
        if c.syncs_schedules:
            c.supervisor.spawn("schedule-sync", self._sync_schedules_forever, group=TASKS)

    def carried(self) -> Carried:
        """What the work built after this one keeps (call after `stop`). A start that failed
        before it knew what its devices were asked (the database away) hands none of it on."""
        sent = dict(self.scheduling.sent) if self.scheduling is not None else None
        if not self._asked_known or self.dispatcher is None:
            return Carried(frozenset(), sent, {})
        return Carried(self.links, sent, self.dispatcher.expected)

    async def stop_commanding(self) -> None:
        """Schedules and firmware first: nothing new is sent from here on."""
        if self.scheduling is not None:
            await self.scheduling.stop()
        if self.firmware is not None:
            await self.firmware.stop()

    async def stop(self) -> None:
        """Everything of this shard, before another set of links is served (or at shutdown)."""
        self.steps, self._step_t0 = [], time.perf_counter()
        await self.stop_commanding()
        self._step("commanding")
        # With 160 pollers one usually swallows the first cancellation (pymodbus' wait_for on
        # Python 3.11): each takeover's rebuild waited the supervisor's half second for it. A
        # poller has nothing to finish; a listener cut short in its clean-up closes its broker
        # or port connection without a goodbye, which loses nothing (a new one is made next).
        await self.city.supervisor.stop(POLLERS, again_s=0.02)
        self._step("pollers")
        await self.city.supervisor.stop(TASKS)
        self._step("tasks")
        await self.close_drivers()
        self._step("drivers")
        self.city.owned.clear()

    async def close_drivers(self) -> None:
        await asyncio.gather(
            *(d.close() for d in self.drivers.values() if isinstance(d, Driver)), return_exceptions=True
        )

    async def _sync_schedules_forever(self) -> None:
        """Programs, calendars and overrides changed through another instance's API reach this
        instance's lamps at once when it announces them (PostgreSQL NOTIFY), else within
        SCHEDULE_SYNC_S (news missed while the listener reconnected, a database without NOTIFY)."""
        news = self.city.schedule_news
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SCHEDULE_SYNC_S):
                    await news.wait()
            news.clear()  # before the read: news of a change stored during it wakes the next one
            if self.scheduling is not None:
                await self.scheduling.reload_if_changed()
            await asyncio.sleep(SCHEDULE_NEWS_GAP_S)

    async def _start_alerts(self) -> None:
        c, cfg = self.city, self.city.settings.alerts
        assert self.dispatcher is not None
        channels: list[AlertChannel] = [c.events, *c.webhooks.values()]
        if c.publisher is not None:
            channels.append(c.publisher)
        alerts = AlertService(
            devices=c.owned,
            configured=c.devices.keys(),
            fleet=c.fleet,
            thresholds=thresholds_by_device(c.settings, c.owned.values()),
            clocks=c.clocks,
            expected=self.dispatcher.expected,
            store=c.alert_store,
            metrics=c.metrics,
            book=AlertBook(raise_after=cfg.raise_after, clear_after=cfg.clear_after),
            channels=channels,
            sweep_interval_s=cfg.sweep_interval_s,
            writes=c._state_writes,
            grouping=Grouping(cfg.group_min_devices, timedelta(seconds=cfg.group_window_s)),
            languages=LANGUAGES if cfg.language == "both" else (cfg.language,),
            fence=self.fence,
            listening={i: d.stats for i, d in self._every().items() if isinstance(d, ListeningDriver)},
        )
        await alerts.start()
        self.alerts = alerts
        c.supervisor.spawn("alerts", alerts.run, group=TASKS)

    async def _start_air(self) -> None:
        c = self.city
        profiles = {row.profile for row in c.devices.values() if row.kind == "sensor"}
        air = AirWatch(
            c.settings.air,
            c.store,
            c.devices,
            {name: c.settings.profile(name).mapped_fields() for name in profiles},
            c.owned,
            {site: clock.tz for site, clock in c.clocks.items()},
            c.metrics,
            self.alerts,
            c._state_writes,  # joined before the store closes: an index is written whole
        )
        await air.start()
        self.air = air
        if air.fields:
            c.supervisor.spawn("air", air.run, group=TASKS)
