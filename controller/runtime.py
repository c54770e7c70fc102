"""The controller process: builds every part from the settings, runs them, stops them cleanly.

Shutdown order matters for "Ctrl-C leaves no half-written data": pollers stop first, the queue
is drained into the store, live state is flushed to the registry, the leases are handed back, the
alert channels deliver what they hold (bounded), then links and databases close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from sqlalchemy.engine import make_url

from controller import cluster
from controller.air_watch import AirWatch
from controller.alerts import AlertService
from controller.alerts.events import EventHub
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
from controller.device import Device
from controller.event_news import EventRelay
from controller.firmware import FirmwareService
from controller.fleet import Fleet
from controller.ingest import ReadingIngest
from controller.lease_thread import KeeperThread
from controller.links import make_driver
from controller.loop_watch import LoopWatch
from controller.metrics import ControllerMetrics, StateCollector
from controller.outbound import StatePublisher
from controller.registry import Registry
from controller.scheduling import Scheduling
from controller.serving import ShardServing
from controller.shard_keeper import ShardKeeper, process_name
from controller.shard_work import POLLERS as SHARD_POLLERS
from controller.shard_work import TASKS as SHARD_TASKS
from controller.shard_work import ShardWork
from controller.state_news import ANNOUNCE_EVERY_S, NewsListener
from controller.supervisor import CriticalSection, Supervisor
from controller.telemetry import TelemetryStore, create_store
from controller.telemetry.tags import DeviceTags
from drivers.base import DeviceRef, Driver, ListeningDriver, Reading
from schedules.astro import AstroClock

log = logging.getLogger(__name__)
#: the alert channels' tasks: stopped last, once what was said before a stop is delivered
DELIVERY = "delivery"


def shard_keeper(settings: ControllerSettings) -> ShardKeeper | None:
    """Leases when several instances (or a standby) share PostgreSQL and takeover is on."""
    c = settings.cluster
    wanted = c.takeover if c.takeover is not None else c.instances > 1 or c.standby
    if not wanted or make_url(settings.database.url).get_backend_name() != "postgresql":
        return None
    home = None if c.standby else str(c.instance)
    return ShardKeeper(c.lease_s, home=home, home_links=cluster.owned_links(settings))


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
        self.city_drivers: dict[str, Driver | ListeningDriver] = {}  # shared-group MQTT links
        self.devices: dict[str, Device] = {}
        self.devices_of_link: dict[str, list[Device]] = {}
        #: the devices of the links this instance serves now ([cluster]); changed in place
        self.owned: dict[str, Device] = {}
        self.shared: set[str] = set()  # devices on MQTT links in a shared group: every instance ingests
        self.fleet = Fleet((), offline_after_failures=settings.poller.offline_after_failures)
        self.ingest: ReadingIngest | None = None
        self.started_at: datetime | None = None
        self._state_writes = CriticalSection()
        self.publisher: StatePublisher | None = None
        self.alert_store = AlertStore(self.registry.engine)
        self.auth = AuthStore(self.registry.engine)
        api = settings.api
        self.logins = LoginLockout(
            self.registry.engine, LockoutPolicy(api.lockout_after, api.lockout_s, api.lockout_max_s)
        )
        self.events = EventHub()
        self.webhooks: dict[str, WebhookSender] = {}
        self.keeper = shard_keeper(settings)
        self.leases = KeeperThread(self.keeper, settings.database.url) if self.keeper is not None else None
        self.serving = ShardServing(self, self.keeper, self.leases)
        self.me = self.keeper.holder if self.keeper is not None else process_name()
        self.schedule_news = asyncio.Event()  # another instance stored a schedule (state_news.py)

    async def start(self) -> None:
        await self.registry.create_schema()
        devices, removed = await self.registry.mirror_config(self.settings)
        log.info("registry mirrors the config: %d devices (%d removed)", len(devices), removed)
        self.devices = {row.id: row for row in devices}
        self.devices_of_link = defaultdict(list)
        for row in self.devices.values():
            self.devices_of_link[row.link_id].append(row)
        self.fleet = Fleet(self.devices, offline_after_failures=self.settings.poller.offline_after_failures)
        self.fleet.restore(await self.registry.load_states())
        self.store.describe_devices(DeviceTags(self.devices))
        await self.store.open()
        # MQTT links in a shared group are ingested by every instance (docs/deployment.md): their
        # drivers serve the city; the shard's own links get theirs with the shard's work.
        shared_links = cluster.shared_links(self.settings)
        self.shared = {row.id for link in shared_links for row in self.devices_of_link.get(link, ())}
        by_link: dict[str, list[DeviceRef]] = defaultdict(list)
        for link_id in shared_links:
            for row in self.devices_of_link.get(link_id, ()):
                address = row.unit_id if row.unit_id is not None else row.address
                by_link[link_id].append(DeviceRef(row.id, address, self.settings.profile(row.profile)))
        self.city_drivers = {
            link.id: make_driver(link, by_link[link.id], self.settings, self.ble_backends.get(link.id))
            for link in self.settings.links
            if link.id in shared_links
        }
        self.ingest = ReadingIngest(
            self.queue,
            self.store,
            self.fleet,
            self.metrics,
            batch_size=self.settings.poller.batch_size,
            linger_s=self.settings.poller.ingest_linger_s,
        )
        self.supervisor.spawn(
            "loop-watch", LoopWatch(self.metrics.loop_lag, self.metrics.gc_pause).run, group="housekeeping"
        )
        self.supervisor.spawn("ingest", self.ingest.run, group="ingest")
        self.supervisor.spawn("state-flush", self._flush_states_forever, group="housekeeping")
        self.peers = PeerSync(
            self.registry, self.fleet, self.owned, self.shared, self.settings.poller.state_flush_interval_s
        )
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
            self.supervisor.spawn("outbound", self.publisher.run, group=DELIVERY)
        if self.settings.alerts.enabled:
            cfg = self.settings.alerts
            self.webhooks = {
                hook.id: WebhookSender(hook, self.alert_store, self.metrics, queue_size=cfg.queue_size)
                for hook in self.settings.webhooks
            }
            for hook_id, sender in self.webhooks.items():
                await sender.take_back()  # first in its queue: older than anything said from now on
                self.supervisor.spawn(f"webhook:{hook_id}", sender.run, group=DELIVERY)
        for link_id, driver in self.city_drivers.items():
            if isinstance(driver, ListeningDriver):
                listen = functools.partial(
                    driver.run, self.queue.put, self.fleet.set_availability, self.fleet.record_rejection
                )
                self.supervisor.spawn(f"listen:{link_id}", listen, group="pollers")
        if self.keeper is not None and self.leases is not None:
            await self.leases.start()
            links = self.keeper.links()
        else:
            links = cluster.owned_links(self.settings)
        await self.serving.serve(links)
        if self.leases is not None:  # after the first serve: two at once would share `owned`
            self.supervisor.spawn("shard-leases", self.serving.keep_leases_forever, group="leases")
        if self.keeper is not None or len(self.owned) < len(self.devices) or self.shared:
            self.supervisor.spawn("peer-states", self.peers.read_states_forever, group="housekeeping")
            if self.registry.engine.dialect.name == "postgresql":
                self._hear_and_announce_news()
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

    def _hear_and_announce_news(self) -> None:
        """State changes to and from the other instances at once (controller/state_news.py)."""
        relay = EventRelay(self.registry.engine, self.me)
        self.events.share = relay.offer
        listener = NewsListener(
            self.registry.engine.url,
            self.me,
            self.peers.heard,
            on_schedules=self.schedule_news.set,
            on_events=self._heard_events,
        )
        self.supervisor.spawn("state-news", listener.run, group="housekeeping")
        self.supervisor.spawn("event-news", relay.run, group="housekeeping")
        self.supervisor.spawn("peer-news", self.peers.read_news_forever, group="housekeeping")
        self.supervisor.spawn("announce", self._announce_forever, group="housekeeping")

    def _heard_events(self, events: list[tuple[str, str]]) -> None:
        for name, data in events:  # another instance's alerts and reports, in this one's stream
            self.events.publish(name, data, from_peer=True)

    async def _announce_forever(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_EVERY_S)
            ids = self.fleet.take_news()
            if ids:  # on failure the state flush saves them later (they are still dirty)
                rows = self.fleet.rows(ids)
                await self._state_writes.run(self.registry.save_states(rows, announce_from=self.me))

    @property
    def shard(self) -> ShardWork | None:
        return self.serving.shard

    async def settled(self, within_s: float) -> None:
        """Wait for the shard's work being rebuilt, at most `within_s` (ShardServing.settled)."""
        await self.serving.settled(within_s)

    @property
    def syncs_schedules(self) -> bool:
        """Schedules changed through other instances' APIs are read back (several instances)."""
        return self.keeper is not None or len(self.owned) < len(self.devices)

    @property
    def drivers(self) -> dict[str, Driver | ListeningDriver]:
        """Every link this instance talks to now: the city's shared ones and its shard's."""
        return {**self.city_drivers, **(self.shard.drivers if self.shard is not None else {})}

    @property
    def dispatcher(self) -> CommandDispatcher | None:
        return self.shard.dispatcher if self.shard is not None else None

    @property
    def scheduling(self) -> Scheduling | None:
        return self.shard.scheduling if self.shard is not None else None

    @property
    def alerts(self) -> AlertService | None:
        return self.shard.alerts if self.shard is not None else None

    @property
    def air(self) -> AirWatch | None:
        return self.shard.air if self.shard is not None else None

    @property
    def firmware(self) -> FirmwareService | None:
        return self.shard.firmware if self.shard is not None else None

    async def stop(self) -> None:
        """Stop pollers, drain the queue into the store, flush state, close everything."""
        await self.supervisor.stop("leases")
        if self.shard is not None:
            await self.shard.stop_commanding()
        await self.supervisor.stop("pollers")
        await self.supervisor.stop(SHARD_POLLERS)
        await self.supervisor.stop("ingest")
        if self.ingest is not None:
            drained = await self.ingest.drain()
            log.info("shutdown: %d queued readings written", drained)
        await self.supervisor.stop(SHARD_TASKS)  # no alert changes from here on
        await self.supervisor.stop("housekeeping")
        await self._state_writes.join()  # with the alert changes being stored: offered once stored
        await self.registry.writes.join()  # the command log of sends cut short by the stop
        if self.started_at is not None:
            await self.registry.save_states(self.fleet.take_dirty_rows())
            await self.auth.flush_key_use()
        if self.leases is not None:
            await self.leases.stop()  # leases released: the others take over now, not after a lease
        # after the leases: a slow endpoint holds up no takeover
        await self._deliver_alerts(self.settings.alerts.stop_delivery_s)
        await self.supervisor.stop()
        for sender in self.webhooks.values():
            await sender.keep_undelivered()
        if self.publisher is not None:
            self.publisher.count_undelivered()
        if self.shard is not None:
            await self.shard.close_drivers()
        await asyncio.gather(
            *(d.close() for d in self.city_drivers.values() if isinstance(d, Driver)), return_exceptions=True
        )
        await self.store.close()
        await self.registry.engine.dispose()
        self.started_at = None
        gc.unfreeze()  # a process that starts controllers again (tests) gets its memory back
        log.info("controller stopped")

    async def _deliver_alerts(self, within_s: float) -> None:
        """Give the alert channels `within_s` to deliver what they were offered (a stop)."""
        channels: list[WebhookSender | StatePublisher] = [*self.webhooks.values()]
        if self.publisher is not None:
            channels.append(self.publisher)
        if channels and within_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await asyncio.gather(*(c.delivered() for c in channels))

    def refresh_metrics(self) -> None:
        """Set the gauges that describe current state (called when /metrics is scraped)."""
        m = self.metrics
        for state, n in self.fleet.counts_by_state().items():
            m.devices.labels(state).set(n)
        for link_id, driver in self.drivers.items():
            m.link_up.labels(link_id).set(1 if driver.stats.connected else 0)
        m.queue_depth.set(self.queue.qsize())
        m.shard_watching.set(1 if self.serving.watching else 0)

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
