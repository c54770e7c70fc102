"""Fuzzing the Modbus TCP driver with what a broken gateway sends: garbage bytes, short frames,
wrong transaction ids, unknown function codes, exception codes. A raw asyncio server on loopback
answers every request with a hypothesis-made reply; whatever it is, a read ends within its timeout
with values or with the driver's own error (which the poller counts by kind), and never hangs or
raises anything else. The same link then reads a healthy lamp from a real pymodbus gateway."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import DeviceRef
from drivers.errors import DriverError
from drivers.modbus import ModbusLink, ModbusTcp
from drivers.options import ModbusOptions
from drivers.profile import load_profile
from simulators.lamp import SimLamp
from simulators.modbus_server import GatewaySpec, ModbusSegment
from tests.conftest import free_port
from tests.drivers.test_fuzz import _check_values

LAMP = load_profile("lamp_lcu")
LIMITS = {r.field: (r.min, r.max) for r in LAMP.registers if r.field}
OPTIONS = ModbusOptions(timeout_s=0.2, retries=0, backoff_base_s=0.05, backoff_cap_s=0.1)


def _mbap(tid: int, unit: int, pdu: bytes, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1 if length is None else length, unit) + pdu


@st.composite
def replies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(kind, reply body) — the body is framed against each request by `answer`."""
    kind = draw(st.sampled_from(["raw", "pdu", "short", "exception", "wrong_tid", "bad_length"]))
    if kind == "exception":
        return kind, bytes([draw(st.sampled_from([0x83, 0x84, 0x81, 0x82])), draw(st.integers(0, 255))])
    if kind == "short":
        return kind, bytes([0x04, draw(st.integers(0, 255))])  # a byte count, then nothing
    return kind, draw(st.binary(min_size=0, max_size=40))


def answer(kind: str, body: bytes, request: bytes) -> bytes:
    tid, _, _, unit = struct.unpack(">HHHB", request[:7])
    if kind == "raw":
        return body
    if kind == "wrong_tid":
        return _mbap((tid + 1) % 65536, unit, body)
    if kind == "bad_length":
        return _mbap(tid, unit, body, length=len(body) + 9)
    return _mbap(tid, unit, body)


async def read_against(kind: str, body: bytes) -> None:
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (task := asyncio.current_task()) is not None:
            handlers.add(task)
        try:
            while True:
                head = await reader.readexactly(7)
                (length,) = struct.unpack(">H", head[4:6])
                await reader.readexactly(length - 1)
                writer.write(answer(kind, body, head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    link = ModbusLink("gw", ModbusTcp(host="127.0.0.1", port=port), OPTIONS)
    try:
        async with asyncio.timeout(5):  # never hangs: the driver's own timeout ends it
            try:
                reading = await link.read(DeviceRef("lamp-1", 1, LAMP))
            except DriverError as exc:
                assert exc.kind  # noqa: PT017  # what the poller counts it under
            else:  # the bytes happened to be a valid answer: values within the profile's limits
                _check_values(dict(reading.values), LIMITS)
    finally:
        await link.close()
        server.close()
        # the handlers end when they see the link's connection closed
        if handlers:
            await asyncio.wait(handlers, timeout=2)
        await server.wait_closed()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replies())
def test_whatever_a_gateway_answers_a_read_ends_in_values_or_a_driver_error(reply: tuple[str, bytes]) -> None:
    asyncio.run(read_against(*reply))


async def test_after_garbage_the_same_link_reads_a_healthy_gateway(port: int) -> None:
    """A link that met a broken gateway is not left broken: it reconnects and reads."""
    await read_against("raw", b"\xff\x00garbage")
    gateway = ModbusSegment(
        GatewaySpec(name="gw", host="127.0.0.1", port=port, lamps=(SimLamp(unit_id=1, rated_power_w=100),))
    )
    await gateway.start()
    link = ModbusLink("gw", ModbusTcp(host="127.0.0.1", port=port), OPTIONS)
    try:
        assert (await link.read(DeviceRef("lamp-1", 1, LAMP))).values["voltage_v"]
    finally:
        await link.close()
        await gateway.stop()
