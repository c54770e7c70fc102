"""Simulated Modbus segments: a TCP gateway, or an RS-485 bus with real wire timing.

Each segment is one pymodbus server serving many unit ids, every unit a `LampModel` encoded
through its profile. Register accesses go through pymodbus' `SimDevice.action` hook, which is
where physics are advanced, writes validated, faults applied and wire time spent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.profile import DeviceProfile, load_profile
from simulators.lamp import Fault, LampModel, RegisterImage
from simulators.mqtt_devices import MqttDeviceFleet

if TYPE_CHECKING:
    from simulators.serial_nodes import SerialNodeLine

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SimLamp:
    """One simulated lamp controller on a segment."""

    unit_id: int
    rated_power_w: float
    device_id: str = ""
    profile: str = "lamp_lcu"


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewaySpec:
    """A Modbus TCP gateway listening on host:port."""

    name: str
    host: str
    port: int
    lamps: tuple[SimLamp, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class BusSpec:
    """An RS-485 bus: the simulator serves `port` (its end of a pty pair) at `baudrate`."""

    name: str
    port: str
    baudrate: int
    lamps: tuple[SimLamp, ...]


@dataclass(slots=True)
class SegmentStats:
    requests: int = 0
    writes: int = 0
    rejected_writes: int = 0
    silent: int = 0


class WireClock:
    """Emulates RS-485 wire time for RTU frames: 11-bit characters, 3.5-character silences.

    A pseudo-terminal moves bytes instantly; this clock delays each reply until the moment it
    would have finished arriving on a real bus, and delays a request that arrives before the
    bus's inter-frame silence has elapsed. One transaction occupies the bus for
    (request + 3.5 + response + 3.5) character times.
    """

    BITS_PER_CHAR = 11  # start + 8 data + parity or second stop + stop

    def __init__(self, baudrate: int) -> None:
        self.char_s = self.BITS_PER_CHAR / baudrate
        self.gap_s = 3.5 * self.char_s
        self._bus_free_at = 0.0

    @staticmethod
    def frame_sizes(function_code: int, count: int, writing: bool) -> tuple[int, int]:
        """RTU (request, response) sizes in bytes: address + PDU + CRC16."""
        if function_code in (3, 4):
            return 8, 5 + 2 * count
        if function_code == 6:
            return 8, 8
        if function_code == 16:
            return 9 + 2 * count, 8
        return 8, 5

    def transaction_s(self, request_bytes: int, response_bytes: int) -> float:
        """Bus time of one request/response pair, silences included."""
        return (request_bytes + response_bytes) * self.char_s + 2 * self.gap_s

    async def transact(self, request_bytes: int, response_bytes: int | None) -> None:
        """Wait as long as the wire would; `response_bytes=None` means the slave stays silent."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._bus_free_at)
        done = start + request_bytes * self.char_s
        if response_bytes is not None:
            done += self.gap_s + response_bytes * self.char_s
        self._bus_free_at = done + self.gap_s
        await asyncio.sleep(done - now)


