"""The controller end to end: simulators on real sockets → pollers → queue → store and state."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.commands import Command
from controller.config import load_config
from controller.runtime import Controller
from controller.telemetry import SqliteTelemetryStore
from simulators.lamp import Fault
from tests.controller.city import running_city, running_controller, settings_for, write_city
from tests.waiting import until


def states(ctl: Controller) -> dict[str, str]:
    return {d: st.state for d, st in ctl.fleet.devices.items()}


async def test_every_device_on_tcp_and_rtu_is_polled_and_stored(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings), running_controller(settings) as ctl:
        await until(lambda: all(s == "ok" for s in states(ctl).values()))
        assert len(ctl.fleet.devices) == 9
        await until(lambda: ctl.metrics.readings_stored._value.get() >= 18)
        points = await ctl.store.query(
            "bus1-002",
            datetime.now(UTC) - timedelta(minutes=1),
            datetime.now(UTC) + timedelta(seconds=1),
        )
        assert points
        assert 220 < float(points[-1].values["voltage_v"] or 0) < 240


async def test_a_failing_device_never_stops_the_others(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        city.segments.find("gw1", 2).faults.add(Fault.NO_RESPONSE)
        city.segments.find("bus1", 1).faults.add(Fault.NO_RESPONSE)
        city.segments.find("gw1", 3).faults.add(Fault.LAMP_FAILURE)
        await until(lambda: states(ctl)["gw1-002"] == "offline" and states(ctl)["bus1-001"] == "offline")
        await until(lambda: states(ctl)["gw1-003"] == "fault")
        st = ctl.fleet["gw1-002"]
        assert st.counters["timeout"] >= 2
        assert "gateway target failed to respond" in (st.last_error or "")
        assert ctl.fleet["bus1-001"].counters["timeout"] >= 2
        before = ctl.fleet["bus1-002"].counters["polls_ok"]
        await until(lambda: ctl.fleet["bus1-002"].counters["polls_ok"] >= before + 3)
        assert states(ctl)["gw1-001"] == "ok"
        city.segments.find("gw1", 2).faults.clear()
        await until(lambda: states(ctl)["gw1-002"] == "ok")


async def test_command_is_written_then_confirmed_by_read_back(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        assert ctl.dispatcher is not None
        row = await ctl.dispatcher.execute("bus1-003", Command(action="set_level", value=45))
        assert row.status == "confirmed"
        assert row.readback == {"dim_level_pct": 45, "lamp_on": True}
        assert city.segments.find("bus1", 3).level_cmd == 45
        await until(lambda: ctl.fleet["bus1-003"].last_values().get("dim_level_pct") == 45)

        city.segments.find("gw1", 4).faults.add(Fault.NO_RESPONSE)
        failed = await ctl.dispatcher.execute("gw1-004", Command(action="switch", value=True))
        assert failed.status == "failed"
        assert "timeout" in failed.detail

        past = datetime.now(UTC) - timedelta(seconds=1)
        expired = await ctl.dispatcher.execute(
            "gw1-005", Command(action="set_level", value=10, expires_at=past)
        )
        assert expired.status == "expired"
        assert city.segments.find("gw1", 5).level_cmd == 0
        rows, total = await ctl.registry.commands("gw1-004", 10, 0)
        assert total == 1
        assert rows[0].status == "failed"


async def test_shutdown_drains_the_queue_and_state_survives_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings) as city:
        city.segments.find("gw1", 1).faults.add(Fault.DRIVER_FAULT)
        async with running_controller(settings) as ctl:
            await until(lambda: states(ctl)["gw1-001"] == "fault")
            # stop while readings may still be queued: all polled readings must reach the store
        polled = ctl.metrics.polls.link("gw1").ok + ctl.metrics.polls.link("bus1").ok
        stored = ctl.metrics.readings_stored._value.get()
        assert stored == polled
        ctl2 = Controller(settings)
        await ctl2.start()
        try:
            # restored from the registry before the first poll
            assert ctl2.fleet["gw1-001"].state == "fault"
            assert ctl2.fleet["gw1-001"].counters["polls_ok"] >= 1
        finally:
            await ctl2.stop()


async def test_links_down_at_start_come_up_when_the_hardware_does(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_controller(settings) as ctl:
        await until(lambda: states(ctl)["gw1-001"] == "offline")
        assert ctl.fleet["gw1-001"].counters["unreachable"] >= 2
        async with running_city(settings):
            await until(lambda: all(s == "ok" for s in states(ctl).values()), within_s=10)


async def test_undecodable_value_is_counted_and_the_rest_of_the_reading_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="controller.ingest")
    settings = settings_for(tmp_path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        city.segments.find("gw1", 6).faults.add(Fault.CORRUPT_REGISTER)
        await until(lambda: ctl.fleet["gw1-006"].counters["decode"] >= 2)
        st = ctl.fleet["gw1-006"]
        doc = st.last_reading_doc() or {}
        assert "voltage_v" not in doc["values"]
        assert "6553.5 outside 0.0..400.0" in doc["rejected"]["voltage_v"]
        assert doc["values"]["energy_wh"] > 0  # valid fields of the same reading are kept
        assert "supply_voltage (input 2)" in (st.last_error or "")
        assert ctl.metrics.decode_rejections._value.get() >= 2
        said = [r.getMessage() for r in caplog.records if r.name == "controller.ingest"]
        assert len(said) == 1  # logged, once a minute at most, not once per reading
        assert "gw1-006: value of voltage_v rejected, the rest of the reading kept" in said[0]
        city.segments.find("gw1", 6).faults.clear()
        await until(lambda: ctl.fleet["gw1-006"].last_error is None)


async def test_each_device_is_polled_at_its_own_interval(tmp_path: Path) -> None:
    path = write_city(tmp_path, gw_lamps=2, bus_lamps=1, interval=0.1)
    # slow down one device: an engineer asks for a 2 s interval on gw1-002 only
    text = path.read_text()
    text += """
