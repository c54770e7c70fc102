"""Firmware frames over BLE: written to the bootloader's frames characteristic, replies by notification.

bleak's `BleakClient` drives the radio (BlueZ on a real machine; in tests the simulated radio at the
transport boundary, `simulators/ble_bootloader.py`). The connection opens on first use and again
after it drops.
"""

from __future__ import annotations

import asyncio
import contextlib

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.exc import BleakError

from drivers.firmware import BLE_FIRMWARE_FRAMES, Frame
from firmware_bridge.transfer import ChannelTimeout, next_frame


class BleFirmwareChannel:
    def __init__(
        self, address: str, *, backend: type[BaseBleakClient] | None = None, connect_timeout_s: float = 10.0
    ) -> None:
        self.address = address
        self.backend = backend
        self.connect_timeout_s = connect_timeout_s
        self._client: BleakClient | None = None
        self._replies: asyncio.Queue[bytes] = asyncio.Queue(64)
        self._lock = asyncio.Lock()

    def _notified(self, _: BleakGATTCharacteristic, data: bytearray) -> None:
        if self._replies.full():
            self._replies.get_nowait()
        self._replies.put_nowait(bytes(data))

    async def _connected(self) -> BleakClient:
        if self._client is None or not self._client.is_connected:
            client = BleakClient(self.address, timeout=self.connect_timeout_s, backend=self.backend)
            try:
                await client.connect()
                await client.start_notify(BLE_FIRMWARE_FRAMES, self._notified)
            except (BleakError, TimeoutError, OSError) as exc:
                raise ChannelTimeout(f"BLE {self.address}: {exc}") from exc
            self._client = client
        return self._client

    async def request(self, frame: Frame, timeout_s: float) -> Frame:
        async with self._lock:
            client = await self._connected()
            while not self._replies.empty():
                self._replies.get_nowait()  # a late reply to an earlier, timed-out request
            try:
                await client.write_gatt_char(BLE_FIRMWARE_FRAMES, frame.encode(), response=True)
            except (BleakError, OSError) as exc:
                raise ChannelTimeout(f"BLE {self.address}: {exc}") from exc
            return await self._next(timeout_s)

    async def receive(self, address: int, timeout_s: float) -> Frame:
        async with self._lock:
            await self._connected()
            return await self._next(timeout_s)

    async def _next(self, timeout_s: float) -> Frame:
        return await next_frame(self._replies, timeout_s, f"BLE {self.address}")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(BleakError, OSError):
                await client.disconnect()
