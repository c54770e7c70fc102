"""Bootloaders behind a simulated BLE radio (see simulators/ble_radio.py for why BLE is simulated here).

A `BaseBleakClient` subclass, driven by bleak's real `BleakClient` through its `backend=` hook:
writes to the firmware frames characteristic go to the device's `BootloaderModel`, replies come back
as notifications; after ACTIVATE the device "reboots" and notifies BOOTED or ROLLBACK. A reboot
drops the connection, as a real one does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from drivers.firmware import BLE_FIRMWARE_FRAMES, BLE_FIRMWARE_SERVICE, FrameError, decode_frame
from simulators.ble_radio import SimulatedClientBase
from simulators.bootloader import REBOOT_S, BootFault, BootloaderModel


class BleBootloaderRadio:
    def __init__(self, devices: dict[str, BootloaderModel]) -> None:
        self.devices = {address.upper(): d for address, d in devices.items()}
        self.frames = 0
        self.backend = _backend_for(self)


def _backend_for(radio: BleBootloaderRadio) -> type[BaseBleakClient]:
    class SimulatedBootloaderClient(SimulatedClientBase):
        """bleak backend for simulated bootloaders (the transport boundary; see the module docstring)."""

        label = "simulated bootloader"

        def __init__(self, address_or_ble_device: Any, **kwargs: Any) -> None:
            super().__init__(address_or_ble_device, **kwargs)
            self._notify: Callable[[bytearray], None] | None = None

        @property
        def mtu_size(self) -> int:
            return 247

        def _device(self) -> BootloaderModel:
            device = radio.devices.get(self.address.upper())
            if device is None:
                raise BleakDeviceNotFoundError(
                    self.address, f"Device with address {self.address} was not found."
                )
            return device

        async def connect(self, pair: bool, **kwargs: Any) -> None:
            self._device()
            collection = BleakGATTServiceCollection()
            service = BleakGATTService(None, 1, BLE_FIRMWARE_SERVICE)
            collection.add_service(service)
            props: list[CharacteristicPropertyName] = ["write", "notify"]
            collection.add_characteristic(
                BleakGATTCharacteristic(None, 2, BLE_FIRMWARE_FRAMES, props, lambda: 244, service)
            )
            self.services = collection
            self._connected = True

        async def read_gatt_char(self, characteristic: Any, **kwargs: Any) -> bytearray:
            raise BleakError("the frames characteristic is write/notify only")

        async def write_gatt_char(self, characteristic: Any, data: Any, response: bool) -> None:
            if not self._connected:
                raise BleakError("Not connected")
            device = self._device()
            try:
                frame = decode_frame(bytes(data))
            except FrameError:
                return  # garbled: no reply, the controller sends it again
            radio.frames += 1
            replies = device.handle(frame)
            loop = asyncio.get_running_loop()
            for reply in replies:
                loop.call_soon(self._deliver, reply.encode())
            if frame.verb == "ACTIVATE" and device.state == "updating":
                loop.call_later(REBOOT_S, self._rebooted, device)

        def _deliver(self, data: bytes) -> None:
            if self._connected and self._notify is not None:
                self._notify(bytearray(data))

        def _rebooted(self, device: BootloaderModel) -> None:
            self._deliver(device.reboot().encode())

        async def start_notify(self, characteristic: Any, callback: Any, **kwargs: Any) -> None:
            self._notify = callback

        async def stop_notify(self, characteristic: Any) -> None:
            self._notify = None

    return SimulatedBootloaderClient


__all__ = ["BleBootloaderRadio", "BootFault"]
