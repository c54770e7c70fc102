"""The BLE driver through bleak's real BleakClient, with the simulated radio as its backend.

This machine has no Bluetooth at all: the radio is simulated at bleak's backend hook (the
transport boundary), and a machine without an adapter is tested for real.
"""

from __future__ import annotations

import pytest

from drivers.base import DeviceRef
from drivers.ble import BleLink, BleRadio
from drivers.errors import DeviceTimeout, LinkUnavailable, ProtocolError
from drivers.profile import load_profile
from simulators.ble_radio import BleFault, SimulatedRadio

SENSOR = load_profile("ble_env_sensor")
ADDRESS = "C4:7C:8D:6A:01:02"


def ref(address: str = ADDRESS) -> DeviceRef:
    return DeviceRef("ble-1", address, SENSOR)


async def test_reads_environmental_sensing_characteristics() -> None:
    radio = SimulatedRadio({ADDRESS: ("ble_env_sensor", "Asia/Ho_Chi_Minh")})
    link = BleLink("radio", backend=radio.backend)
    reading = await link.read(ref())
    assert -40 < float(reading.values["air_temperature_c"]) < 85
    assert 0 <= float(reading.values["humidity_pct"]) <= 100
    assert 990 < float(reading.values["pressure_hpa"]) < 1030
    assert 90 < float(reading.values["battery_pct"]) <= 100
    assert reading.rejected == {}
    assert link.stats.connected


async def test_out_of_range_and_garbled_sensors(caplog: pytest.LogCaptureFixture) -> None:
    radio = SimulatedRadio({ADDRESS: ("ble_env_sensor", "UTC")})
    link = BleLink("radio", backend=radio.backend)
    radio.set_fault(ADDRESS, BleFault.OUT_OF_RANGE, True)
    with pytest.raises(DeviceTimeout, match="not in range"):
        await link.read(ref())
    radio.set_fault(ADDRESS, BleFault.OUT_OF_RANGE, False)
    radio.set_fault(ADDRESS, BleFault.GARBAGE, True)
    reading = await link.read(ref())
    assert reading.values == {}
    assert "1 bytes, expected 2" in reading.rejected["air_temperature_c"]
    with pytest.raises(ProtocolError, match="take no commands"):
        await link.write(ref(), {"dim_level_pct": 1})


async def test_a_machine_without_bluetooth_is_a_link_state_not_a_crash() -> None:
    link = BleLink("radio", BleRadio(backoff_base_s=5, timeout_s=2))  # bleak's real platform backend
    with pytest.raises(LinkUnavailable, match="BLE unavailable"):
        await link.read(ref())
    assert not link.stats.connected
    assert "BLE unavailable" in (link.stats.last_error or "")
    with pytest.raises(LinkUnavailable, match="next attempt in"):  # backs off; does not hammer
        await link.read(ref())


async def test_advertising_sensors_are_read_by_scanning_without_connecting() -> None:
    import asyncio
    import contextlib

    from drivers.base import Reading
    from drivers.ble import BleScanLink
    from tests.waiting import until

    adv = load_profile("ble_adv_sensor")
    radio = SimulatedRadio(
        {"A4:C1:38:00:00:01": ("ble_adv_sensor", "UTC"), "A4:C1:38:00:00:02": ("ble_adv_sensor", "UTC")},
        advertise_interval_s=0.05,
    )
    devices = [DeviceRef("th-1", "a4:c1:38:00:00:01", adv), DeviceRef("th-2", "A4:C1:38:00:00:02", adv)]
    link = BleScanLink("scan", devices, backend=radio.scanner_backend, min_interval_s=0.2)
    readings: list[Reading] = []
    rejected: list[tuple[str, str, str]] = []

    async def keep(r: Reading) -> None:
        readings.append(r)

    task = asyncio.create_task(link.run(keep, lambda *_: None, lambda *a: rejected.append(a)))
    try:
        await until(lambda: {r.device_id for r in readings} == {"th-1", "th-2"})
        assert link.stats.connected
        assert link.stats.up_since is not None
        first = next(r for r in readings if r.device_id == "th-1")
        assert 0 < float(first.values["humidity_pct"]) <= 100
        assert set(first.values) == {"air_temperature_c", "humidity_pct", "battery_pct"}
        # advertisements come every 50 ms; readings at most every 200 ms per device
        count = len(readings)
        await asyncio.sleep(0.5)
        assert len(readings) - count <= 2 * 4
        radio.set_fault("A4:C1:38:00:00:02", BleFault.GARBAGE, True)
        await until(lambda: any(d == "th-2" and reason == "undecodable" for d, reason, _ in rejected))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # a stopped scan hears nothing: the link says so (the fault detectors do not judge silence then)
    assert not link.stats.connected
    assert link.stats.up_since is None


async def test_scanning_without_bluetooth_is_a_link_state() -> None:
    import asyncio
    import contextlib

    from drivers.ble import BleScanLink
    from tests.waiting import until

    link = BleScanLink("scan", [], BleRadio(backoff_base_s=5))  # bleak's real platform scanner
    task = asyncio.create_task(link.run(lambda r: asyncio.sleep(0), lambda *_: None, lambda *_: None))
    try:
        await until(lambda: link.stats.connect_failures >= 1)
        assert "BLE unavailable" in (link.stats.last_error or "")
        assert not task.done()  # waiting to retry, not crashed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
