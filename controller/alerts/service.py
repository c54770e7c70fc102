"""Fault detection in the running controller: the reading path feeds the detectors, alerts go out.

Every device the fleet saw change (a reading, a failed poll, an availability message) is evaluated
within `interval_s`; sensors and access points, which can fail by falling silent, are also checked
every `sweep_interval_s`. Expected state comes from the command path (schedules and operators both
send through it), the sun from the same AstroClock the schedules use. Changes are stored first, then
offered to every channel (MQTT, webhooks, live events) without waiting on any of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from controller.alerts.book import SEVERITY, Alert, AlertBook, AlertEvent
from controller.alerts.detectors import (
    DEFAULT_THRESHOLDS,
    NOTHING_EXPECTED,
    DeviceView,
    Expected,
    awaiting_report,
    detect,
)
from controller.alerts.grouping import Grouping, RootCauses
from controller.alerts.messages import AnyAlertMessage, alert_message, group_message
from controller.alerts.store import AlertStore
from controller.config import ControllerSettings
from controller.device import Device
from controller.faults import AREA_KINDS, FAULT_KINDS, FaultKind, Thresholds
from controller.fleet import Fleet, reading_document
from controller.groups import in_group
from controller.metrics import ControllerMetrics
from controller.supervisor import CriticalSection
from controller.words import LANGUAGES, Language
from drivers.backoff import Backoff
from drivers.base import LinkStats, Reading
from schedules.astro import AstroClock

log = logging.getLogger(__name__)


#: what only a reading shows; silence, failed polls and switching are judged without one
JUDGED_BY_A_READING = frozenset(FAULT_KINDS) - {
    "communicationFailure",
    "sensorStale",
    "accessPointOffline",
    "cyclingLamp",
}
#: judged by silence alone: not while the link its devices report through is down (we could not
#: have heard them), so a broker restart is not a sensorStale for every sensor of the city
JUDGED_BY_SILENCE = frozenset({"sensorStale", "accessPointOffline"})


class AlertChannel(Protocol):
    def offer(self, messages: Sequence[AnyAlertMessage]) -> None:
        """Take events for delivery without waiting (each channel bounds its own queue)."""


def thresholds_by_device(settings: ControllerSettings, devices: Iterable[Device]) -> dict[str, Thresholds]:
    """Defaults ← the device's profile `[alerts]` ← `[[alert_thresholds]]` of its groups, outer first."""
    by_group = sorted(settings.alert_thresholds, key=lambda g: g.group.count("/"))
    cache: dict[tuple[str, str], Thresholds] = {}
    out: dict[str, Thresholds] = {}
    for row in devices:
        key = (row.profile, row.group_path)
        if key not in cache:
            values = Thresholds.model_validate(settings.profile(row.profile).alerts).overrides()
            for g in by_group:
                if in_group(row.group_path, g.group):
                    values.update(g.overrides())
            cache[key] = Thresholds.model_validate(values)
        out[row.id] = cache[key]
    return out


