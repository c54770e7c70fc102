"""The serial line driver against simulated legacy nodes over a socat pty pair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.base import DeviceRef, SerialPort
from drivers.errors import DecodeError, DeviceTimeout, LinkUnavailable, ProtocolError
from drivers.options import SerialOptions
from drivers.profile import load_profile
from drivers.serial import SerialLineLink
from simulators.lamp import Fault, SimLamp
from simulators.pty import PtyPair
from simulators.serial_nodes import SerialLineSpec, SerialNodeLine

NODE = load_profile("legacy_node")


def ref(address: int) -> DeviceRef:
    return DeviceRef(f"node-{address}", address, NODE)


@pytest.fixture
async def line(pty_dir: Path) -> AsyncIterator[tuple[SerialLineLink, SerialNodeLine]]:
    async with PtyPair(pty_dir / "line") as pair:
        nodes = tuple(SimLamp(unit_id=i, rated_power_w=150, profile="legacy_node") for i in range(1, 5))
        sim = SerialNodeLine(
            SerialLineSpec(name="line", port=str(pair.device_end), baudrate=19200, nodes=nodes)
        )
        await sim.start()
        link = SerialLineLink(
            "line",
            SerialPort(port=str(pair.controller_end), baudrate=19200),
            SerialOptions(timeout_s=0.3, retries=0),
        )
        yield link, sim
        await link.close()
        await sim.stop()


async def test_read_write_and_read_back(line: tuple[SerialLineLink, SerialNodeLine]) -> None:
    link, sim = line
    reading = await link.read(ref(1))
    assert 220 < float(reading.values["voltage_v"]) < 240
    assert reading.values["firmware_version"] == "1.2"
    assert reading.rejected == {}
    await link.write(ref(1), {"dim_level_pct": 70, "lamp_on": True})
    assert await link.read_setpoints(ref(1)) == {"dim_level_pct": 70, "lamp_on": True}
    assert float((await link.read(ref(1))).values["power_w"]) == pytest.approx(105, rel=0.02)
    assert sim.lamps[1].level_cmd == 70


async def test_faults_silence_and_garbled_replies(line: tuple[SerialLineLink, SerialNodeLine]) -> None:
    link, sim = line
    sim.lamps[2].faults.add(Fault.NO_RESPONSE)
    with pytest.raises(DeviceTimeout, match="node 02: no reply"):
        await link.read(ref(2))
    sim.lamps[3].faults.add(Fault.CORRUPT_REGISTER)
    with pytest.raises(DecodeError, match="node 03: reply failed its checksum"):
        await link.read(ref(3))
    sim.lamps[4].faults.add(Fault.LAMP_FAILURE)
    assert (await link.read(ref(4))).status["lamp_failure"] is True
    assert (await link.read(ref(1))).device_id == "node-1"  # the line recovers


async def test_a_node_refusing_a_command_is_a_protocol_error(
    line: tuple[SerialLineLink, SerialNodeLine],
) -> None:
    link, _ = line
    with pytest.raises(ProtocolError, match="node 01: refused: BADKEY XX"):
        await link._transact(ref(1), "SET", ("XX=1",))
    with pytest.raises(DecodeError, match=r"outside 0\.\.100"):
        await link.write(ref(1), {"dim_level_pct": 150})  # refused before anything is sent


async def test_missing_port_is_link_unavailable_with_backoff(pty_dir: Path) -> None:
    link = SerialLineLink("line", SerialPort(port=str(pty_dir / "absent")), SerialOptions(backoff_base_s=5))
    with pytest.raises(LinkUnavailable, match="cannot open"):
        await link.read(ref(1))
    with pytest.raises(LinkUnavailable, match="next attempt in"):
        await link.read(ref(1))
    assert link.stats.connect_failures == 1
