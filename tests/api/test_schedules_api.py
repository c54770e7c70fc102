"""Schedules through the API: programs, calendars, overrides; the runner moves real (simulated) lamps."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

from controller.commands import Command
from simulators.lamp import Fault
from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import until

ALL_DAY = {"id": "all-day", "steps": [{"at": "12:00", "level": 30}]}  # one step: 30 % day and night
CITY = {"id": "city", "default_program": "all-day"}


def iso(t: dt.datetime) -> str:
    return t.isoformat()


def from_now(override_id: str, level: int, lasting: dt.timedelta, **more: str) -> dict[str, object]:
    """An override's body starting now; `more`: its target (group or device_id) and reason."""
    now = dt.datetime.now(dt.UTC)
    return {"id": override_id, "level": level, "start": iso(now), "expiry": iso(now + lasting), **more}


async def test_programs_calendars_overrides_drive_the_lamps_and_survive_a_restart(
    tmp_path: Path, registry_url: str
) -> None:
    settings = settings_for(tmp_path, registry_url=registry_url)
    async with running_city(settings) as city:
        async with running_controller(settings) as ctl, api_client(ctl) as api:
            assert (await api.put("/api/v1/schedules/all-day", json=ALL_DAY)).status_code == 200
            assert (await api.put("/api/v1/calendars/city", json=CITY)).status_code == 200
            rsp = await api.put("/api/v1/groups/hanoi/ba-dinh/calendar", json={"calendar": "city"})
            assert rsp.status_code == 200, rsp.text
            lamps = [city.segments.find("gw1", u) for u in range(1, 7)]
            # catch-up: every lamp of the group is at its scheduled level at once
            await until(lambda: all(lamp.level_cmd == 30 for lamp in lamps), within_s=5)
            assert city.segments.find("bus1", 1).level_cmd == 0  # another group: untouched

            override = from_now("repair", 80, dt.timedelta(seconds=2), device_id="gw1-002", reason="test")
            assert (await api.post("/api/v1/overrides", json=override)).status_code == 201
            await until(lambda: lamps[1].level_cmd == 80, within_s=5)
            # at expiry the runner's job puts the program back, without waiting for a transition
            await until(lambda: lamps[1].level_cmd == 30, within_s=10)

            preview = (
                await api.get("/api/v1/schedules/preview", params={"group": "hanoi/ba-dinh", "every_min": 60})
            ).json()
            assert preview["lamps"] == 6
            assert {p["level"] for p in preview["points"]} == {30}
            assert preview["energy_kwh"] > 0

            bad = await api.put(
                "/api/v1/schedules/x", json={"id": "y", "steps": [{"at": "12:00", "level": 1}]}
            )
            assert bad.status_code == 422
            bad = await api.put(
                "/api/v1/schedules/z", json={"id": "z", "steps": [{"at": "12:00", "level": 101}]}
            )
            assert bad.status_code == 422
            assert "less than or equal to 100" in bad.json()["error"]["message"]
            bad = await api.put("/api/v1/groups/nowhere/calendar", json={"calendar": "city"})
            assert bad.status_code == 422
            assert "unknown group 'nowhere'" in bad.json()["error"]["message"]
            ghost = {"id": "ghostly", "default_program": "ghost"}
            assert (await api.put("/api/v1/calendars/ghostly", json=ghost)).status_code == 200
            bad = await api.put("/api/v1/groups/hanoi/hoan-kiem/calendar", json={"calendar": "ghostly"})
            assert bad.status_code == 422
            assert "unknown program 'ghost'" in bad.json()["error"]["message"]
            late = from_now("late", 1, dt.timedelta(0), group="hanoi")
            bad = await api.post("/api/v1/overrides", json=late)
            assert bad.status_code == 422
            assert "expires before it starts" in bad.json()["error"]["message"]
            unordered = {
                "id": "unordered",
                "steps": [{"at": "23:00", "level": 60}, {"event": "sunset", "level": 100}],
            }
            assert (await api.put("/api/v1/schedules/unordered", json=unordered)).status_code == 200
            bad = await api.put("/api/v1/calendars/city", json={"id": "city", "default_program": "unordered"})
            assert bad.status_code == 422
            assert "comes before" in bad.json()["error"]["message"]
        for lamp in lamps:
            lamp.level_cmd = 0  # as if the lamps lost power while the controller was down
        async with running_controller(settings) as ctl2:
            assert ctl2.scheduling is not None
            assert set(ctl2.scheduling.programs) >= {"all-day", "unordered"}
            assert ctl2.scheduling.group_calendars == {"hanoi/ba-dinh": "city"}
            # catch-up after a restart: at the scheduled level at once, not at the next transition
            await until(lambda: all(lamp.level_cmd == 30 for lamp in lamps), within_s=5)
    await asyncio.sleep(0)