class AlertService:
    def __init__(
        self,
        *,
        devices: Mapping[str, Device],
        configured: Collection[str] | None = None,
        fleet: Fleet,
        thresholds: Mapping[str, Thresholds],
        clocks: Mapping[str, AstroClock],
        expected: Mapping[str, Expected],
        store: AlertStore,
        metrics: ControllerMetrics,
        book: AlertBook,
        channels: Sequence[AlertChannel] = (),
        interval_s: float = 0.2,
        sweep_interval_s: float = 1.0,
        writes: CriticalSection | None = None,
        grouping: Grouping | None = None,
        languages: Sequence[Language] = LANGUAGES,
        fence: Callable[[str], bool] | None = None,
        listening: Mapping[str, LinkStats] | None = None,
    ) -> None:
        """`writes`: where the alert table's writes run, so that stopping never cuts one short
        (a transaction cut short leaves SQLite "database is locked" for the next writer).
        `listening`: the links whose devices report by themselves (MQTT, BLE adverts), by id:
        while one is down its devices' silence is not judged, and after it counts from its return."""
        self.devices = devices  # the devices this instance watches
        self.fence = fence  # link → may this instance still judge it ([cluster] leases)
        self.listening = listening or {}
        self.writes = writes or CriticalSection()
        #: every device of the city's config; alerts of devices outside it are cleared at start
        self.configured = set(devices) if configured is None else set(configured)
        self.fleet = fleet
        self.thresholds = thresholds
        self.clocks = clocks
        self.expected = expected  # the dispatcher's live map: device → what it was last asked
        self.store = store
        self.metrics = metrics
        self.book = book
        self.channels = list(channels)
        self.interval_s = interval_s
        self.sweep_interval_s = sweep_interval_s
        self.started_at = dt.datetime.now(dt.UTC)
        self.evaluations = 0
        self._silent_kinds = [d for d, row in devices.items() if row.kind != "lamp"]
        self._daylight: dict[str, tuple[dt.datetime, bool]] = {}
        self._lock = asyncio.Lock()
        self.languages = languages
        on_link = Counter(row.link_id for row in devices.values())
        self.root_causes = RootCauses(
            grouping or Grouping(), {d: row.link_id for d, row in devices.items()}, on_link
        )

    async def start(self) -> None:
        active = await self.store.active()
        self.book.restore(a for a in active if a.device_id in self.devices)
        gone = [a for a in active if a.device_id not in self.configured and a.kind not in AREA_KINDS]
        if gone:  # devices removed from the config: nobody can clear their alerts any more
            now = dt.datetime.now(dt.UTC)
            for alert in gone:
                alert.cleared_at = now
            await self._publish([AlertEvent("cleared", a) for a in gone])
            log.info("alerts: %d alerts of devices no longer configured cleared", len(gone))
        self.root_causes.update(self.book.active.values())  # announced before the restart
        self.metrics.alerts_open.set(len(self.book.active))
        self.started_at = dt.datetime.now(dt.UTC)
        log.info("alerts: %d open alerts restored", len(self.book.active))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            await asyncio.sleep(self.interval_s)
            ids = self.fleet.take_touched()
            if loop.time() >= next_sweep:
                ids.update(self._silent_kinds)
                next_sweep = loop.time() + self.sweep_interval_s
            if ids:
                await self.evaluate(ids)

    async def evaluate(self, device_ids: Iterable[str], now: dt.datetime | None = None) -> list[AlertEvent]:
        """Run the detectors over these devices now; store and deliver what changed."""
        now = now or dt.datetime.now(dt.UTC)
        events: list[AlertEvent] = []
        sun = {site: self._sun_up(site, now) for site in self.clocks}
        fenced: dict[str, bool] = {}  # a link's lease, asked once per evaluation, not per device
        for device_id in device_ids:
            row = self.devices.get(device_id)
            if row is not None and self.fence is not None:
                off = fenced.get(row.link_id)
                if off is None:
                    off = fenced[row.link_id] = not self.fence(row.link_id)
                if off:
                    continue  # its lease ran out (a pause, a partition): another instance judges it
            link = self.listening.get(row.link_id) if row is not None else None
            view = self.view(device_id, now, sun, row, link)
            if view is None:
                continue
            found = detect(view)
            deaf = link is not None and not link.connected
            if deaf:  # its link is down: we could not have heard it, so its silence says nothing
                found = {k: v for k, v in found.items() if k not in JUDGED_BY_SILENCE}
            # nor cleared, while the link is down or from its return until the device's next
            # report: a sensor stale before an outage is stale until it reports, not "fixed"
            # by the broker coming back
            waiting = deaf or awaiting_report(view)
            self.evaluations += 1
            if not found and not self.book.pending(device_id):
                continue  # healthy and nothing pending: skip building the evidence
            reading = reading_document(view.reading) if view.reading is not None else None
            # No reading since the controller started (a sensor that has not spoken since): what
            # only a reading can show is not judged, so an alert restored open is not cleared by
            # silence (docs/alerts.md: open alerts survive a restart, cleared by good readings).
            unjudged: Collection[str] = JUDGED_BY_A_READING if view.reading is None else ()
            if waiting:
                unjudged = JUDGED_BY_SILENCE.union(unjudged)
            new = self.book.evaluate(device_id, found, now, reading, unjudged)
            for e in new:
                row = self.devices[device_id]
                e.alert.site, e.alert.group = row.site_id, row.group_path
            events += new
        if events:
            await self._publish(events)
        return events

    def view(
        self,
        device_id: str,
        now: dt.datetime,
        sun: Mapping[str, bool] | None = None,
        row: Device | None = None,
        link: LinkStats | None = None,
    ) -> DeviceView | None:
        """`link`: the stats of the listening link it reports through, if it does."""
        row = row or self.devices.get(device_id)
        st = self.fleet.devices.get(device_id)
        if row is None or st is None:
            return None
        reading = st.last_reading if isinstance(st.last_reading, Reading) else None
        rated = row.rated_power_w
        if rated is None and reading is not None:
            value = reading.values.get("rated_power_w")
            rated = float(value) if isinstance(value, (int, float)) and value > 0 else None
        # positional, and the switches as they are kept (the view is judged before the loop
        # turns): one view is built per reading
        return DeviceView(
            device_id,
            row.kind,
            now,
            reading,
            st.switches or (),
            st.state,
            st.consecutive_failures,
            # a device never heard from counts as silent since the controller started
            st.last_seen or self.started_at,
            rated,
            self.expected.get(device_id, NOTHING_EXPECTED),
            (sun[row.site_id] if sun else self._sun_up(row.site_id, now)) if row.kind == "lamp" else False,
            self.thresholds.get(device_id, DEFAULT_THRESHOLDS),
            _later(st.back_online_at, link.up_since if link is not None else None),
        )

    async def restore_areas(self, kind: FaultKind) -> list[Alert]:
        """The open alerts of `kind` about places (AREA_KINDS): taken into the book so that they are
        cleared, not raised again; the caller clears those of places no longer configured."""
        found = [a for a in await self.store.active() if a.kind == kind]
        for alert in found:
            self.book.active[alert.key] = alert
        self.metrics.alerts_open.set(len(self.book.active))
        return found

    async def area(
        self,
        subject: str,
        kind: FaultKind,
        evidence: str | None,
        *,
        site: str,
        group: str,
        now: dt.datetime | None = None,
    ) -> AlertEvent | None:
        """Raise (with `evidence`) or clear (None) the alert of a place — a district's air. The
        caller keeps its own hysteresis; this keeps it once: raised once, cleared once."""
        now = now or dt.datetime.now(dt.UTC)
        active = self.book.active.get((subject, kind))
        if evidence is not None and active is None:
            alert = Alert(subject, kind, SEVERITY[kind], now, evidence, site=site, group=group)
            self.book.active[alert.key] = alert
            event = AlertEvent("raised", alert)
        elif evidence is None and active is not None:
            active.cleared_at = now
            del self.book.active[active.key]
            event = AlertEvent("cleared", active)
        else:
            return None
        await self._publish([event])
        return event

    async def acknowledge(self, alert_id: int, by: str | None) -> Alert | None:
        """Acknowledge an open alert (idempotent); None if no such alert. Cleared alerts stay as they are."""
        async with self._lock:
            alert = next((a for a in self.book.active.values() if a.id == alert_id), None)
            if alert is None:
                return await self.store.get(alert_id)
            if alert.acknowledged_at is None:
                self.book.acknowledge(alert.device_id, alert.kind, dt.datetime.now(dt.UTC), by)
                await self._publish([AlertEvent("acknowledged", alert)], locked=True)
            return alert

    async def _publish(self, events: list[AlertEvent], *, locked: bool = False) -> None:
        if locked:
            await self._record(events)
        else:
            async with self._lock:
                await self._record(events)

    async def _record(self, events: list[AlertEvent]) -> None:
        """Store the changes, retrying: the book has already moved on, so they must not be lost."""
        backoff = Backoff(base_s=0.2, cap_s=10.0)
        while True:
            try:
                # stored and offered as one: a stop that lands while the write runs lets the write
                # finish (CriticalSection) and its channels hear of it, not the database alone
                await self.writes.run(self._store_and_offer(events))
                return
            except SQLAlchemyError as exc:
                delay = backoff.next_delay()
                log.error("storing %d alert changes failed (%s); retry in %.1f s", len(events), exc, delay)
                await asyncio.sleep(delay)

    async def _store_and_offer(self, events: list[AlertEvent]) -> None:
        await self.store.record(events)  # first: the messages carry the ids it gives
        for e in events:
            self.metrics.alerts.labels(e.alert.kind, e.change).inc()
            if e.change != "acknowledged":
                log.info("alert %s: %s %s — %s", e.change, e.alert.device_id, e.alert.kind, e.alert.evidence)
        self.metrics.alerts_open.set(len(self.book.active))
        now = dt.datetime.now(dt.UTC)
        changes = self.root_causes.update(self.book.active.values())
        messages: list[AnyAlertMessage] = [
            alert_message(e, self.root_causes.member_of(e.alert), self.languages) for e in events
        ]
        messages += [group_message(g, change, now, self.languages) for change, g in changes]
        for change, g in changes:
            log.info("alert %s: %s", change, group_message(g, change, now, ("en",)).title["en"])
        for channel in self.channels:
            channel.offer(messages)

    def _sun_up(self, site: str, now: dt.datetime) -> bool:
        cached = self._daylight.get(site)
        if cached is not None and abs((now - cached[0]).total_seconds()) < 60:
            return cached[1]
        clock = self.clocks.get(site)
        up = clock.is_daylight(now) if clock is not None else False
        self._daylight[site] = (now, up)
        return up


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    """The later of two times either of which may be unknown (the device's return, its link's)."""
    return max(a, b) if a is not None and b is not None else a or b
