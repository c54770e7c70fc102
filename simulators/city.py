"""A whole simulated city: Modbus TCP gateways and RS-485 buses on pty pairs.

The control API (simulators.control) is served by whoever composes the city — the CLI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from simulators.bootloader import BootloaderModel
from simulators.lamp import LampModel
from simulators.modbus_server import BusSpec, GatewaySpec, ModbusSegment
from simulators.mqtt_devices import BrokerSpec, MqttDeviceFleet
from simulators.pty import PtyPair
from simulators.serial_nodes import SerialLineSpec, SerialNodeLine

log = logging.getLogger(__name__)


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


class SimulatedCity:
    """Starts every segment; for a bus, `BusSpec.port` is the path the controller will open."""

    def __init__(
        self,
        gateways: Sequence[GatewaySpec],
        buses: Sequence[BusSpec],
        brokers: Sequence[BrokerSpec] = (),
        lines: Sequence[SerialLineSpec] = (),
        *,
        seed: int = 1,
        trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        """`trusted_keys`: give the serial nodes bootloaders that trust these firmware keys."""
        self.gateways = list(gateways)
        self.buses = list(buses)
        self.brokers = list(brokers)
        self.lines = list(lines)
        self.segments = SegmentSet()
        self.seed = seed
        self.trusted_keys = dict(trusted_keys or {})
        self._pairs: list[PtyPair] = []

    async def start(self) -> None:
        try:
            for i, bus in enumerate(self.buses):
                pair = PtyPair(bus.port)
                await pair.start()
                self._pairs.append(pair)
                spec = dataclasses.replace(bus, port=str(pair.device_end))
                await self._add(ModbusSegment(spec, seed=self.seed * 1000 + i))
            for i, line in enumerate(self.lines):
                pair = PtyPair(line.port)
                await pair.start()
                self._pairs.append(pair)
                nodes = SerialNodeLine(
                    dataclasses.replace(line, port=str(pair.device_end)), seed=self.seed * 1000 + 700 + i
                )
                if self.trusted_keys:
                    nodes.bootloaders = {
                        n.unit_id: BootloaderModel(
                            address=n.unit_id,
                            model=n.profile,
                            trusted=self.trusted_keys,
                            version=nodes.lamps[n.unit_id].firmware_version,
                        )
                        for n in line.nodes
                    }
                await nodes.start()
                self.segments.lines[nodes.name] = nodes
            for i, gw in enumerate(self.gateways):
                await self._add(ModbusSegment(gw, seed=self.seed * 1000 + 500 + i))
            for i, broker in enumerate(self.brokers):
                fleet = MqttDeviceFleet(broker, seed=self.seed * 1000 + 900 + i)
                await fleet.start()
                self.segments.mqtt[fleet.name] = fleet
        except BaseException:
            await self.stop()
            raise
        lamps = sum(len(s.lamps) for s in self.segments.segments.values())
        log.info(
            "simulated city up: %d gateways, %d buses, %d lamps",
            len(self.gateways),
            len(self.buses),
            lamps,
        )

    async def stop(self) -> None:
        await asyncio.gather(*(f.stop() for f in self.segments.mqtt.values()), return_exceptions=True)
        await asyncio.gather(*(n.stop() for n in self.segments.lines.values()), return_exceptions=True)
        self.segments.lines.clear()
        await asyncio.gather(*(s.stop() for s in self.segments.segments.values()), return_exceptions=True)
        self.segments.segments.clear()
        self.segments.mqtt.clear()
        for pair in self._pairs:
            await pair.stop()
        self._pairs.clear()

    async def _add(self, segment: ModbusSegment) -> None:
        await segment.start()
        self.segments.segments[segment.name] = segment
