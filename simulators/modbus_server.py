"""Simulated Modbus segments: a TCP gateway, or an RS-485 bus with real wire timing.

Each segment is one pymodbus server serving many unit ids, every unit a `LampModel` encoded
through its profile. Register accesses go through pymodbus' `SimDevice.action` hook, which is
where physics are advanced, writes validated, faults applied and wire time spent.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.profile import DeviceProfile, load_profile
from simulators.lamp import Fault, LampModel, RegisterImage, SimLamp
from simulators.wire import WireClock

log = logging.getLogger(__name__)
WRITES_KEPT = 10_000


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewaySpec:
    """A Modbus TCP gateway listening on host:port."""

    name: str
    host: str
    port: int
    lamps: tuple[SimLamp, ...]
    #: more ports the same gateway answers on: give each controller instance its own and every
    #: write in `ModbusSegment.writes` says whose it was (the takeover tests)
    also_ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One accepted write: when (monotonic), to which unit, through which port, what."""

    at: float
    unit_id: int
    port: int
    setpoints: dict[str, float]


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


class ModbusSegment:
    """One simulated Modbus server (TCP gateway or RTU bus) with its lamps."""

    def __init__(self, spec: GatewaySpec | BusSpec, *, seed: int | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.stats = SegmentStats()
        self.clock = WireClock(spec.baudrate) if isinstance(spec, BusSpec) else None
        self.lamps: dict[int, LampModel] = {}
        self.images: dict[int, RegisterImage] = {}
        #: the latest accepted writes, oldest first (a real gateway's event log, bounded)
        self.writes: deque[WriteRecord] = deque(maxlen=WRITES_KEPT)
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._more: list[ModbusTcpServer] = []
        rng = random.Random(seed)
        images: dict[str, RegisterImage] = {}
        for lamp in spec.lamps:
            if lamp.unit_id in self.lamps:
                raise ValueError(f"{spec.name}: unit id {lamp.unit_id} used twice")
            profile = load_profile(lamp.profile)
            image = images.setdefault(lamp.profile, RegisterImage(profile))
            self.images[lamp.unit_id] = image
            self.lamps[lamp.unit_id] = _new_lamp(lamp, profile, random.Random(rng.random()))

    def _devices(self, port: int) -> list[SimDevice]:
        # id 0 answers for every unit without a lamp: silence on RTU, exception 0x0B on TCP.
        return [self._sim_device(uid, port) for uid in [*self.lamps, 0]]

    async def start(self) -> None:
        if isinstance(self.spec, GatewaySpec):
            self._server = ModbusTcpServer(
                self._devices(self.spec.port),
                address=(self.spec.host, self.spec.port),
                ignore_missing_devices=False,
            )
            for port in self.spec.also_ports:
                more = ModbusTcpServer(
                    self._devices(port), address=(self.spec.host, port), ignore_missing_devices=False
                )
                await more.serve_forever(background=True)
                self._more.append(more)
        else:
            self._server = ModbusSerialServer(
                self._devices(0),
                framer=FramerType.RTU,
                port=self.spec.port,
                baudrate=self.spec.baudrate,
                ignore_missing_devices=True,
            )
        await self._server.serve_forever(background=True)
        log.info("simulated segment %s serving %d lamps", self.name, len(self.lamps))

    async def stop(self) -> None:
        for more in self._more:
            await more.shutdown()  # type: ignore[no-untyped-call]
        self._more.clear()
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    def _sim_device(self, unit_id: int, port: int) -> SimDevice:
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
            action=functools.partial(self._on_access, unit_id, port),
        )

    async def _on_access(
        self,
        unit_id: int,
        port: int,
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
        # A write request is executed as set-then-get (function 23: its write, then its read):
        # spend wire time once, on the first call.
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
        if function_code == 23 and not image.profile.profile.write_read_registers:
            return ExcCodes.ILLEGAL_FUNCTION  # a device whose profile does not say it answers 23
        if writing:
            assert set_values is not None
            try:
                setpoints = image.decode_write(address, list(set_values))
                for name, value in setpoints.items():
                    lamp.apply_setpoint(name, value)
                self.writes.append(WriteRecord(time.monotonic(), unit_id, port, dict(setpoints)))
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
