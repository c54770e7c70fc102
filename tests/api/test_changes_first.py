"""A change made while the schedules catch up (a start, a takeover) moves its lamps first.

A catch-up reminds every lamp of the level it was last asked; at 14,600 lamps taken over that takes
seconds per gateway, and an override made meanwhile used to wait for all of it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import func, select

from controller.config import ControllerSettings
from controller.level_sends import REMINDERS_PER_LINK
from controller.registry import CommandRow
from controller.runtime import Controller
from simulators.modbus_server import ModbusSegment
from tests.api.keys import api_client
from tests.api.test_schedules_api import ALL_DAY, CITY, from_now
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import fetched_until, until

#: on an emulated 19,200-baud RS-485 bus: ~30 ms per command, ~3 s for all — time enough for an
#: API call (or a rebuild) to land in the middle, even on a loaded machine
BUS_LAMPS = 100


async def _every_lamp_at_30(settings: ControllerSettings) -> None:
    """One controller runs the city's schedule (30 % all day) until every lamp is at it, and stops:
    the next one to start reminds every lamp of its 30 %, one after the other on the bus."""
    async with running_controller(settings) as ctl, api_client(ctl) as api:
        for path, body in (
            ("/api/v1/schedules/all-day", ALL_DAY),
            ("/api/v1/calendars/city", CITY),
            ("/api/v1/groups/hanoi/calendar", {"calendar": "city"}),
        ):
            assert (await api.put(path, json=body)).status_code == 200
        confirmed = ctl.metrics.commands.labels("set_level", "confirmed")
        await until(lambda: confirmed._value.get() == 6 + BUS_LAMPS, within_s=20, what="all at 30")


def _reminded(bus: ModbusSegment, since: float) -> list[int]:
    """The bus's units written 30 % since `since`, in order."""
    return [w.unit_id for w in bus.writes if w.at >= since and w.setpoints.get("dim_level_pct") == 30]


async def test_an_override_made_during_the_catch_up_goes_before_the_reminders(
    tmp_path: Path, registry_url: str
) -> None:
    settings = settings_for(tmp_path, registry_url=registry_url, bus_lamps=BUS_LAMPS, interval=60)
    async with running_city(settings) as city:
        await _every_lamp_at_30(settings)
        bus = city.segments.segments["bus1"]
        last = city.segments.find("bus1", BUS_LAMPS)
        since = time.monotonic()

        # Restarted: every lamp is reminded of its 30 %, one after the other on the bus.
        async with running_controller(settings) as ctl, api_client(ctl) as api:
            override = from_now("repair", 75, dt.timedelta(hours=1), device_id=f"bus1-{BUS_LAMPS:03d}")
            assert (await api.post("/api/v1/overrides", json=override)).status_code == 201
            await until(lambda: last.level_cmd == 75, within_s=20, what="the override's lamp at 75")
            assert len(_reminded(bus, since)) < BUS_LAMPS - 10, "the override waited for the catch-up"

            # The reminders cut short are sent after it, each lamp once; none left pending in the log.
            await until(
                lambda: len(_reminded(bus, since)) >= BUS_LAMPS - 1,
                within_s=20,
                what="every lamp reminded",
            )
            assert ctl.scheduling is not None
            sends = ctl.scheduling.sends
            await until(sends.idle, within_s=10, what="the passes done")
            assert sorted(_reminded(bus, since)) == list(range(1, BUS_LAMPS))
            for unit in (1, BUS_LAMPS - 1):
                rows, _ = await ctl.registry.commands(f"bus1-{unit:03d}", limit=10, offset=0)
                assert [r.status for r in rows] == ["confirmed", "confirmed"]  # before and after restart
            log: list[CommandRow] = []
            for unit in range(1, BUS_LAMPS + 1):
                log += (await ctl.registry.commands(f"bus1-{unit:03d}", limit=10, offset=0))[0]
            assert "pending" not in {r.status for r in log}


