"""Simulators for the links a config declares: every Modbus TCP link becomes a simulated gateway,
every RTU link a simulated bus on a socat pty pair whose controller end is the link's `port`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from controller.config import (
    BleLinkConfig,
    ControllerSettings,
    ModbusRtuLink,
    ModbusTcpLink,
    MqttLinkConfig,
    SerialLineLinkConfig,
    device_address,
)
from firmware_bridge.signing import trusted_keys
from simulators.ble_radio import SimulatedRadio

if TYPE_CHECKING:
    from simulators.city import SimulatedCity


def city_from_config(settings: ControllerSettings) -> SimulatedCity:
    # imported here: `lamplighter run` needs only the BLE radios below (pymodbus' server side and
    # the simulated MQTT devices took 0.2 s of every start)
    from simulators.city import SimulatedCity
    from simulators.lamp import SimLamp
    from simulators.modbus_server import BusSpec, GatewaySpec
    from simulators.mqtt_devices import BrokerSpec, SimMqttDevice
    from simulators.serial_nodes import SerialLineSpec

    lamps: dict[str, list[SimLamp]] = defaultdict(list)
    mqtt_devices: dict[str, list[SimMqttDevice]] = defaultdict(list)
    timezones = {site.id: site.timezone for site in settings.sites}
    passwords = _mqtt_passwords(settings.simulator.mqtt_credentials)
    for dev in settings.all_devices():
        profile = settings.profile(dev.profile)
        link = settings.link(dev.link)
        if isinstance(link, MqttLinkConfig):
            key = str(device_address(dev, link))
            mqtt_devices[dev.link].append(
                SimMqttDevice(
                    key=key,
                    profile=dev.profile,
                    timezone=timezones.get(link.site, "UTC"),
                    password=passwords.get(key),
                )
            )
            continue
        if dev.unit_id is None:
            continue
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
    brokers: list[BrokerSpec] = []
    lines: list[SerialLineSpec] = []
    for link in settings.links:
        units = tuple(lamps.get(link.id, ()))
        if isinstance(link, ModbusTcpLink):
            gateways.append(GatewaySpec(name=link.id, host=link.host, port=link.port, lamps=units))
        elif isinstance(link, ModbusRtuLink):
            buses.append(BusSpec(name=link.id, port=link.port, baudrate=link.baudrate, lamps=units))
        elif isinstance(link, SerialLineLinkConfig):
            lines.append(SerialLineSpec(name=link.id, port=link.port, baudrate=link.baudrate, nodes=units))
        elif isinstance(link, MqttLinkConfig) and mqtt_devices.get(link.id):
            host, port = settings.broker_address(link)
            brokers.append(
                BrokerSpec(
                    name=link.id,
                    host=host,
                    port=port,
                    devices=tuple(mqtt_devices[link.id]),
                    interval_s=settings.simulator.mqtt_interval_s,
                )
            )
    keys = trusted_keys(list(settings.firmware.trusted_keys)) if settings.firmware.trusted_keys else None
    return SimulatedCity(gateways, buses, brokers, lines, seed=settings.simulator.seed, trusted_keys=keys)


def _mqtt_passwords(path: Path | None) -> dict[str, str]:
    """device key → password from the simulator's credentials file (JSON), if there is one."""
    if path is None:
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise ValueError(f"{path}: expected a JSON object of device key → password")
    return {str(k): v for k, v in doc.items()}


def simulated_radios(settings: ControllerSettings) -> dict[str, SimulatedRadio]:
    """A simulated BLE radio for each BLE link configured with `radio = "simulated"`.

    The radio stands in for Bluetooth hardware, so it lives in the controller's process.
    """
    timezones = {site.id: site.timezone for site in settings.sites}
    radios: dict[str, SimulatedRadio] = {}
    for link in settings.links:
        if isinstance(link, BleLinkConfig) and link.radio == "simulated":
            sensors = {
                str(d.key): (d.profile, timezones.get(link.site, "UTC"))
                for d in settings.all_devices()
                if d.link == link.id
            }
            radios[link.id] = SimulatedRadio(sensors, seed=settings.simulator.seed)
    return radios


def simulated_ble_backends(
    settings: ControllerSettings, radios: dict[str, SimulatedRadio]
) -> dict[str, type[BaseBleakClient] | type[BaseBleakScanner]]:
    """The bleak backend each simulated BLE link uses: a client to connect, a scanner to listen."""
    kinds = {link.id: link.kind for link in settings.links}
    return {
        link_id: radio.scanner_backend if kinds[link_id] == "ble_scan" else radio.backend
        for link_id, radio in radios.items()
    }
