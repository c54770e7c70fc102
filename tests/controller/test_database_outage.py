"""PostgreSQL away for a while: the lamps go on being polled and stored, nothing is lost after.

The registry database is made unreachable for this controller alone (connections refused and the
open ones ended, as a database restart or failover does) while a lamp develops a fault. Meanwhile
polling and the telemetry store go on, and the API answers 503 where it needs the database. When
the database is back, the alert is stored and delivered once, and the live states are saved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from controller.registry import SavedState
from simulators.lamp import Fault
from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller, settings_for
from tests.postgres import ADMIN_DSN, fresh_database
from tests.waiting import fetched_until, until


@contextlib.asynccontextmanager
async def database_away(url: str) -> AsyncIterator[None]:
    """Refuse new connections to the database and end the open ones; let them in again after."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_polling_goes_on_without_the_database_and_nothing_is_lost_after(tmp_path: Path) -> None:
    async with fresh_database() as url:
        settings = settings_for(tmp_path, registry_url=url, interval=0.2)
        async with running_city(settings) as city, running_controller(settings) as ctl:
            assert ctl.alerts is not None
            await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="polled")
            async with api_client(ctl, "viewer") as api:
                assert (await api.get("/api/v1/alerts")).status_code == 200
                stored = ctl.metrics.readings_stored._value.get()
                async with database_away(url):
                    city.segments.find("gw1", 3).faults.add(Fault.VOLTAGE_SAG)
                    await asyncio.sleep(6)  # past the credential cache's 5 s
                    # Polling and the telemetry store go on.
                    assert ctl.metrics.readings_stored._value.get() > stored + 50
                    # The live state comes from memory: the IOC keeps it (the key checked before
                    # still counts), while what lives in the database answers 503.
                    live = await api.get("/api/v1/devices/gw1-001")
                    assert live.status_code == 200, live.text
                    answer = await api.get("/api/v1/alerts")
                    assert answer.status_code == 503
                    assert answer.json()["error"]["code"] == "database_unavailable"
                    assert answer.headers["Retry-After"]
                    assert (await api.get("/healthz")).status_code == 200
                # Back: the alert raised meanwhile is stored once, and the states are saved.
                page = await fetched_until(
                    lambda: api.get("/api/v1/alerts", params={"state": "open"}),
                    lambda r: r.status_code == 200 and r.json()["total"] == 1,
                    within_s=20,
                    what="the alert stored",
                )
                assert page.json()["items"][0]["device_id"] == "gw1-003"
                await until(lambda: ctl.supervisor.restarts().get("state-flush", 0) >= 1, what="noticed")

                async def saved() -> list[SavedState]:
                    return list(await ctl.registry.load_states())

                rows = await fetched_until(
                    saved,
                    lambda rs: any(r.device_id == "gw1-003" and r.state == "fault" for r in rs),
                    within_s=20,
                    what="the fault state saved",
                )
                assert len(rows) == 9