[[devices]]
id = "slow"
link = "gw1"
unit_id = 3
profile = "lamp_lcu"
latitude = 21.0
longitude = 105.8
poll_interval_s = 2.0
"""
    path.write_text(text)
    settings = load_config(path)
    async with running_city(settings), running_controller(settings) as ctl:
        await asyncio.sleep(1.5)
        fast = ctl.fleet["gw1-001"].counters["polls_ok"]
        slow = ctl.fleet["slow"].counters["polls_ok"]
    assert fast >= 8  # 0.1 s interval over 1.5 s
    assert slow <= 1  # 2 s interval: at most the first poll


async def test_failed_store_writes_are_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings):
        ctl = Controller(settings)
        real_write = ctl.store.write
        failures = 0

        async def flaky_write(batch):  # type: ignore[no-untyped-def]
            # the store's boundary: a disk that refuses the first two transactions
            nonlocal failures
            if failures < 2:
                failures += 1
                raise OSError("disk I/O error")
            await real_write(batch)

        ctl.store.write = flaky_write  # type: ignore[method-assign]
        await ctl.start()
        try:
            await until(lambda: ctl.metrics.readings_stored._value.get() >= 20, within_s=10)
        finally:
            await ctl.stop()
        polled = sum(st.counters["polls_ok"] for st in ctl.fleet.devices.values())
        assert ctl.metrics.store_errors._value.get() == 2
        assert ctl.metrics.readings_stored._value.get() == polled
        check = SqliteTelemetryStore(settings.telemetry.url)
        await check.open()
        try:
            rows = 0
            for device_id in ctl.fleet.devices:
                rows += len(
                    await check.query(
                        device_id,
                        datetime.now(UTC) - timedelta(minutes=5),
                        datetime.now(UTC) + timedelta(seconds=1),
                    )
                )
        finally:
            await check.close()
        assert rows == polled
