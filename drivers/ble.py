"""BLE driver on bleak: reads environmental sensors through their GATT characteristics.

One object per radio (adapter). Reads are one at a time per radio (a connection each). A machine
without Bluetooth — no adapter, no BlueZ, no D-Bus — is a link state (`LinkUnavailable`, retried with
backoff), never a crash. `backend` is bleak's own hook for a client implementation: production leaves
it to bleak's platform backend; tests and the simulated city pass a simulated radio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakCharacteristicNotFoundError, BleakDeviceNotFoundError, BleakError

from drivers.backoff import Backoff, ReconnectSchedule
from drivers.base import (
    AvailabilitySink,
    DeviceRef,
    Driver,
    LinkStats,
    ListeningDriver,
    Reading,
    ReadingSink,
    RejectionSink,
)
from drivers.errors import DeviceTimeout, LinkUnavailable, ProtocolError
from drivers.fields import FieldValue

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class BleRadio:
    adapter: str | None = None  # e.g. "hci0"; None lets bleak choose
    timeout_s: float = 10.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0


class BleLink(Driver):
    """A Bluetooth LE radio and the sensors read through it."""

    def __init__(
        self, link_id: str, radio: BleRadio | None = None, *, backend: type[BaseBleakClient] | None = None
    ) -> None:
        self.link_id = link_id
        self.radio = radio or BleRadio()
        self.backend = backend
        self.stats = LinkStats()
        self._lock = asyncio.Lock()
        self._schedule = ReconnectSchedule(
            link_id, self.stats, base_s=self.radio.backoff_base_s, cap_s=self.radio.backoff_cap_s
        )

    async def open(self) -> None:
        """Nothing to open: each read connects to its sensor."""

    async def close(self) -> None:
        self.stats.connected = False

    async def read(self, device: DeviceRef) -> Reading:
        layout = device.profile.ble
        if layout is None:
            raise ProtocolError(
                f"profile {device.profile.name} is not a BLE profile", device_id=device.device_id
            )
        values: dict[str, FieldValue] = {}
        rejected: dict[str, str] = {}
        async with self._lock:
            self._schedule.check()
            try:
                async with self._client(str(device.address)) as client:
                    for ch in layout.characteristics:
                        data = await client.read_gatt_char(ch.uuid)
                        try:
                            values[ch.field] = ch.decode(bytes(data))
                        except ValueError as exc:
                            rejected[ch.field] = f"characteristic {ch.uuid[4:8]}: {exc}"
            except BleakDeviceNotFoundError as exc:
                raise DeviceTimeout(
                    f"{self.link_id}: {device.address} not in range", device_id=device.device_id
                ) from exc
            except BleakCharacteristicNotFoundError as exc:
                raise ProtocolError(
                    f"{self.link_id} {device.address}: {exc}", device_id=device.device_id
                ) from exc
            except TimeoutError as exc:
                raise DeviceTimeout(
                    f"{self.link_id} {device.address}: no answer", device_id=device.device_id
                ) from exc
            except (BleakError, OSError) as exc:
                # no adapter, no BlueZ, no D-Bus: the radio is unavailable, not the device broken
                reason = f"BLE unavailable: {type(exc).__name__}: {exc}"
                if self.stats.connected or self.stats.last_error != reason:
                    log.warning("link %s: %s", self.link_id, reason)
                self._schedule.failed(reason)
                raise LinkUnavailable(
                    f"link {self.link_id}: {self.stats.last_error}", device_id=device.device_id
                ) from exc
            self._schedule.succeeded()
        return Reading(device.device_id, datetime.now(UTC), values, rejected=rejected)

    async def write(self, device: DeviceRef, setpoints: Mapping[str, FieldValue]) -> None:
        raise ProtocolError(f"{device.device_id}: BLE sensors take no commands", device_id=device.device_id)

    async def read_setpoints(self, device: DeviceRef) -> dict[str, FieldValue]:
        raise ProtocolError(f"{device.device_id}: BLE sensors have no setpoints", device_id=device.device_id)

    def _client(self, address: str) -> BleakClient:
        kwargs: dict[str, Any] = {"timeout": self.radio.timeout_s}
        if self.radio.adapter:
            kwargs["bluez"] = {"adapter": self.radio.adapter}
        return BleakClient(address, backend=self.backend, **kwargs)


class BleScanLink(ListeningDriver):
    """Sensors that broadcast readings in advertisements: one scanner per radio, no connections.

    Advertisements arrive many times a minute; at most one reading per device per `min_interval_s`
    is taken. The bleak callback is synchronous, so readings pass through a bounded queue (full:
    shed and counted) to the async sink.
    """

    def __init__(
        self,
        link_id: str,
        devices: list[DeviceRef],
        radio: BleRadio | None = None,
        *,
        backend: type[BaseBleakScanner] | None = None,
        min_interval_s: float = 10.0,
    ) -> None:
        self.link_id = link_id
        self.radio = radio or BleRadio()
        self.backend = backend
        self.min_interval_s = min_interval_s
        self.stats = LinkStats()
        self.shed = 0
        self._by_address = {str(d.address).upper(): d for d in devices}
        self._last: dict[str, float] = {}
        # readings, or (device id, reason, detail) for advertisements that could not be used
        self._queue: asyncio.Queue[Reading | tuple[str, str, str]] = asyncio.Queue(maxsize=1000)

    async def run(
        self, on_reading: ReadingSink, on_availability: AvailabilitySink, on_rejected: RejectionSink
    ) -> None:
        backoff = Backoff(base_s=self.radio.backoff_base_s, cap_s=self.radio.backoff_cap_s)
        while True:
            try:
                kwargs: dict[str, Any] = (
                    {"bluez": {"adapter": self.radio.adapter}} if self.radio.adapter else {}
                )
                async with BleakScanner(detection_callback=self._seen, backend=self.backend, **kwargs):
                    self.stats.went_up()
                    backoff.reset()
                    while True:
                        item = await self._queue.get()
                        if isinstance(item, Reading):
                            await on_reading(item)
                        else:
                            on_rejected(*item)
            except (BleakError, OSError) as exc:
                self.stats.went_down()
                self.stats.connect_failures += 1
                self.stats.last_error = f"BLE unavailable: {type(exc).__name__}: {exc}"
                delay = backoff.next_delay()
                log.warning("link %s: %s; retrying in %.1f s", self.link_id, self.stats.last_error, delay)
                await asyncio.sleep(delay)
            finally:
                # stopped, cancelled or failed otherwise: nothing is heard now (the MQTT link alike)
                self.stats.went_down()

    def _seen(self, device: BLEDevice, adv: AdvertisementData) -> None:
        ref = self._by_address.get(device.address.upper())
        if ref is None or ref.profile.ble is None or ref.profile.ble.advertisement is None:
            return
        layout = ref.profile.ble.advertisement
        data = adv.service_data.get(layout.service_data_uuid)
        if data is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._last.get(ref.device_id, -1e9) < self.min_interval_s:
            return
        self._last[ref.device_id] = now
        values, rejected = layout.decode(bytes(data))
        item: Reading | tuple[str, str, str] = (
            Reading(ref.device_id, datetime.now(UTC), values, rejected=rejected)
            if values
            else (ref.device_id, "undecodable", f"service data {bytes(data)[:16].hex()}: {rejected}")
        )
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.shed += 1
