"""A shard's work rebuilt for another set of links (a takeover, a hand-back) keeps what it knew of
the links it still serves, and reads the command history for the links it gains."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import asyncpg
import pytest

from controller import shard_work
from controller.commands import Command
from controller.registry import LastAsked
from tests.api.keys import api_client
from tests.api.test_schedules_api import ALL_DAY, CITY, from_now
from tests.controller.city import running_city, running_controller, settings_for
from tests.postgres import fresh_database
from tests.waiting import until


async def test_a_rebuild_keeps_what_the_lamps_still_served_were_asked_and_reads_the_gained_ones(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings), running_controller(settings) as ctl:
        assert ctl.dispatcher is not None
        for lamp, level in (("gw1-001", 40), ("bus1-001", 20)):
            row = await ctl.dispatcher.execute(lamp, Command(action="set_level", value=level))
            assert row.status == "confirmed"
        asked = ctl.dispatcher.expected["gw1-001"]
        assert asked.level == 40

        await ctl.serving.serve(frozenset({"gw1"}))  # bus1 handed back …
        rebuilt_at = dt.datetime.now(dt.UTC)
        await ctl.serving.serve(frozenset({"gw1", "bus1"}))  # … and taken over again
        assert ctl.dispatcher is not None
        # gw1's lamp is judged from its own command still, not from the rebuild
        assert ctl.dispatcher.expected["gw1-001"] == asked
        # bus1's, read from the history, is judged from the rebuild on (it may have lost power
        # meanwhile and come back at its fail-safe level)
        gained = ctl.dispatcher.expected["bus1-001"]
        assert (gained.on, gained.level) == (True, 20)
        assert gained.since is not None
        assert gained.since >= rebuilt_at


async def test_a_rebuild_that_failed_before_reading_the_history_is_retried_with_all_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database away while a takeover reads what the gained lamps were asked: the rebuild
    fails, and the next one reads the history for every link, trusting nothing of the failed one."""
    settings = settings_for(tmp_path)
    async with running_city(settings), running_controller(settings) as ctl:
        assert ctl.dispatcher is not None
        row = await ctl.dispatcher.execute("bus1-001", Command(action="set_level", value=20))
        assert row.status == "confirmed"
        await ctl.serving.serve(frozenset({"gw1"}))
        read = ctl.registry.last_asked

        async def away(links: Collection[str] | None = None) -> Sequence[LastAsked]:
            raise OSError("the database is away")  # the read itself, as a partition fails it

        monkeypatch.setattr(ctl.registry, "last_asked", away)
        with pytest.raises(OSError, match="away"):
            await ctl.serving.serve(frozenset({"gw1", "bus1"}))
        monkeypatch.setattr(ctl.registry, "last_asked", read)
        await ctl.serving.serve(frozenset({"gw1", "bus1"}))  # what the lease keeper's next tick does
        assert ctl.dispatcher is not None
        gained = ctl.dispatcher.expected.get("bus1-001")
        assert gained is not None
        assert (gained.on, gained.level) == (True, 20)


async def test_a_stalled_database_holds_back_the_watching_of_a_takeover_not_its_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL stalls while a takeover reads what the gained lamps were asked (another session
    holds a lock on the command history): every link held is polled meanwhile, the rebuild gives
    up at its deadline rather than waiting for the database, and the lease keeper's next try, once
    the database answers, watches and schedules them with the history read."""
    monkeypatch.setattr(shard_work, "WATCH_START_S", 1.0)
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url)
        async with running_city(settings), running_controller(settings) as ctl, api_client(ctl) as api:
            assert ctl.dispatcher is not None
            row = await ctl.dispatcher.execute("bus1-001", Command(action="set_level", value=20))
            assert row.status == "confirmed"
            await ctl.serving.serve(frozenset({"gw1"}))

            holder = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                stall = holder.transaction()
                await stall.start()
                await holder.execute("LOCK TABLE commands IN ACCESS EXCLUSIVE MODE")
                began = time.monotonic()
                with pytest.raises(TimeoutError):
                    await ctl.serving.serve(frozenset({"gw1", "bus1"}))
                assert time.monotonic() - began < 5, "the rebuild waited for the stalled database"
                assert ctl.scheduling is None
                assert ctl.alerts is None
                polled = {d: ctl.fleet[d].counters["polls_ok"] for d in ("gw1-001", "bus1-001")}
                await until(
                    lambda: all(ctl.fleet[d].counters["polls_ok"] > n + 3 for d, n in polled.items()),
                    within_s=5,
                    what="the links polled while the database is stalled",
                )
                health = (await api.get("/healthz")).json()
                assert (health["status"], health["watching"]) == ("degraded", False)
                assert "lamplighter_shard_watching 0.0" in (await api.get("/metrics")).text
                await stall.rollback()
            finally:
                await holder.close()

            await ctl.serving.watch_again()  # what the lease keeper's next tick does
            assert ctl.scheduling is not None
            assert ctl.alerts is not None
            health = (await api.get("/healthz")).json()
            assert (health["status"], health["watching"]) == ("ok", True)
            assert "lamplighter_shard_watching 1.0" in (await api.get("/metrics")).text
            gained = ctl.dispatcher.expected.get("bus1-001")
            assert gained is not None
            assert (gained.on, gained.level) == (True, 20)


async def test_a_change_made_while_the_work_is_rebuilt_waits_for_it_rather_than_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An override posted during a takeover's rebuild is taken once the rebuild is done (it used
    to get 503 not_ready, and its client a second's Retry-After), and a command to a lamp just
    taken over is sent, not refused as another instance's."""
    settings = settings_for(tmp_path)
    async with running_city(settings) as city, running_controller(settings) as ctl, api_client(ctl) as api:
        for path, body in (("/api/v1/schedules/all-day", ALL_DAY), ("/api/v1/calendars/city", CITY)):
            assert (await api.put(path, json=body)).status_code == 200
        await ctl.serving.serve(frozenset({"gw1"}))
        read, reading, release = ctl.registry.last_asked, asyncio.Event(), asyncio.Event()

        # the real read of what the gained lamps were asked, its answer held until released
        async def held(links: Collection[str] | None = None) -> Sequence[LastAsked]:
            answer = await read(links)
            reading.set()
            await release.wait()
            return answer

        monkeypatch.setattr(ctl.registry, "last_asked", held)
        takeover = asyncio.create_task(ctl.serving.serve(frozenset({"gw1", "bus1"})))
        await reading.wait()
        posted = asyncio.create_task(
            api.post(
                "/api/v1/overrides", json=from_now("fix", 45, dt.timedelta(hours=1), device_id="bus1-002")
            )
        )
        commanded = asyncio.create_task(
            api.post("/api/v1/devices/bus1-003/commands", json={"action": "set_level", "value": 15})
        )
        await asyncio.sleep(0.5)
        assert not posted.done()  # waiting for the rebuild, not turned away
        assert not commanded.done()
        release.set()
        await takeover
        assert (await posted).status_code == 201
        answer = await commanded
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "confirmed"
        assert city.segments.find("bus1", 3).level_cmd == 15
