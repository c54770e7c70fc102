"""The controller process: builds every part from the settings, runs them, stops them cleanly.

Shutdown order matters for "Ctrl-C leaves no half-written data": pollers stop first, the queue
is drained into the store, live state is flushed to the registry, then links and databases close.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from controller import cluster
from controller.air_watch import AirWatch
from controller.alerts import AlertChannel, AlertService, thresholds_by_device
from controller.alerts.book import AlertBook
from controller.alerts.events import EventHub
from controller.alerts.grouping import Grouping
from controller.alerts.store import AlertStore
from controller.alerts.webhooks import WebhookSender
from controller.auth.lockout import LockoutPolicy, LoginLockout
from controller.auth.store import AuthStore
from controller.cluster import STATE_CHUNK, PeerSync
from controller.commands import CommandDispatcher
from controller.config import (
    ControllerSettings,
)
from controller.db import create_engine
from controller.firmware import FirmwareService
from controller.fleet import Fleet
from controller.ingest import ReadingIngest
from controller.links import make_driver
from controller.metrics import ControllerMetrics, StateCollector
from controller.outbound import StatePublisher
from controller.poller import LinkPoller, PolledDevice
from controller.registry import DeviceRow, Registry
from controller.scheduling import Scheduling
from controller.supervisor import CriticalSection, Supervisor
from controller.telemetry import TelemetryStore, create_store
from controller.words import LANGUAGES
from drivers.base import DeviceRef, Driver, ListeningDriver, Reading
from schedules.astro import AstroClock

log = logging.getLogger(__name__)


class Controller:
    """One Lamplighter controller instance."""

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        ble_backends: Mapping[str, type[BaseBleakClient] | type[BaseBleakScanner]] | None = None,
    ) -> None:
        """`ble_backends`: link id → bleak client or scanner backend (the simulated radio);
        default: bleak's platform backend."""
        self.settings = settings
        self.ble_backends = dict(ble_backends or {})
        self.metrics = ControllerMetrics()
        #: each site's sun, shared by schedules, detectors and energy (its events are cached)
        self.clocks = {s.id: AstroClock(s.latitude, s.longitude, s.timezone) for s in settings.sites}
        self.supervisor = Supervisor()
        self.metrics.watch(StateCollector(self.supervisor.restarts, lambda: self.store.figures()))
        self.queue: asyncio.Queue[Reading] = asyncio.Queue(maxsize=settings.poller.queue_size)
        self.registry = Registry(create_engine(settings.database.url))
        self.store: TelemetryStore = create_store(settings.telemetry)
        self.drivers: dict[str, Driver | ListeningDriver] = {}
        self.devices: dict[str, DeviceRow] = {}
        self.owned: dict[str, DeviceRow] = {}  # this instance's shard of `devices` ([cluster])
        self.shared: set[str] = set()  # devices on MQTT links in a shared group: every instance ingests
        self.fleet = Fleet((), offline_after_failures=settings.poller.offline_after_failures)
        self.dispatcher: CommandDispatcher | None = None
        self.ingest: ReadingIngest | None = None
        self.started_at: datetime | None = None
        self._state_writes = CriticalSection()
        self.publisher: StatePublisher | None = None
        self.scheduling: Scheduling | None = None
        self.alert_store = AlertStore(self.registry.engine)
        self.auth = AuthStore(self.registry.engine)
        api = settings.api
        self.logins = LoginLockout(
            self.registry.engine, LockoutPolicy(api.lockout_after, api.lockout_s, api.lockout_max_s)
        )
        self.events = EventHub()
        self.alerts: AlertService | None = None
        self.webhooks: dict[str, WebhookSender] = {}
        self.firmware: FirmwareService | None = None
        self.air: AirWatch | None = None

    async def start(self) -> None:
        await self.registry.create_schema()
        kept, removed = await self.registry.mirror_config(self.settings)
        log.info("registry mirrors the config: %d devices (%d removed)", kept, removed)
        self.devices = {row.id: row for row in await self.registry.devices()}
        owned_links = cluster.owned_links(self.settings)
        # This instance's shard: it polls, commands, schedules and watches these; the API and the
        # fleet cover every device (the others' states are read back from the shared database).
        self.owned = {d: row for d, row in self.devices.items() if row.link_id in owned_links}
        self.fleet = Fleet(self.devices, offline_after_failures=self.settings.poller.offline_after_failures)
        self.fleet.restore(await self.registry.load_states())
        self.store.describe_devices(
            {
                row.id: {
                    "device": row.id,
                    "site": row.site_id,
                    "group": row.group_path,
                    "profile": row.profile,
                    "kind": row.kind,
                }
                for row in self.devices.values()
            }
        )
        await self.store.open()

        # MQTT links in a shared group are ingested by every instance (docs/deployment.md).
        ingest_links = cluster.ingest_links(self.settings)
        shared_links = cluster.shared_links(self.settings)
        self.shared = {d for d, row in self.devices.items() if row.link_id in shared_links}
        by_link: dict[str, list[DeviceRef]] = defaultdict(list)
        intervals: dict[str, float] = {}
        for row in self.devices.values():
            if row.link_id not in ingest_links:
                continue
            address = row.unit_id if row.unit_id is not None else row.address
            by_link[row.link_id].append(DeviceRef(row.id, address, self.settings.profile(row.profile)))
            intervals[row.id] = row.poll_interval_s
        self.drivers = {
            link.id: make_driver(link, by_link[link.id], self.settings, self.ble_backends.get(link.id))
            for link in self.settings.links
            if link.id in ingest_links
        }
        refs: dict[str, tuple[DeviceRef, Driver]] = {}
        for link_id, driver in self.drivers.items():
            if isinstance(driver, Driver) and link_id in owned_links:
                refs.update({ref.device_id: (ref, driver) for ref in by_link[link_id]})
        self.dispatcher = CommandDispatcher(refs, self.registry, self.metrics)
        self.dispatcher.remember(await self.registry.last_commands())
        self.ingest = ReadingIngest(
            self.queue,
            self.store,
            self.fleet,
            self.metrics,
            batch_size=self.settings.poller.batch_size,
            linger_s=self.settings.poller.ingest_linger_s,
        )
        self.supervisor.spawn("ingest", self.ingest.run, group="ingest")
        self.supervisor.spawn("state-flush", self._flush_states_forever, group="housekeeping")
        self.peers = PeerSync(
            self.registry, self.fleet, self.owned, self.shared, self.settings.poller.state_flush_interval_s
        )
        if len(self.owned) < len(self.devices) or self.shared:
            self.supervisor.spawn("peer-states", self.peers.read_states_forever, group="housekeeping")
        out = self.settings.outbound
        if out.enabled:
            host, port = self.settings.broker_address(out)
            self.publisher = StatePublisher(
                self.fleet,
                self.owned,
                host=host,
                port=port,
                username=out.username,
                password=out.password,
                topic_prefix=out.topic_prefix,
                state_interval_s=out.state_interval_s,
                alert_queue_size=self.settings.alerts.queue_size,
                metrics=self.metrics,
            )
            self.supervisor.spawn("outbound", self.publisher.run, group="housekeeping")
        if self.settings.alerts.enabled:
            await self._start_alerts()
        if self.settings.air.enabled:
            await self._start_air()
        for link_id, driver in self.drivers.items():
            if isinstance(driver, ListeningDriver):
                listen = functools.partial(
                    driver.run, self.queue.put, self.fleet.set_availability, self.fleet.record_rejection
                )
                self.supervisor.spawn(f"listen:{link_id}", listen, group="pollers")
            elif by_link[link_id]:
                polled = [PolledDevice(ref, intervals[ref.device_id]) for ref in by_link[link_id]]
                poller = LinkPoller(driver, polled, self.queue, self.fleet, self.metrics)
                self.supervisor.spawn(f"poll:{link_id}", poller.run, group="pollers")
        self.scheduling = Scheduling(
            self.registry.engine, self.owned, self.clocks, self.dispatcher, self.fleet, city=self.devices
        )
        await self.scheduling.start()
        if len(self.owned) < len(self.devices):
            schedules = functools.partial(self.peers.sync_schedules_forever, self.scheduling)
            self.supervisor.spawn("schedule-sync", schedules, group="housekeeping")
        self.firmware = FirmwareService(
            self.settings, self.owned, self.fleet, self.registry.engine, self.drivers
        )
        await self.firmware.start()
        # What start built (config, registry rows, profiles: ~800,000 objects for 50,000 devices)
        # lives as long as the process. Out of the collector's sight, a full collection no longer
        # walks it: 235 ms each time before, and the API's p99 showed it.
        gc.freeze()
        self.started_at = datetime.now(UTC)
        log.info(
            "controller started: %d links, %d devices (of the city's %d)",
            len(self.drivers),
            len(self.owned),
            len(self.devices),
        )

    async def _start_alerts(self) -> None:
        cfg = self.settings.alerts
        assert self.dispatcher is not None
        self.webhooks = {
            hook.id: WebhookSender(hook, self.alert_store, self.metrics, queue_size=cfg.queue_size)
            for hook in self.settings.webhooks
        }
        channels: list[AlertChannel] = [self.events, *self.webhooks.values()]
        if self.publisher is not None:
            channels.append(self.publisher)
        self.alerts = AlertService(
            devices=self.owned,
            configured=self.devices.keys(),
            fleet=self.fleet,
            thresholds=thresholds_by_device(self.settings, self.owned.values()),
            clocks=self.clocks,
            expected=self.dispatcher.expected,
            store=self.alert_store,
            metrics=self.metrics,
            book=AlertBook(raise_after=cfg.raise_after, clear_after=cfg.clear_after),
            channels=channels,
            sweep_interval_s=cfg.sweep_interval_s,
            writes=self._state_writes,
            grouping=Grouping(cfg.group_min_devices, timedelta(seconds=cfg.group_window_s)),
            languages=LANGUAGES if cfg.language == "both" else (cfg.language,),
        )
        await self.alerts.start()
        self.supervisor.spawn("alerts", self.alerts.run, group="housekeeping")
        for hook_id, sender in self.webhooks.items():
            self.supervisor.spawn(f"webhook:{hook_id}", sender.run, group="housekeeping")

    async def _start_air(self) -> None:
        profiles = {row.profile for row in self.devices.values() if row.kind == "sensor"}
        self.air = AirWatch(
            self.settings.air,
            self.store,
            self.devices,
            {name: self.settings.profile(name).mapped_fields() for name in profiles},
            self.owned,
            {site: clock.tz for site, clock in self.clocks.items()},
            self.metrics,
            self.alerts,
            self._state_writes,  # joined before the store closes: an index is written whole
        )
        await self.air.start()
        if self.air.fields:
            self.supervisor.spawn("air", self.air.run, group="housekeeping")

    async def stop(self) -> None:
        """Stop pollers, drain the queue into the store, flush state, close everything."""
        if self.scheduling is not None:
            await self.scheduling.stop()
        if self.firmware is not None:
            await self.firmware.stop()
        await self.supervisor.stop("pollers")
        await self.supervisor.stop("ingest")
        if self.ingest is not None:
            drained = await self.ingest.drain()
            log.info("shutdown: %d queued readings written", drained)
        await self.supervisor.stop()
        await self._state_writes.join()
        if self.started_at is not None:
            await self.registry.save_states(self.fleet.take_dirty_rows())
            await self.auth.flush_key_use()
        await asyncio.gather(
            *(d.close() for d in self.drivers.values() if isinstance(d, Driver)), return_exceptions=True
        )
        await self.store.close()
        await self.registry.engine.dispose()
        self.started_at = None
        gc.unfreeze()  # a process that starts controllers again (tests) gets its memory back
        log.info("controller stopped")

    def refresh_metrics(self) -> None:
        """Set the gauges that describe current state (called when /metrics is scraped)."""
        m = self.metrics
        for state, n in self.fleet.counts_by_state().items():
            m.devices.labels(state).set(n)
        for link_id, driver in self.drivers.items():
            m.link_up.labels(link_id).set(1 if driver.stats.connected else 0)
        m.queue_depth.set(self.queue.qsize())

    async def open_alerts(self) -> list[tuple[str, str]]:
        """(device id, kind) of every open alert in the city: from memory when this instance
        watches every device, else from the alert table all instances share ([cluster])."""
        if len(self.owned) == len(self.devices):
            return list(self.alerts.book.active) if self.alerts is not None else []
        return [(a.device_id, a.kind) for a in await self.alert_store.active()]

    async def _flush_states_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poller.state_flush_interval_s)
            await self._flush_states()
            await self._state_writes.run(self.auth.flush_key_use())

    async def _flush_states(self) -> None:
        """Save the changed states in chunks, giving the event loop back between them: 16,000
        rows built and written in one go held the API up for a second."""
        ids = self.fleet.take_dirty_ids()
        for i in range(0, len(ids), STATE_CHUNK):
            rows = self.fleet.rows(ids[i : i + STATE_CHUNK])
            try:
                await self._state_writes.run(self.registry.save_states(rows))
            except Exception:
                # The database is away: keep the rest for the next flush (a device whose state no
                # longer changes would otherwise never be saved); the supervisor logs and backs off.
                self.fleet.mark_dirty(ids[i:])
                raise
            await asyncio.sleep(0)