async def test_a_change_while_the_links_work_is_rebuilt_is_asked_again_within_a_second(
    tmp_path: Path,
) -> None:
    """Between a takeover's stop of the old work and the start of the new (2–3 s at 32,000 lamps)
    the API answers 503 not_ready: with Retry-After 1, not the 5 s of a database outage."""
    settings = settings_for(tmp_path, interval=60)
    async with running_city(settings), running_controller(settings) as ctl, api_client(ctl) as api:
        work, ctl.serving.shard = ctl.serving.shard, None  # the moment between the two
        try:
            override = from_now("repair", 75, dt.timedelta(hours=1), device_id="gw1-001")
            refused = await api.post("/api/v1/overrides", json=override)
        finally:
            ctl.serving.shard = work
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "not_ready"
        assert refused.headers["Retry-After"] == "1"
        assert (await api.post("/api/v1/overrides", json=override)).status_code == 201


@asynccontextmanager
async def _reminding(tmp_path: Path) -> AsyncIterator[tuple[Controller, Callable[[], int]]]:
    """A controller started over lamps all at their level, a few lamps into its reminders; with
    a count of the lamps reminded so far."""
    settings = settings_for(tmp_path, bus_lamps=BUS_LAMPS, interval=60)
    async with running_city(settings) as city:
        await _every_lamp_at_30(settings)
        bus, since = city.segments.segments["bus1"], time.monotonic()

        def reminded() -> int:
            return len(set(_reminded(bus, since)))

        async with running_controller(settings) as ctl:
            await until(lambda: reminded() >= 5, within_s=10, what="the reminders under way")
            yield ctl, reminded


async def test_reminders_cut_short_by_a_rebuild_are_sent_by_the_new_work(tmp_path: Path) -> None:
    """A shard gained or handed back rebuilds the work of the links served while a pass runs: the
    lamps it had not reached yet are sent their level by the new work, not taken as sent."""
    async with _reminding(tmp_path) as (ctl, reminded):
        assert ctl.serving.links is not None
        assert reminded() < BUS_LAMPS - 10, "the pass ended before the rebuild began"
        await ctl.serving.serve(ctl.serving.links)  # what a takeover or a hand-back does to the links kept
        await until(lambda: reminded() == BUS_LAMPS, within_s=30, what="every lamp reminded")

        # The pass cut short leaves nothing pending in the command log: what it never sent is
        # withdrawn, what it was sending when stopped says so. (Its last exchange, cut on the
        # bus, can fail the next lamp's: that one is sent again 15 s later, hence the wait.)
        async def statuses() -> set[str]:
            log: list[CommandRow] = []
            for unit in range(1, BUS_LAMPS + 1):
                log += (await ctl.registry.commands(f"bus1-{unit:03d}", limit=10, offset=0))[0]
            return {r.status for r in log}

        await fetched_until(statuses, lambda seen: "pending" not in seen, within_s=30, what="none pending")


async def test_a_transition_during_the_catch_up_does_not_wait_for_the_reminders(tmp_path: Path) -> None:
    """A timed transition (sunset) or a photocell tick sends at once; the reminders it cut short
    are sent after it."""
    async with _reminding(tmp_path) as (ctl, reminded):
        assert ctl.scheduling is not None
        await ctl.scheduling.replan()  # what the runner does at a transition
        assert reminded() < BUS_LAMPS - 10, "the transition waited for the reminders"
        await until(lambda: reminded() == BUS_LAMPS, within_s=20, what="every lamp reminded")


async def test_the_reminders_are_recorded_a_round_at_a_time(tmp_path: Path) -> None:
    """A catch-up's reminders are recorded as they go, a few lamps per link at a time, not all
    before the first leaves: a change or a stop meanwhile has at most a round to withdraw."""
    async with _reminding(tmp_path) as (ctl, reminded):
        async with ctl.registry.engine.connect() as conn:
            on_the_bus = CommandRow.device_id.startswith("bus1-")
            pending = await conn.scalar(
                select(func.count()).select_from(CommandRow).where(CommandRow.status == "pending", on_the_bus)
            )
        assert reminded() < BUS_LAMPS - 10, "the pass ended before the log was read"
        assert pending is not None
        assert 0 < pending <= REMINDERS_PER_LINK  # of the bus's 100
