"""`kill -9` of one controller instance, and the operator's takeover (docs/deployment.md).

Two `lamplighter run` processes share one PostgreSQL database and one simulated city: A owns the
TCP gateway, B the RS-485 bus. B is killed without warning; while it is gone its lamps lose power
and come back at their fail-safe full level. The takeover is the documented operator action: start
an instance with B's shard again (the same config and `[cluster]` setting, on any machine). Its
alert and the override must be intact, and every lamp must be at its scheduled level within one poll
of the new instance answering.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx

from controller.auth.store import AuthStore
from controller.db import create_engine
from lamplighter.simulate import city_from_config
from simulators.lamp import Fault
from tests.controller.city import settings_for
from tests.controller.instances import Instance, stopped_at_exit
from tests.postgres import fresh_database
from tests.waiting import fetched_until, until

POLL_S = 1.0


def links(*names: str) -> dict[str, str]:
    """The links an instance owns; one instance of one in the config: no leases, no automatic
    takeover (the operator's way, docs/deployment.md)."""
    return {"LAMPLIGHTER_CLUSTER__LINKS": "[" + ",".join(f'"{n}"' for n in names) + "]"}


async def test_a_killed_instance_is_replaced_with_alerts_and_overrides_intact(tmp_path: Path) -> None:
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url, interval=POLL_S)
        config = tmp_path / "city.toml"
        auth = AuthStore(create_engine(url))
        city = city_from_config(settings)
        await city.start()
        a = Instance(config, url, tmp_path / "a.log", links("gw1"))
        b = Instance(config, url, tmp_path / "b.log", links("bus1"))
        b_again = Instance(config, url, tmp_path / "b-again.log", links("bus1"))
        bus = [city.segments.find("bus1", u) for u in (1, 2, 3)]
        try:
            async with stopped_at_exit(a, b, b_again):
                await asyncio.gather(a.start(), b.start())
                await asyncio.gather(a.ready(), b.ready())
                _, key = await auth.create_key("ioc", "admin", "tests")
                api = httpx.AsyncClient(base_url=a.url, headers={"X-API-Key": key.plaintext}, timeout=10)
                async with api:
                    # A schedule for the whole city, then an event override, both made through A.
                    now = dt.datetime.now(dt.UTC)
                    steps = [{"at": "00:00", "level": 40}]
                    for path, body in (
                        ("/api/v1/schedules/flat", {"id": "flat", "steps": steps}),
                        ("/api/v1/calendars/c", {"id": "c", "default_program": "flat"}),
                        ("/api/v1/groups/hanoi/calendar", {"calendar": "c"}),
                    ):
                        assert (await api.put(path, json=body)).is_success
                    override = {
                        "id": "night-market",
                        "group": "hanoi/hoan-kiem",
                        "level": 75,
                        "start": now.isoformat(),
                        "expiry": (now + dt.timedelta(hours=2)).isoformat(),
                        "reason": "night market",
                    }
                    assert (await api.post("/api/v1/overrides", json=override)).status_code == 201
                    await until(lambda: all(lamp.level_cmd == 75 for lamp in bus), what="B's lamps 75 %")

                    # A fault on B's bus: B raises the alert, A's API shows it.
                    bus[1].faults.add(Fault.VOLTAGE_SAG)

                    async def open_alerts() -> list[dict[str, Any]]:
                        page: dict[str, Any] = (
                            await api.get("/api/v1/alerts", params={"state": "open"})
                        ).json()
                        return list(page["items"])

                    before = await fetched_until(open_alerts, bool, within_s=15, what="B's alert")
                    assert [x["device_id"] for x in before] == ["bus1-002"], before

                    await b.kill()  # no shutdown, no last state flush
                    for lamp in bus:  # a power cut on the bus: the controllers boot at full
                        lamp.level_cmd, lamp.on_cmd = 100, True
                    # A keeps answering for the whole city meanwhile, B's alert included.
                    assert [x["id"] for x in await open_alerts()] == [before[0]["id"]]
                    assert (await api.get("/api/v1/overrides")).json()[0]["id"] == "night-market"

                    await b_again.start()  # the takeover: B's shard started again
                    answered = await b_again.ready()
                    await until(  # one poll counted from its first answer
                        lambda: all(lamp.level_cmd == 75 for lamp in bus),
                        within_s=POLL_S - (time.monotonic() - answered),
                        what="every lamp of the taken-over bus at its scheduled level within one poll",
                    )
                    after = await open_alerts()
                    assert [(x["id"], x["raised_at"]) for x in after] == [
                        (before[0]["id"], before[0]["raised_at"])
                    ], after  # the same alert, not raised a second time (nor another one)

                    # The new instance watches the bus: fixing the fault clears the alert.
                    bus[1].faults.discard(Fault.VOLTAGE_SAG)
                    await fetched_until(open_alerts, lambda page: not page, within_s=15, what="cleared")
                    gw = [city.segments.find("gw1", u) for u in range(1, 7)]
                    assert all(lamp.level_cmd == 40 for lamp in gw)  # A's lamps never left the plan
        finally:
            await city.stop()
            await auth.engine.dispose()
