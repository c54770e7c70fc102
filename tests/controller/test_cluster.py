"""Several controller instances serving one city from one PostgreSQL database ([cluster])."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from api.app import create_app
from api.server import ApiServer
from controller import shard_work
from controller.cluster import owned_links
from controller.commands import Command
from controller.config import ClusterSettings, ControllerSettings, load_config
from controller.runtime import Controller
from controller.service import ControllerService
from simulators.lamp import Fault
from tests.api.keys import auth_headers
from tests.api.test_schedules_api import from_now
from tests.controller.city import running_city, running_controller, settings_for, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.postgres import fresh_database
from tests.waiting import fetched_until, until


def as_instance(settings: ControllerSettings, **cluster: object) -> ControllerSettings:
    return settings.model_copy(update={"cluster": ClusterSettings.model_validate(cluster)})


def one_of_two(settings: ControllerSettings, i: int, link: str, tmp_path: Path) -> ControllerSettings:
    """Instance i of two, serving `link`, with an embedded telemetry store of its own."""
    own = as_instance(settings, instance=i, instances=2, links=[link])
    telemetry = settings.telemetry.model_copy(update={"url": f"sqlite+aiosqlite:///{tmp_path}/t{i}.db"})
    return own.model_copy(update={"telemetry": telemetry})


def test_instances_of_n_share_the_links_out_between_them(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    links = {link.id for link in settings.links}
    for n in (1, 2, 3):
        shards = [owned_links(as_instance(settings, instance=i, instances=n)) for i in range(n)]
        assert set().union(*shards) == links  # every link served …
        assert sum(len(s) for s in shards) == len(links)  # … by exactly one instance


async def test_two_instances_serve_one_city_each_its_own_links(tmp_path: Path) -> None:
    async with fresh_database() as url:
        city_settings = settings_for(tmp_path, registry_url=url)
        one = as_instance(city_settings, links=["gw1"])
        two = as_instance(city_settings, links=["bus1"])
        async with (
            running_city(city_settings) as city,
            running_controller(one) as a,
            running_controller(two) as b,
        ):
            assert set(a.drivers) == {"gw1"}
            assert set(b.drivers) == {"bus1"}
            # Each sees the other's devices through the database.
            await until(lambda: all(st.last_seen for st in a.fleet.devices.values()), what="A sees all")
            await until(lambda: all(st.last_seen for st in b.fleet.devices.values()), what="B sees all")
            server = ApiServer(create_app(ControllerService(a)), "127.0.0.1", 0)
            await server.start()
            try:
                async with httpx.AsyncClient(base_url=server.url, headers=await auth_headers(a)) as api:
                    page = (await api.get("/api/v1/devices", params={"state": "ok"})).json()
                    assert page["total"] == len(a.devices) == 9
                    elsewhere = await api.post(
                        "/api/v1/devices/bus1-001/commands", json={"action": "set_level", "value": 20}
                    )
                    assert elsewhere.status_code == 409
                    assert "another controller instance" in elsewhere.json()["error"]["message"]
                    here = await api.post(
                        "/api/v1/devices/gw1-001/commands", json={"action": "set_level", "value": 20}
                    )
                    assert here.json()["status"] == "confirmed"

                    # An override made through A reaches B's lamps too (B takes up the change).
                    now = dt.datetime.now(dt.UTC)
                    override = {
                        "id": "festival",
                        "group": "hanoi",
                        "level": 70,
                        "start": now.isoformat(),
                        "expiry": (now + dt.timedelta(hours=1)).isoformat(),
                    }
                    steps = [{"at": "12:00", "level": 30}]
                    assert (
                        await api.put("/api/v1/schedules/day", json={"id": "day", "steps": steps})
                    ).is_success
                    assert (
                        await api.put("/api/v1/calendars/c", json={"id": "c", "default_program": "day"})
                    ).is_success
                    assert (await api.put("/api/v1/groups/hanoi/calendar", json={"calendar": "c"})).is_success
                    assert (await api.post("/api/v1/overrides", json=override)).status_code == 201
                    bus = [city.segments.find("bus1", u) for u in (1, 2, 3)]
                    gw = [city.segments.find("gw1", u) for u in range(1, 7)]
                    await until(
                        lambda: all(lamp.level_cmd == 70 for lamp in bus + gw), within_s=10, what="70 %"
                    )

                    # A fault on B's link: B raises the alert, A's API shows it (shared alert table).
                    city.segments.find("bus1", 2).faults.add(Fault.VOLTAGE_SAG)
                    await until(
                        lambda: b.alerts is not None and len(b.alerts.book.active) == 1, what="B's alert"
                    )
                    assert a.alerts is not None
                    assert not a.alerts.book.active  # A does not watch B's devices
                    # B's book moves first, then B stores the change that A reads.
                    listed = await fetched_until(
                        lambda: api.get("/api/v1/alerts"), lambda r: r.json()["total"] == 1
                    )
                    alerts = listed.json()
                    assert [x["device_id"] for x in alerts["items"]] == ["bus1-002"]
                    geo = (await api.get("/api/v1/geojson")).json()
                    ringed = {
                        f["id"]: f["properties"]["alerts"]
                        for f in geo["features"]
                        if f["properties"]["alerts"]
                    }
                    assert ringed == {"bus1-002": ["supplyVoltageTooLow"]}  # on A's map too
                    kpis = (await api.get("/api/v1/kpis")).json()
                    assert kpis["faults_open"] == {"supplyVoltageTooLow": 1}
            finally:
                await server.stop()
        # A restarted alone keeps B's alert open: it is B's device, still in the config.
        async with running_controller(one) as again:
            assert again.alerts is not None
            assert [x.device_id for x in await again.alert_store.active()] == ["bus1-002"]


async def test_three_instances_started_at_once_on_a_fresh_database_all_come_up(tmp_path: Path) -> None:
    """They race to create the tables and mirror the config; PostgreSQL refused all but one with a
    unique violation in pg_type until the start-up work took an advisory lock."""
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url)
        controllers = [
            Controller(
                as_instance(settings, instance=i, instances=3).model_copy(
                    update={  # the embedded telemetry store is each instance's own file
                        "telemetry": settings.telemetry.model_copy(
                            update={"url": f"sqlite+aiosqlite:///{tmp_path}/telemetry-{i}.db"}
                        )
                    }
                )
            )
            for i in range(3)
        ]
        try:
            await asyncio.gather(*(c.start() for c in controllers))
            assert all(len(c.devices) == 9 for c in controllers)
        finally:
            await asyncio.gather(*(c.stop() for c in controllers if c.started_at is not None))


async def test_a_shared_group_link_is_ingested_by_every_instance_and_watched_by_its_owner(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Each telemetry message is stored by exactly one instance; the owner of the link (who alone
    watches its devices) and the other instance both end up with the newest reading."""
    path = write_mqtt_city(
        tmp_path,
        mosquitto.port,
        [("env-1", "hk1", "env_sensor"), ("env-2", "hk2", "env_sensor")],
        extra="state_flush_interval_s = 0.2",
    )
    path.write_text(
        path.read_text().replace("backoff_cap_s = 0.5\n", 'backoff_cap_s = 0.5\nshared_group = "city"\n')
    )
    async with fresh_database() as url:
        settings = load_config(path)
        settings = settings.model_copy(update={"database": settings.database.model_copy(update={"url": url})})

        def instance(i: int, links: list[str]) -> ControllerSettings:
            own = as_instance(settings, instance=i, instances=2, links=links)
            telemetry = settings.telemetry.model_copy(
                update={"url": f"sqlite+aiosqlite:///{tmp_path}/t{i}.db"}
            )
            return own.model_copy(update={"telemetry": telemetry})

        async with (
            running_controller(instance(0, ["broker"])) as owner,
            running_controller(instance(1, [])) as other,
        ):
            assert set(owner.drivers) == set(other.drivers) == {"broker"}  # both subscribe
            await until(
                lambda: owner.drivers["broker"].stats.connected and other.drivers["broker"].stats.connected
            )
            body = {"pm": {"pm2_5": 41, "pm10": 70}, "climate": {"temperature": 24.5, "humidity": 77}}
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
                for lux in range(40):
                    await device.publish("city/env/hk1/telemetry", json.dumps({**body, "lux": lux}), qos=1)
                    await asyncio.sleep(0.01)

            def newest(ctl: Controller) -> object:
                doc = ctl.fleet["env-1"].last_reading_doc() or {}
                return doc.get("values", {}).get("illuminance_lx")

            await until(lambda: newest(owner) == 39 and newest(other) == 39, what="both see the newest")

            async def stored_by_each() -> list[list[float]]:
                now = dt.datetime.now(dt.UTC)
                return [
                    [
                        float(stored_lux)
                        for p in await ctl.store.query("env-1", now - dt.timedelta(minutes=1), now)
                        if (stored_lux := p.values["illuminance_lx"]) is not None
                    ]
                    for ctl in (owner, other)
                ]

            # a reading is live state first and stored after (the ingest's batch), and the other
            # instance hears of the newest at once: wait for what the two stores say
            stored = await fetched_until(
                stored_by_each, lambda each: len(each[0]) + len(each[1]) >= 40, what="all 40 stored"
            )
            assert sorted(stored[0] + stored[1]) == list(range(40))  # each stored once, none lost
            assert stored[0]
            assert stored[1]
            assert owner.alerts is not None
            assert other.alerts is not None
            assert "env-1" in owner.alerts.devices
            assert "env-1" not in other.alerts.devices