async def test_a_change_sends_the_lamps_it_changes_and_puts_back_one_set_by_hand(
    tmp_path: Path, registry_url: str
) -> None:
    """A change does not send every lamp its level again (at 50,000 lamps: minutes of commands for
    one override): the lamps whose level it changes are sent theirs, and so is a lamp last asked
    something else by hand; the others already have theirs."""
    settings = settings_for(tmp_path, registry_url=registry_url)
    async with running_city(settings) as city, running_controller(settings) as ctl, api_client(ctl) as api:
        assert ctl.dispatcher is not None
        for path, body in (
            ("/api/v1/schedules/all-day", ALL_DAY),
            ("/api/v1/calendars/city", CITY),
            ("/api/v1/groups/hanoi/calendar", {"calendar": "city"}),
        ):
            assert (await api.put(path, json=body)).status_code == 200
        gw = [city.segments.find("gw1", u) for u in range(1, 7)]
        bus = [city.segments.find("bus1", u) for u in range(1, 4)]
        confirmed = ctl.metrics.commands.labels("set_level", "confirmed")
        await until(lambda: confirmed._value.get() == len(gw + bus), within_s=10, what="all confirmed")
        await ctl.dispatcher.execute("gw1-002", Command(action="set_level", value=90))
        since = time.monotonic()

        override = from_now("market", 75, dt.timedelta(hours=1), group="hanoi/hoan-kiem")
        assert (await api.post("/api/v1/overrides", json=override)).status_code == 201
        await until(lambda: all(lamp.level_cmd == 75 for lamp in bus) and gw[1].level_cmd == 30)
        await asyncio.sleep(0.5)  # anything else sent would be written by now
        written = [w.unit_id for w in city.segments.segments["gw1"].writes if w.at >= since]
        assert written == [2]  # gw1's other five lamps were at their level already


async def test_a_lamp_that_missed_its_level_is_sent_it_again_once_it_answers(
    tmp_path: Path, registry_url: str
) -> None:
    """A command that is not confirmed (a lamp not answering, a timeout under load) is sent again
    later, not only at the next change: one of 200 lamps stayed at its old level in bench-city."""
    settings = settings_for(tmp_path, registry_url=registry_url)
    async with running_city(settings) as city, running_controller(settings) as ctl, api_client(ctl) as api:
        assert ctl.scheduling is not None
        ctl.scheduling.sends.retry_first_s = 0.5
        silent = city.segments.find("gw1", 3)
        silent.faults.add(Fault.NO_RESPONSE)
        for path, body in (
            ("/api/v1/schedules/all-day", ALL_DAY),
            ("/api/v1/calendars/city", CITY),
            ("/api/v1/groups/hanoi/ba-dinh/calendar", {"calendar": "city"}),
        ):
            assert (await api.put(path, json=body)).status_code == 200
        others = [city.segments.find("gw1", u) for u in (1, 2, 4, 5, 6)]
        await until(lambda: all(lamp.level_cmd == 30 for lamp in others), within_s=10)
        failed = ctl.metrics.commands.labels("set_level", "failed")
        await until(lambda: failed._value.get() >= 1, within_s=10, what="the silent lamp's command failed")
        assert silent.level_cmd != 30
        silent.faults.discard(Fault.NO_RESPONSE)
        await until(lambda: silent.level_cmd == 30, within_s=10, what="sent again once it answers")
