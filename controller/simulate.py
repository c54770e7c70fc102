"""Simulators for the links a config declares: every Modbus TCP link becomes a simulated gateway,
every RTU link a simulated bus on a socat pty pair whose controller end is the link's `port`."""

from __future__ import annotations

from collections import defaultdict

from controller.config import ControllerSettings, ModbusRtuLink, ModbusTcpLink
from simulators.city import SimulatedCity
from simulators.modbus_server import BusSpec, GatewaySpec, SimLamp


def city_from_config(settings: ControllerSettings) -> SimulatedCity:
    lamps: dict[str, list[SimLamp]] = defaultdict(list)
    for dev in settings.all_devices():
        profile = settings.profile(dev.profile)
        if dev.unit_id is None:
            continue  # not a Modbus device
        lamps[dev.link].append(
            SimLamp(
                unit_id=dev.unit_id,
                device_id=dev.id,
                profile=dev.profile,
                rated_power_w=dev.rated_power_w or profile.profile.rated_power_w,
            )
        )
    gateways: list[GatewaySpec] = []
    buses: list[BusSpec] = []
    for link in settings.links:
        units = tuple(lamps.get(link.id, ()))
        if isinstance(link, ModbusTcpLink):
            gateways.append(GatewaySpec(name=link.id, host=link.host, port=link.port, lamps=units))
        elif isinstance(link, ModbusRtuLink):
            buses.append(BusSpec(name=link.id, port=link.port, baudrate=link.baudrate, lamps=units))
    return SimulatedCity(gateways, buses, seed=settings.simulator.seed)
