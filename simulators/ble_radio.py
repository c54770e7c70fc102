"""A simulated Bluetooth LE radio with environmental sensors in range.

This machine has no Bluetooth radio at all, so this is the one fake in Lamplighter, and it sits at
the transport boundary: a `BaseBleakClient` subclass that bleak's real `BleakClient` drives through
its documented `backend=` hook, exactly as it drives BlueZ. Above it, every line of the BLE driver
runs for real. Sensors follow the same daily pattern as the MQTT ones; faults: `out_of_range`
(connect fails: device not found), `garbage` (characteristics return the wrong number of bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from drivers.gatt import BleLayout
from drivers.profile import load_profile
from simulators.mqtt_devices import sensor_values


class BleFault(enum.StrEnum):
    OUT_OF_RANGE = "out_of_range"
    GARBAGE = "garbage"


@dataclass(slots=True)
class BleSensorModel:
    address: str
    layout: BleLayout
    timezone: str = "UTC"
    battery_pct: float = 97.0
    faults: set[BleFault] = field(default_factory=set)
    rng: random.Random = field(default_factory=random.Random)

    def values(self) -> dict[str, float]:
        now = datetime.now(UTC).astimezone(ZoneInfo(self.timezone))
        values: dict[str, float] = {k: float(v) for k, v in sensor_values(now, self.rng).items()}
        values["pressure_hpa"] = 1009.0 + self.rng.gauss(0, 0.5)
        self.battery_pct = max(0.0, self.battery_pct - 0.001)
        values["battery_pct"] = self.battery_pct
        return values

    def service_data(self) -> bytes | None:
        """The advertisement's service data, or None if this sensor does not advertise readings."""
        adv = self.layout.advertisement
        if adv is None:
            return None
        if BleFault.GARBAGE in self.faults:
            return b"\x01"
        return adv.encode(self.values())

    def characteristic_bytes(self, uuid: str) -> bytes:
        if BleFault.GARBAGE in self.faults:
            return b"\xff"
        spec = next(c for c in self.layout.characteristics if c.uuid == uuid)
        return spec.encode(self.values()[spec.field])


class SimulatedClientBase(BaseBleakClient):
    """What every simulated bleak backend shares: the connection flag, no pairing, no descriptors.

    Subclasses (sensors here, bootloaders in simulators/ble_bootloader.py) add `connect`, the GATT
    operations they serve and `mtu_size`. This is the transport boundary: see the module docstring.
    """

    label = "simulated device"

    def __init__(self, address_or_ble_device: Any, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=kwargs.get("timeout", 10.0),
        )
        self._connected = False

    @property
    def name(self) -> str:
        return f"{self.label} {self.address}"

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def disconnect(self) -> None:
        self._connected = False

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    async def read_gatt_descriptor(self, descriptor: Any, **kwargs: Any) -> bytearray:
        raise BleakError(f"{self.label}s have no descriptors")

    async def write_gatt_descriptor(self, descriptor: Any, data: Any) -> None:
        raise BleakError(f"{self.label}s have no descriptors")


class SimulatedRadio:
    """The sensors in range of a simulated radio, and the bleak backend class that reaches them."""

    def __init__(
        self, sensors: Mapping[str, tuple[str, str]], *, seed: int = 1, advertise_interval_s: float = 1.0
    ) -> None:
        """`sensors`: address → (profile name, time zone)."""
        self.advertise_interval_s = advertise_interval_s
        rng = random.Random(seed)
        self.sensors: dict[str, BleSensorModel] = {}
        for address, (profile_name, tz) in sensors.items():
            layout = load_profile(profile_name).ble
            assert layout is not None, f"{profile_name} is not a BLE profile"
            self.sensors[address.upper()] = BleSensorModel(
                address.upper(), layout, tz, rng=random.Random(rng.random())
            )
        self.backend = _backend_for(self)
        self.scanner_backend = _scanner_for(self)

    def set_fault(self, address: str, fault: BleFault, active: bool) -> BleSensorModel:
        sensor = self.sensors.get(address.upper())
        if sensor is None:
            raise LookupError(f"no simulated BLE sensor {address!r}")
        (sensor.faults.add if active else sensor.faults.discard)(fault)
        return sensor


def _backend_for(radio: SimulatedRadio) -> type[BaseBleakClient]:
    class SimulatedRadioClient(SimulatedClientBase):
        """bleak backend over the simulated radio (see module docstring for why this is a fake)."""

        label = "simulated sensor"

        @property
        def mtu_size(self) -> int:
            return 23

        async def connect(self, pair: bool, **kwargs: Any) -> None:
            sensor = radio.sensors.get(self.address.upper())
            if sensor is None or BleFault.OUT_OF_RANGE in sensor.faults:
                raise BleakDeviceNotFoundError(
                    self.address, f"Device with address {self.address} was not found."
                )
            self.services = _services(sensor.layout)
            self._connected = True

        async def read_gatt_char(
            self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
        ) -> bytearray:
            return bytearray(radio.sensors[self.address.upper()].characteristic_bytes(characteristic.uuid))

        async def write_gatt_char(self, characteristic: Any, data: Any, response: bool) -> None:
            raise BleakError("simulated sensors are read-only")

        async def start_notify(self, characteristic: Any, callback: Any, **kwargs: Any) -> None:
            raise BleakError("simulated sensors do not notify")

        async def stop_notify(self, characteristic: Any) -> None:
            raise BleakError("simulated sensors do not notify")

    return SimulatedRadioClient


def _scanner_for(radio: SimulatedRadio) -> type[BaseBleakScanner]:
    class SimulatedRadioScanner(BaseBleakScanner):
        """bleak scanner backend over the simulated radio: advertises every sensor in range."""

        def __init__(self, detection_callback: Any, service_uuids: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(detection_callback, service_uuids)
            self._task: asyncio.Task[None] | None = None

        async def start(self) -> None:
            self._task = asyncio.create_task(self._advertise(), name="simulated-ble-advertising")

        async def stop(self) -> None:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None

        def set_scanning_filter(self, **kwargs: Any) -> None:
            return None

        async def _advertise(self) -> None:
            while True:
                for sensor in radio.sensors.values():
                    data = sensor.service_data()
                    if data is None or BleFault.OUT_OF_RANGE in sensor.faults:
                        continue
                    assert sensor.layout.advertisement is not None
                    adv = AdvertisementData(
                        local_name=f"ENV_{sensor.address[-5:].replace(':', '')}",
                        manufacturer_data={},
                        service_data={sensor.layout.advertisement.service_data_uuid: data},
                        service_uuids=[],
                        tx_power=None,
                        rssi=-60,
                        platform_data=(),
                    )
                    device = self.create_or_update_device(
                        sensor.address, sensor.address, adv.local_name, None, adv
                    )
                    self.call_detection_callbacks(device, adv)
                await asyncio.sleep(radio.advertise_interval_s)

    return SimulatedRadioScanner


def _services(layout: BleLayout) -> BleakGATTServiceCollection:
    collection = BleakGATTServiceCollection()
    service = BleakGATTService(None, 1, layout.service)
    collection.add_service(service)
    for handle, spec in enumerate(layout.characteristics, start=2):
        ch = BleakGATTCharacteristic(None, handle, spec.uuid, ["read"], lambda: 20, service)  # joins service
        collection.add_characteristic(ch)
    return collection
