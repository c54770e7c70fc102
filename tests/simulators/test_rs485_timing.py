"""The RS-485 simulator spends real wire time, so bus limits in tests are the bus's own."""

from __future__ import annotations

import time
from pathlib import Path

from drivers.base import DeviceRef, SerialPort
from drivers.modbus import ModbusLink
from drivers.options import ModbusOptions
from drivers.profile import load_profile
from simulators.lamp import SimLamp
from simulators.modbus_server import BusSpec, ModbusSegment
from simulators.pty import PtyPair
from simulators.wire import WireClock


def test_frame_sizes_follow_the_rtu_spec() -> None:
    assert WireClock.frame_sizes(4, 14, False) == (8, 33)
    assert WireClock.frame_sizes(16, 2, True) == (13, 8)
    clock = WireClock(9600)
    assert clock.char_s == 11 / 9600
    # 14-register poll: 8 + 33 characters and two 3.5-character silences
    assert clock.transaction_s(8, 33) == (41 + 7) * 11 / 9600


async def test_polls_cannot_outrun_the_wire(pty_dir: Path) -> None:
    baud = 9600
    async with PtyPair(pty_dir / "bus") as pair:
        seg = ModbusSegment(
            BusSpec(
                name="bus",
                port=str(pair.device_end),
                baudrate=baud,
                lamps=(SimLamp(unit_id=1, rated_power_w=50),),
            )
        )
        await seg.start()
        link = ModbusLink(
            "bus",
            SerialPort(port=str(pair.controller_end), baudrate=baud),
            ModbusOptions(timeout_s=1, retries=0),
        )
        ref = DeviceRef("l", 1, load_profile("lamp_lcu"))
        try:
            await link.read(ref)
            n = 10
            start = time.perf_counter()
            for _ in range(n):
                await link.read(ref)
            elapsed = time.perf_counter() - start
        finally:
            await link.close()
            await seg.stop()
    wire = n * WireClock(baud).transaction_s(8, 33)
    # a pty moves bytes in microseconds; only the emulated wire makes this take ~0.5 s
    assert elapsed >= 0.95 * wire
