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
import contextlib
import datetime as dt
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from controller.auth.store import AuthStore
from controller.db import create_engine
from lamplighter.simulate import city_from_config
from simulators.lamp import Fault
from tests.conftest import free_port
from tests.controller.city import settings_for
from tests.postgres import fresh_database
from tests.waiting import fetched_until, until

POLL_S = 1.0
LAMPLIGHTER = [sys.executable, "-m", "lamplighter.cli"]


class Instance:
    """One `lamplighter run` process owning `links`."""

    def __init__(self, config: Path, registry_url: str, links: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config, self.log = config, log
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "LAMPLIGHTER_DATABASE__URL": registry_url,
            "LAMPLIGHTER_TELEMETRY__URL": f"sqlite+aiosqlite:///{log.with_suffix('.db')}",
            "LAMPLIGHTER_API__PORT": str(self.port),
            "LAMPLIGHTER_CLUSTER__LINKS": "[" + ",".join(f'"{link}"' for link in links) + "]",
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *LAMPLIGHTER, "run", "-c", str(self.config), env=self.env, stdout=out, stderr=out
            )

    async def ready(self, within_s: float = 30.0) -> float:
        """Wait until /healthz answers 200; returns the monotonic time it first did."""
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.returncode is None, self.log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return time.monotonic()
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.url} not ready in {within_s} s:\n{self.log.read_text()}")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def stopped_at_exit(*instances: Instance) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await asyncio.gather(*(i.stop() for i in instances))


async def test_a_killed_instance_is_replaced_with_alerts_and_overrides_intact(tmp_path: Path) -> None:
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url, interval=POLL_S)
        config = tmp_path / "city.toml"
        auth = AuthStore(create_engine(url))
        city = city_from_config(settings)
        await city.start()
        a = Instance(config, url, ["gw1"], tmp_path / "a.log")
        b = Instance(config, url, ["bus1"], tmp_path / "b.log")
        b_again = Instance(config, url, ["bus1"], tmp_path / "b-again.log")
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
                    ]  # the same alert, not raised a second time

                    # The new instance watches the bus: fixing the fault clears the alert.
                    bus[1].faults.discard(Fault.VOLTAGE_SAG)
                    await fetched_until(open_alerts, lambda page: not page, within_s=15, what="cleared")
                    gw = [city.segments.find("gw1", u) for u in range(1, 7)]
                    assert all(lamp.level_cmd == 40 for lamp in gw)  # A's lamps never left the plan
        finally:
            await city.stop()
            await auth.engine.dispose()