async def test_another_instance_s_state_changes_are_seen_within_2_s(tmp_path: Path) -> None:
    """A lamp going out or being dimmed on B's link shows in A's API within 2 s, long before the
    state flush (30 s here) would bring it: B announces it (PostgreSQL NOTIFY)."""
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url)
        poller = settings.poller.model_copy(update={"state_flush_interval_s": 30.0})
        settings = settings.model_copy(update={"poller": poller})

        async with (
            running_city(settings) as city,
            running_controller(one_of_two(settings, 0, "gw1", tmp_path)) as a,
            running_controller(one_of_two(settings, 1, "bus1", tmp_path)) as b,
        ):
            await until(lambda: b.fleet["bus1-002"].state == "ok", what="B polls its lamps")
            await until(lambda: a.fleet["bus1-002"].state == "ok", within_s=5, what="A heard of them")
            city.segments.find("bus1", 2).faults.add(Fault.LAMP_FAILURE)
            await until(lambda: b.fleet["bus1-002"].state == "fault", what="B sees the lamp out")
            seen_by_b = asyncio.get_running_loop().time()
            await until(lambda: a.fleet["bus1-002"].state == "fault", within_s=2, what="A sees it within 2 s")
            assert asyncio.get_running_loop().time() - seen_by_b <= 2.0

            assert b.dispatcher is not None
            row = await b.dispatcher.execute("bus1-003", Command(action="set_level", value=35))
            assert row.status == "confirmed"
            await until(
                lambda: a.fleet["bus1-003"].last_values().get("dim_level_pct") == 35,
                within_s=2 + 0.2,  # a poll (0.2 s) reads the new level, then it is announced
                what="A sees the new level within 2 s",
            )


