"""Schedules in the running controller: persisted objects, one plan per site, and the levels it sends.

The database owns programs, calendars, group calendars and overrides (created through the API).
`schedules.runner` wakes this at each group's next transition and each override's start and expiry,
never minute by minute. A start brings each lamp to its current level (catch-up); a change, the
lamps whose level it changes and those last asked something else. Levels are decided by
`schedules.Plan.resolve` and sent through the controller's one command path, in the background
(controller/background_sends.py), changes before reminders (controller/level_sends.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from controller import schedule_objects
from controller.background_sends import BackgroundSends
from controller.commands import CommandDispatcher
from controller.device import Device
from controller.fleet import Fleet
from controller.groups import in_group
from controller.level_sends import LevelSends
from controller.schedule_history import SYSTEM, Change
from schedules.astro import AstroClock
from schedules.model import Calendar, Override, Program
from schedules.plan import Plan, ScheduleError, Target
from schedules.runner import TransitionRunner

log = logging.getLogger(__name__)
Kind = Literal["program", "calendar", "group_calendar", "override"]
_MODELS: dict[str, type[BaseModel]] = {"program": Program, "calendar": Calendar, "override": Override}
#: how many of each a city may keep (overrides: those not yet expired); every change re-plans them all
MAX_OBJECTS: dict[str, int] = {"program": 1_000, "calendar": 1_000, "override": 10_000}


class Scheduling:
    """Owns the schedule objects, the per-site plans built from them, and the runner."""

    def __init__(
        self,
        engine: AsyncEngine,
        devices: dict[str, Device],
        clocks: dict[str, AstroClock],
        dispatcher: CommandDispatcher,
        fleet: Fleet,
        city: Mapping[str, Device] | None = None,
        announce_as: str | None = None,
    ) -> None:
        """`devices`: the lamps this instance schedules; `city`: every device, which overrides and
        group calendars may name (the same unless several instances share the city);
        `announce_as`: this instance's name, to tell the others of each change (controller/state_news.py)."""
        self.engine = engine
        self.announce_as = announce_as
        self.devices = devices
        self.city = devices if city is None else city
        self.clocks = clocks  # site id → its sun
        self.dispatcher = dispatcher
        self.fleet = fleet
        self.programs: dict[str, Program] = {}
        self.calendars: dict[str, Calendar] = {}
        self.group_calendars: dict[str, str] = {}  # group path → calendar id
        self.overrides: dict[str, Override] = {}
        #: changes made here: how many began, and how many are being saved — a read of the shared
        #: database that began before one was saved may lack it (`reload_if_changed`)
        self._changes_begun = 0
        self._changes_saving = 0
        #: wakes this at transitions; its photocell_every_s: how often lamps in a photocell period
        #: are re-decided from fresh lux readings
        self.runner = TransitionRunner(self._fire, self._photocell_tick)
        #: lux readings older than this are ignored (a silent sensor means fail-safe on)
        self.lux_max_age = dt.timedelta(minutes=10)
        self._photocell_on: dict[str, bool] = {}
        self._plans: dict[str, Plan] | None = None
        self.levels = LevelSends(dispatcher)
        self.sends = BackgroundSends(self._send_pass)
        #: the stored objects as this instance last read or wrote them, to notice other instances' changes
        self._stored: dict[tuple[str, str], Any] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, sent: Mapping[str, int] | None = None) -> None:
        """`sent`: the levels this instance already sent these lamps (a shard's work rebuilt for
        more links): they are not sent again, the others' are."""
        self._stored = await schedule_objects.read_all(self.engine)
        for (kind, key), doc in self._stored.items():
            self._load(kind, key, doc)
        self.runner.start()
        if sent is None:
            self.replan_in_background()
        else:
            self.levels.sent = {d: level for d, level in sent.items() if d in self.devices}
            self.replan_in_background(catch_up=False)

    @property
    def sent(self) -> Mapping[str, int]:
        """lamp → the level last sent to it by this instance's schedules."""
        return self.levels.sent

    async def reload_if_changed(self) -> bool:
        """Take up what another controller instance changed in the shared database ([cluster]);
        True if anything had. The objects were checked by the instance that stored them."""
        begun = self._changes_begun
        stored = await schedule_objects.read_all(self.engine)
        if stored == self._stored:
            return False
        if self._changes_saving or self._changes_begun != begun:
            # A change made here meanwhile may be missing from what was read: taking it up would
            # drop that change from memory (an API PUT then met "unknown calendar" for the calendar
            # it had just stored; bench-city, 2026-12-07). The next look reads it all again.
            return False
        # No await between here and replan: the swap is atomic for the event loop.
        self.programs, self.calendars, self.group_calendars, self.overrides = {}, {}, {}, {}
        for (kind, key), doc in stored.items():
            self._load(kind, key, doc)
        self._stored = stored
        log.info("schedules: changes from another instance taken up (%d objects)", len(stored))
        self._replan_changed()
        return True

    async def stop(self) -> None:
        self.runner.stop()
        await self.sends.stop()

    # -- changes (from the API) --------------------------------------------------------------------
    async def put(self, kind: Kind, key: str, doc: dict[str, Any], change: Change = SYSTEM) -> None:
        """Store a validated object after checking that the whole plan still works with it; its
        history keeps the version, with who changed it and why."""
        self._check_new(kind, key, doc)
        previous = self._snapshot()
        self._load(kind, key, doc)
        try:
            self.check()
        except ScheduleError:
            self._restore(previous)
            raise
        with self._saving():
            await self._save(kind, key, doc, change)
        self._replan_changed()

    async def remove(self, kind: Kind, key: str, change: Change = SYSTEM) -> bool:
        store = self._store(kind)
        if key not in store:
            return False
        previous = self._snapshot()
        del store[key]
        self._plans = None
        try:
            self.check()
        except ScheduleError:
            self._restore(previous)
            raise
        with self._saving():
            await schedule_objects.save(self.engine, kind, key, None, change, self.announce_as)
        self._stored.pop((kind, key), None)
        self._replan_changed()
        return True

    def _check_new(self, kind: Kind, key: str, doc: dict[str, Any]) -> None:
        """What one object must satisfy on its own: a target that exists, room for one more."""
        if kind == "override":
            device, group = doc.get("device_id"), doc.get("group")
            if device is not None and device not in self.city:
                raise ScheduleError(f"override {key!r}: no device {device!r}")
            if group is not None and not any(in_group(row.group_path, group) for row in self.city.values()):
                raise ScheduleError(f"override {key!r}: unknown group {group!r}: no device is in it")
        store = self._store(kind)
        if key in store or kind == "group_calendar":
            return
        now = dt.datetime.now(dt.UTC)
        live = [o for o in self.overrides.values() if o.expiry > now] if kind == "override" else store
        if len(live) >= MAX_OBJECTS[kind]:
            raise ScheduleError(
                f"at most {MAX_OBJECTS[kind]:,} {kind}s"
                + (" that have not expired" if kind == "override" else "")
                + f"; remove one before adding {key!r}"
            )

    def check(self) -> None:
        """Every assigned group can be resolved for the next two nights; else ScheduleError says why."""
        for group, calendar_id in self.group_calendars.items():
            if calendar_id not in self.calendars:
                raise ScheduleError(f"group {group!r} uses unknown calendar {calendar_id!r}")
            if not any(in_group(row.group_path, group) for row in self.city.values()):
                raise ScheduleError(f"unknown group {group!r}: no device is in it")
        now = dt.datetime.now(dt.UTC)
        groups = self._groups_by_site()
        for site, plan in self.plans().items():
            for group in groups.get(site, []):
                list(plan.transitions(Target(group), now, now + dt.timedelta(days=2)))

    # -- plans and the runner ----------------------------------------------------------------------
    def plans(self) -> dict[str, Plan]:
        """One plan per site, built once per change (plans cache holidays and override indexes)."""
        if self._plans is None:
            calendars = {g: self.calendars[c] for g, c in self.group_calendars.items() if c in self.calendars}
            overrides = tuple(self.overrides.values())
            self._plans = {
                site: Plan(clock, dict(self.programs), calendars, overrides)
                for site, clock in self.clocks.items()
            }
        return self._plans

    def plan_for(self, row: Device) -> Plan | None:
        return self.plans().get(row.site_id)

    def draft_plan(
        self, row: Device, program: Program | None = None, calendar: Calendar | None = None
    ) -> Plan:
        """The plan of `row`'s site as it would be with this program or calendar saved — built
        aside, so nothing running sees the draft."""
        programs = dict(self.programs) | ({program.id: program} if program else {})
        stored = dict(self.calendars) | ({calendar.id: calendar} if calendar else {})
        calendars = {g: stored[c] for g, c in self.group_calendars.items() if c in stored}
        return Plan(self.clocks[row.site_id], programs, calendars, tuple(self.overrides.values()))

    async def replan(self) -> None:
        """At a timed transition: the lamps whose level changed get it now, then the next
        transitions are scheduled."""
        await self.apply(self._scheduled_lamps())
        self._arm()

    def replan_in_background(self, *, catch_up: bool = True) -> None:
        """The transitions armed at once, the levels sent in the background (`catch_up`: to every
        lamp, else to those not sent theirs yet)."""
        if catch_up:
            self.levels.sent.clear()
        self._arm()
        self.sends.request()

    def _replan_changed(self) -> None:
        """After a change: the lamps whose level it changes, and those last asked something else
        than what the schedules sent them (by hand, or a command that never arrived), are sent
        their level; the others already have it (at 50,000 lamps, every change sent every lamp
        of every instance its level again: minutes of commands for one override)."""
        self.levels.forget_asked_otherwise()
        self.replan_in_background(catch_up=False)

    async def _send_pass(self) -> bool:
        """One background pass; True while some lamps' levels are not confirmed."""
        lamps = self._scheduled_lamps()
        try:
            await self.apply(lamps, give_way=self.sends.wanted)
        finally:
            self._arm()  # the photocell periods are known once decided
        self.levels.unconfirmed &= {row.id for row in lamps}  # not those left alone now
        return bool(self.levels.unconfirmed)

    def _arm(self) -> None:
        plans = self.plans()
        groups = self._groups_by_site()
        self.runner.arm(
            plans,
            {site: groups.get(site, []) for site in plans},
            self.overrides.values(),
            photocell=bool(self._photocell_on),
        )

    async def apply(
        self, lamps: Iterable[Device], give_way: Callable[[], bool] | None = None
    ) -> dict[str, int]:
        """Send each lamp the level the plan decides now, unless it was sent it; returns lamp →
        level. `give_way()`: a background pass's changes go first, and its reminders stop once
        this is true (controller/level_sends.py)."""
        now = dt.datetime.now(dt.UTC)
        decided: dict[str, int] = {}
        deciders = {
            site: plan.deciding(now, self._site_lux(site, now)) for site, plan in self.plans().items()
        }
        photocell_on = self._photocell_on
        for row in lamps:
            decide = deciders.get(row.site_id)
            if decide is None:
                continue
            try:
                age = self._age(row) if decide.uses_age else None
                decision = decide(row.group_path, row.id, photocell_on.get(row.id, False), age)
            except ScheduleError as exc:
                log.warning("cannot schedule %s: %s", row.id, exc)
                continue
            if decision.photocell_on is None:
                self._photocell_on.pop(row.id, None)
            else:
                self._photocell_on[row.id] = decision.photocell_on
            decided[row.id] = decision.level
        if await self.levels.send(self.levels.take(decided), give_way=give_way):
            self.sends.request()  # reminders left for a send that waited: another pass after it
        return decided

    async def _photocell_tick(self) -> None:
        """Re-decide the lamps in photocell periods from the latest lux; only changes are sent."""
        await self.apply(r for r in self._scheduled_lamps() if r.id in self._photocell_on)
        if not self._photocell_on:
            self.runner.photocell_done()

    def _site_lux(self, site: str, now: dt.datetime) -> float | None:
        """Ambient light at a site: the median of its sensors' fresh `illuminance_lx` readings."""
        values = []
        for row in self.devices.values():
            if row.site_id != site or row.kind != "sensor" or row.id not in self.fleet:
                continue
            st = self.fleet[row.id]
            value = st.last_values().get("illuminance_lx")
            if (
                isinstance(value, int | float)
                and st.last_seen is not None
                and now - st.last_seen <= self.lux_max_age
            ):
                values.append(float(value))
        return statistics.median(values) if values else None

    async def _fire(self) -> None:
        await self.replan()  # resolve is pure and cheap; only changed levels are sent

    # -- helpers --------------------------------------------------------------------------------
    def _scheduled_lamps(self) -> list[Device]:
        group_of = self._calendar_groups()
        return [row for row in self.devices.values() if row.kind == "lamp" and group_of(row.group_path)]

    def _calendar_groups(self) -> Callable[[str], str | None]:
        """Group path → the nearest group with a calendar, found once per path (a city has
        hundreds of paths for its 50,000 lamps: per lamp, this held the loop ~0.1 s a pass)."""
        found: dict[str, str | None] = {}
        calendars = self.group_calendars

        def group_of(path: str) -> str | None:
            if path not in found:
                found[path] = next((g for g in Target(path).groups() if g in calendars), None)
            return found[path]

        return group_of

    def _groups_by_site(self) -> dict[str, list[str]]:
        """Each site's groups with a calendar, in one pass over the devices."""
        group_of = self._calendar_groups()
        groups: dict[str, set[str]] = defaultdict(set)
        for row in self.devices.values():
            if (g := group_of(row.group_path)) is not None:
                groups[row.site_id].add(g)
        return {site: sorted(gs) for site, gs in groups.items()}

    def _age(self, row: Device) -> float | None:
        value = self.fleet[row.id].last_values().get("burning_hours_h") if row.id in self.fleet else None
        return float(value) if isinstance(value, int | float) else None

    def _store(self, kind: str) -> dict[str, Any]:
        stores: dict[str, dict[str, Any]] = {
            "program": self.programs,
            "calendar": self.calendars,
            "group_calendar": self.group_calendars,
            "override": self.overrides,
        }
        return stores[kind]

    def _load(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        self._plans = None
        if kind == "group_calendar":
            self.group_calendars[key] = str(doc["calendar"])
        else:
            self._store(kind)[key] = _MODELS[kind].model_validate(doc)

    @contextlib.contextmanager
    def _saving(self) -> Iterator[None]:
        self._changes_begun += 1
        self._changes_saving += 1
        try:
            yield
        finally:
            self._changes_saving -= 1

    def _snapshot(self) -> tuple[dict[str, Any], ...]:
        return dict(self.programs), dict(self.calendars), dict(self.group_calendars), dict(self.overrides)

    def _restore(self, snap: tuple[dict[str, Any], ...]) -> None:
        self.programs, self.calendars, self.group_calendars, self.overrides = (dict(s) for s in snap)
        self._plans = None

    async def _save(self, kind: str, key: str, doc: dict[str, Any], change: Change) -> None:
        await schedule_objects.save(self.engine, kind, key, doc, change, self.announce_as)
        self._stored[(kind, key)] = doc
