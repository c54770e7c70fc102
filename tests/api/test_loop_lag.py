"""The costliest requests a viewer may send do not hold up the event loop that polls the lamps.

Before, one preview with `every_min=0.001` held the loop for 14 s: pollers stalled, MQTT sessions
missed their keep-alives, false alerts went out. The test measures the loop's lag (how late a 10 ms
timer fires) while the worst allowed requests run, all at once, and checks the lamps kept being
polled without a timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import httpx

from drivers.base import Reading
from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import until

#: far below what the old requests did (14 s) and below a link's poll timeout (0.3 s here): a lag
#: this long would show up as failed polls
MAX_LAG_S = 0.25


class LagProbe:
    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_the_worst_requests_leave_the_loop_free(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings), running_controller(settings) as ctl:
        await until(lambda: all(st.state == "ok" for st in ctl.fleet.devices.values()), within_s=10)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        # A year of history for one lamp, enough for the largest telemetry page.
        history = [
            Reading(
                "gw1-001", now - dt.timedelta(minutes=10 * i), {"power_w": 50.0 + i % 7, "energy_wh": 1e6 - i}
            )
            for i in range(60_000)
        ]
        await ctl.store.write(history)
        async with api_client(ctl, "engineer") as engineer:
            steps = [
                {"at": f"{12 + i // 4:02d}:{15 * (i % 4):02d}", "level": (i * 7) % 101} for i in range(48)
            ]
            await engineer.put("/api/v1/schedules/busy", json={"id": "busy", "steps": steps})
            await engineer.put("/api/v1/calendars/city", json={"id": "city", "default_program": "busy"})
            await engineer.put("/api/v1/groups/hanoi/calendar", json={"calendar": "city"})

        async with api_client(ctl, "viewer") as viewer:
            week: dict[str, str | int] = {"group": "hanoi", "from": now.isoformat(), "every_min": 1}
            week["to"] = (now + dt.timedelta(days=7)).isoformat()
            year: dict[str, str | int] = {
                "from": (now - dt.timedelta(days=366)).isoformat(),
                "to": now.isoformat(),
            }
            worst: list[tuple[str, dict[str, str | int]]] = [
                ("/api/v1/schedules/preview", week),
                ("/api/v1/schedules/preview", {**week, "device": "gw1-001"}),
                ("/api/v1/devices/gw1-001/telemetry", {**year, "limit": 50_000}),
                ("/api/v1/devices/gw1-001/telemetry", {**year, "every": "1h", "limit": 50_000}),
                ("/api/v1/energy", {**year, "group": "hanoi", "every": "1d"}),
                ("/api/v1/geojson", {}),
                ("/ngsi-ld/v1/entities", {"type": "Streetlight", "limit": 1000}),
                ("/api/v1/kpis", {}),
            ]
            timeouts_before = sum(st.counters["timeout"] for st in ctl.fleet.devices.values())
            probe = LagProbe()
            probe.start()
            answers: list[httpx.Response] = await asyncio.gather(
                *(viewer.get(path, params=params, timeout=120) for path, params in worst * 2)
            )
            await probe.stop()
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text[:200] for a in answers]
    assert len(answers[0].json()["points"]) == 7 * 24 * 60
    assert len(answers[2].json()["points"]) == 50_000
    assert probe.worst < MAX_LAG_S, f"the event loop was held up for {probe.worst:.3f} s"
    timeouts_after = sum(st.counters["timeout"] for st in ctl.fleet.devices.values())
    assert timeouts_after == timeouts_before  # the lamps were polled on time throughout