async def test_a_schedule_stored_through_one_instance_reaches_another_s_lamps_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An override made through A is announced (PostgreSQL NOTIFY): B reads the schedules again at
    once, not at its next look. The look is put a minute away here, so only the news can do it."""
    monkeypatch.setattr(shard_work, "SCHEDULE_SYNC_S", 60.0)
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url)
        async with (
            running_city(settings) as city,
            running_controller(as_instance(settings, instance=0, instances=2, links=["gw1"])) as a,
            running_controller(as_instance(settings, instance=1, instances=2, links=["bus1"])) as b,
        ):
            sa, sb = a.scheduling, b.scheduling
            assert sa is not None
            assert sb is not None
            await asyncio.sleep(0.5)  # B's listener is up (it listens from its start)
            bus = [city.segments.find("bus1", u) for u in (1, 2, 3)]
            await sa.put("program", "flat", {"id": "flat", "steps": [{"at": "00:00", "level": 35}]})
            await sa.put("calendar", "city", {"id": "city", "default_program": "flat"})
            await sa.put("group_calendar", "hanoi", {"calendar": "city"})
            await until(lambda: all(lamp.level_cmd == 35 for lamp in bus), within_s=5, what="B's lamps at 35")
            await sa.put(
                "override", "festival", from_now("festival", 65, dt.timedelta(hours=1), group="hanoi")
            )
            await until(lambda: "festival" in sb.overrides, within_s=2, what="B took it up")
            await until(lambda: all(lamp.level_cmd == 65 for lamp in bus), within_s=5, what="B's lamps at 65")
            # and the other way: a change made through B reaches A and A's lamps
            gw = [city.segments.find("gw1", u) for u in range(1, 7)]
            await sb.remove("override", "festival")
            await until(lambda: "festival" not in sa.overrides, within_s=2, what="A took it up")
            await until(lambda: all(lamp.level_cmd == 35 for lamp in gw), within_s=5, what="A's lamps at 35")


async def test_each_instance_s_live_events_are_the_city_s(tmp_path: Path) -> None:
    """An IOC's live stream (`GET /api/v1/events`) on one instance carries the alerts the other
    instance raised and the reports it answered — once each, in every instance's stream."""
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url)

        async with (
            running_city(settings) as city,
            running_controller(one_of_two(settings, 0, "gw1", tmp_path)) as a,
            running_controller(one_of_two(settings, 1, "bus1", tmp_path)) as b,
            a.events.listen() as on_a,
            b.events.listen() as on_b,
        ):
            await until(lambda: b.fleet["bus1-002"].state == "ok", what="B polls its lamps")
            city.segments.find("bus1", 2).faults.add(Fault.LAMP_FAILURE)
            city.segments.find("gw1", 1).faults.add(Fault.LAMP_FAILURE)
            b.events.publish("report", json.dumps({"id": 7, "verdict": "confirmed"}))

            streams: dict[Any, list[tuple[str, str]]] = {on_a: [], on_b: []}

            def heard(listener: Any) -> list[tuple[str, str]]:
                """What the listener's stream carried so far: (event, device or report id)."""
                while not listener.queue.empty():
                    event = listener.queue.get_nowait()
                    data = json.loads(event.data)
                    streams[listener].append((event.name, str(data.get("device_id", data.get("id")))))
                return streams[listener]

            wanted = {("alert", "bus1-002"), ("alert", "gw1-001"), ("report", "7")}
            await until(lambda: wanted <= set(heard(on_a)), within_s=5, what="A's stream has the city's")
            await until(lambda: wanted <= set(heard(on_b)), within_s=5, what="B's stream has the city's")
            await asyncio.sleep(1.0)  # nothing comes twice, even late
            for listener in (on_a, on_b):
                got = [e for e in heard(listener) if e in wanted]
                assert sorted(got) == sorted(wanted)
