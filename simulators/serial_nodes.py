"""Simulated legacy lamp nodes on a serial line, speaking the ASCII line protocol.

Nodes share one port (the simulator's end of a socat pty pair) like nodes on an RS-485 line, use
the same lamp physics and faults as the Modbus simulator, and spend wire time (10-bit characters
at the line's baud rate). `corrupt_register` answers with a wrong checksum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

import serial_asyncio_fast

from drivers import firmware
from drivers.line_protocol import Frame, FrameError, LineLayout, decode_frame, encode_frame
from drivers.profile import load_profile
from simulators.bootloader import REBOOT_S, BootloaderModel
from simulators.lamp import Fault, LampModel, SimLamp
from simulators.wire import WireClock

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SerialLineSpec:
    name: str
    port: str  # the simulator's end
    baudrate: int
    nodes: tuple[SimLamp, ...]


class SerialNodeLine:
    """All legacy nodes on one serial line."""

    def __init__(self, spec: SerialLineSpec, *, seed: int | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        rng = random.Random(seed)
        self.lamps: dict[int, LampModel] = {}
        self.layouts: dict[int, LineLayout] = {}
        for node in spec.nodes:
            profile = load_profile(node.profile)
            assert profile.line is not None, f"{node.profile} is not a line profile"
            self.layouts[node.unit_id] = profile.line
            self.lamps[node.unit_id] = LampModel(
                unit_id=node.unit_id,
                rated_power_w=node.rated_power_w,
                nominal_voltage_v=profile.profile.nominal_voltage_v,
                rated_power_factor=profile.profile.power_factor,
                rng=random.Random(rng.random()),
                firmware_version="1.2",
            )
        self.clock = WireClock(spec.baudrate)
        self.clock.char_s = 10 / spec.baudrate  # 8N1: start + 8 data + stop
        self.clock.gap_s = 3.5 * self.clock.char_s
        self.requests = 0
        #: node address → its bootloader, for firmware updates over this line (none: no updates)
        self.bootloaders: dict[int, BootloaderModel] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=self.spec.port, baudrate=self.spec.baudrate
        )
        self._task = asyncio.create_task(self._serve(reader, writer), name=f"serial-sim:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readuntil(b"\n")
                try:
                    request = decode_frame(line)
                except FrameError:
                    await self._firmware(line, writer)  # a firmware frame for a node's bootloader?
                    continue  # a real node ignores what it cannot read
                if request.direction != "request":
                    continue
                self.requests += 1
                reply = self._answer(request)
                await self.clock.transact(len(line), len(reply) if reply else None)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        finally:
            writer.close()

    async def _firmware(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            frame = firmware.decode_frame(line)
        except firmware.FrameError:
            return
        loader = self.bootloaders.get(frame.address)
        if loader is None:
            return
        out = b"".join(r.encode() for r in loader.handle(frame))
        await self.clock.transact(len(line), len(out) or None)
        if out:
            writer.write(out)
            await writer.drain()
        if frame.verb == "ACTIVATE" and loader.state == "updating":
            asyncio.get_running_loop().call_later(REBOOT_S, self._rebooted, frame.address, writer)

    def _rebooted(self, address: int, writer: asyncio.StreamWriter) -> None:
        loader = self.bootloaders[address]
        announcement = loader.reboot()
        self.lamps[address].firmware_version = loader.version  # what READ reports from now on
        if not writer.is_closing():
            writer.write(announcement.encode())

    def _answer(self, request: Frame) -> bytes | None:
        lamp = self.lamps.get(request.address)
        if lamp is None or Fault.NO_RESPONSE in lamp.faults:
            return None
        layout = self.layouts[request.address]
        if request.verb == layout.set_verb:
            reply = self._set(lamp, layout, request)
        elif request.verb == layout.read_verb:
            reply = Frame("reply", request.address, "OK", self._report(lamp, layout))
        else:
            reply = Frame("reply", request.address, "ERR", ("BADCMD", request.verb))
        frame = encode_frame(reply)
        if Fault.CORRUPT_REGISTER in lamp.faults:
            frame = frame[:-4] + b"00\r\n"  # a garbled line: the checksum no longer matches
        return frame

    def _set(self, lamp: LampModel, layout: LineLayout, request: Frame) -> Frame:
        keys = {key: name for name, key in layout.setpoints.items()}
        pairs = request.pairs
        for key, raw in pairs.items():
            name = keys.get(key)
            if name is None:
                return Frame("reply", request.address, "ERR", ("BADKEY", key))
            if (
                not raw.isdigit()
                or (name == "dim_level_pct" and int(raw) > 100)
                or (name == "lamp_on" and raw not in ("0", "1"))
            ):
                return Frame("reply", request.address, "ERR", ("RANGE", key))
        for key, raw in pairs.items():
            lamp.apply_setpoint(keys[key], int(raw))
        return Frame("reply", request.address, "OK", self._report(lamp, layout))

    @staticmethod
    def _report(lamp: LampModel, layout: LineLayout) -> tuple[str, ...]:
        m = lamp.measurements()
        flags = lamp.status_flags()
        out = []
        for spec in layout.fields:
            if spec.type == "status":
                word = sum(1 << bit for flag, bit in (spec.bits or {}).items() if flag in flags)
                out.append(f"{spec.key}={word:02X}")
            elif spec.field in m:
                value = m[spec.field]
                if isinstance(value, bool):
                    text = "1" if value else "0"
                elif isinstance(value, float):
                    text = f"{value:.3f}".rstrip("0").rstrip(".")
                else:
                    text = str(value)
                out.append(f"{spec.key}={text}")
        return tuple(out)