class ModbusSegment:
    """One simulated Modbus server (TCP gateway or RTU bus) with its lamps."""

    def __init__(self, spec: GatewaySpec | BusSpec, *, seed: int | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.stats = SegmentStats()
        self.clock = WireClock(spec.baudrate) if isinstance(spec, BusSpec) else None
        self.lamps: dict[int, LampModel] = {}
        self.images: dict[int, RegisterImage] = {}
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        rng = random.Random(seed)
        images: dict[str, RegisterImage] = {}
        for lamp in spec.lamps:
            if lamp.unit_id in self.lamps:
                raise ValueError(f"{spec.name}: unit id {lamp.unit_id} used twice")
            profile = load_profile(lamp.profile)
            image = images.setdefault(lamp.profile, RegisterImage(profile))
            self.images[lamp.unit_id] = image
            self.lamps[lamp.unit_id] = _new_lamp(lamp, profile, random.Random(rng.random()))

    async def start(self) -> None:
        devices = [self._sim_device(uid) for uid in self.lamps]
        # id 0 answers for every unit without a lamp: silence on RTU, exception 0x0B on TCP.
        devices.append(self._sim_device(0))
        if isinstance(self.spec, GatewaySpec):
            self._server = ModbusTcpServer(
                devices, address=(self.spec.host, self.spec.port), ignore_missing_devices=False
            )
        else:
            self._server = ModbusSerialServer(
                devices,
                framer=FramerType.RTU,
                port=self.spec.port,
                baudrate=self.spec.baudrate,
                ignore_missing_devices=True,
            )
        await self._server.serve_forever(background=True)
        log.info("simulated segment %s serving %d lamps", self.name, len(self.lamps))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    def _sim_device(self, unit_id: int) -> SimDevice:
        image = self.images.get(unit_id) or next(iter(self.images.values()), None)
        size_h = image.size["holding"] if image else 2
        size_i = image.size["input"] if image else 16
        return SimDevice(
            id=unit_id,
            simdata=(
                [SimData(0, values=False, datatype=DataType.BITS)],  # unused coils
                [SimData(0, values=False, datatype=DataType.BITS)],  # unused inputs
                [SimData(0, count=size_h, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=size_i, values=0, datatype=DataType.REGISTERS)],
            ),
            action=functools.partial(self._on_access, unit_id),
        )

    async def _on_access(
        self,
        unit_id: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: Sequence[int] | None,
    ) -> ExcCodes | None:
        lamp = self.lamps.get(unit_id)
        writing = set_values is not None
        silent = lamp is None or Fault.NO_RESPONSE in lamp.faults
        # A write request is executed as set-then-get: spend wire time once, on the first call.
        first_call = function_code in (3, 4) or writing
        if first_call:
            self.stats.requests += 1
            if self.clock is not None:
                req, rsp = WireClock.frame_sizes(function_code, count, writing)
                await self.clock.transact(req, None if silent else rsp)
        if silent or lamp is None:
            if first_call:
                self.stats.silent += 1
            raise NoSuchIdException(f"{self.name}: unit {unit_id} is not answering")
        image = self.images[unit_id]
        if writing:
            assert set_values is not None
            try:
                for name, value in image.decode_write(address, list(set_values)).items():
                    lamp.apply_setpoint(name, value)
            except ValueError as exc:
                self.stats.rejected_writes += 1
                log.info("%s unit %d rejected write: %s", self.name, unit_id, exc)
                return ExcCodes.ILLEGAL_VALUE
            self.stats.writes += 1
            return None
        # blocks start at address 0, so the register index is the address (start_address unused)
        image.fill("input" if function_code == 4 else "holding", lamp, registers)
        return None


def _new_lamp(lamp: SimLamp, profile: DeviceProfile, rng: random.Random) -> LampModel:
    model = LampModel(
        unit_id=lamp.unit_id,
        rated_power_w=lamp.rated_power_w,
        nominal_voltage_v=profile.profile.nominal_voltage_v,
        rated_power_factor=profile.profile.power_factor,
        rng=rng,
    )
    # A city at start-up has history: some energy and burning hours already on the meters.
    model.burning_h = rng.uniform(500, 20_000)
    model.energy_wh = model.burning_h * lamp.rated_power_w * 0.7
    return model


@dataclass(slots=True)
class SegmentSet:
    """All simulated links of a city, by name: Modbus segments and MQTT device fleets."""

    segments: dict[str, ModbusSegment] = field(default_factory=dict)
    mqtt: dict[str, MqttDeviceFleet] = field(default_factory=dict)
    lines: dict[str, SerialNodeLine] = field(default_factory=dict)

    def find(self, segment: str, unit_id: int) -> LampModel:
        """The lamp at `unit_id` on a Modbus segment or serial line; LookupError says what is unknown."""
        holder = self.segments.get(segment) or self.lines.get(segment)
        if holder is None:
            raise LookupError(f"no simulated link {segment!r}")
        lamp = holder.lamps.get(unit_id)
        if lamp is None:
            raise LookupError(f"{segment} has no unit {unit_id}")
        return lamp
