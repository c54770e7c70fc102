"""One driver per link of the config: a Modbus gateway or bus, a serial line, a broker, a radio.

The link entries of the config are the drivers' own option models (drivers/options.py), so they
are handed over as they are; only what the process decides at start is filled in here (the
embedded broker's address, a client id per [cluster] instance, the simulated radio).
"""

from __future__ import annotations

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from controller.config import (
    BleLinkConfig,
    ControllerSettings,
    LinkConfig,
    ModbusRtuLink,
    ModbusTcpLink,
    MqttLinkConfig,
    SerialLineLinkConfig,
)
from drivers.base import DeviceRef, Driver, ListeningDriver, SerialPort
from drivers.ble import BleLink, BleRadio, BleScanLink
from drivers.modbus import ModbusLink, ModbusTcp
from drivers.mqtt import MqttLink
from drivers.serial import SerialLineLink

BleBackend = type[BaseBleakClient] | type[BaseBleakScanner]


def make_driver(
    link: LinkConfig,
    devices: list[DeviceRef],
    settings: ControllerSettings,
    ble_backend: BleBackend | None = None,
) -> Driver | ListeningDriver:
    """The driver for `link`, serving `devices`; `ble_backend`: bleak's backend (a simulated radio)."""
    if isinstance(link, BleLinkConfig):
        radio = BleRadio(
            adapter=link.adapter,
            timeout_s=max(link.timeout_s, 5.0),  # a GATT connection takes seconds
            backoff_base_s=link.backoff_base_s,
            backoff_cap_s=link.backoff_cap_s,
        )
        if link.kind == "ble_scan":
            scanner = (
                ble_backend if ble_backend is None or issubclass(ble_backend, BaseBleakScanner) else None
            )
            return BleScanLink(link.id, devices, radio, backend=scanner, min_interval_s=link.min_interval_s)
        client = ble_backend if ble_backend is None or issubclass(ble_backend, BaseBleakClient) else None
        return BleLink(link.id, radio, backend=client)
    if isinstance(link, MqttLinkConfig):
        host, port = settings.broker_address(link)
        update: dict[str, object] = {"host": host, "port": port}
        if link.shared_group:  # one session per instance: the same client id would take it over
            update["client_id"] = f"{link.client_id or f'lamplighter-{link.id}'}-{settings.cluster.instance}"
        return MqttLink(link.id, link.model_copy(update=update), devices)
    if isinstance(link, SerialLineLinkConfig):
        return SerialLineLink(link.id, _serial_port(link), link)
    if isinstance(link, ModbusTcpLink):
        return ModbusLink(link.id, ModbusTcp(host=link.host, port=link.port), link)
    return ModbusLink(link.id, _serial_port(link), link)


def _serial_port(link: ModbusRtuLink | SerialLineLinkConfig) -> SerialPort:
    return SerialPort(port=link.port, baudrate=link.baudrate, parity=link.parity, stopbits=link.stopbits)
