"""Simulated MQTT devices: environmental sensors and public Wi-Fi access points.

Each device keeps its own broker connection (so it can leave a last will, as real hardware does),
publishes a JSON document laid out by its profile every `interval_s`, and follows a daily pattern in
its site's time zone. Faults: `offline` (the connection drops without a goodbye: the broker sends
the last will), `stale` (connected but silent), `garbage` (publishes bytes that are not JSON),
`out_of_range` (a sensor reports humidity 140 %), `dust` (a dust episode: PM2.5 and PM10 eight times
the usual).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import math
import random
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from drivers.backoff import Backoff
from drivers.payload import MqttLayout
from drivers.profile import load_profile
from drivers.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class MqttFault(enum.StrEnum):
    OFFLINE = "offline"
    STALE = "stale"
    GARBAGE = "garbage"
    OUT_OF_RANGE = "out_of_range"  # a failing humidity element: reads 140 % (sensors only)
    DUST = "dust"  # a dust episode (smoke, construction, a still winter night): PM × DUST_FACTOR


#: how much dust an episode adds: a city's usual 25–55 µg/m³ of PM2.5 becomes 200–440 ("bad" to
#: "hazardous" by VN_AQI)
DUST_FACTOR = 8.0


@dataclass(frozen=True, kw_only=True, slots=True)
class SimMqttDevice:
    key: str
    profile: str
    timezone: str = "UTC"
    #: its login on the broker (user name = its key), as a real device is provisioned with one
    password: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerSpec:
    """The broker the simulated devices publish to."""

    name: str
    host: str
    port: int
    devices: tuple[SimMqttDevice, ...]
    interval_s: float = 10.0


def sensor_values(local: datetime, rng: random.Random) -> dict[str, float]:
    """An environmental sensor in a tropical city: warm afternoons, rush-hour dust, quiet nights."""
    h = local.hour + local.minute / 60
    rush = math.exp(-((h - 8) ** 2) / 2) + math.exp(-((h - 18) ** 2) / 2)
    night = 1.0 if h >= 22 or h < 5 else 0.0  # low inversion layer traps particles
    daylight = max(0.0, math.sin(math.pi * (h - 6) / 12)) if 6 <= h <= 18 else 0.0
    pm2_5 = 25 + 30 * rush + 12 * night + rng.gauss(0, 3)
    return {
        "pm2_5_ugm3": round(max(1.0, pm2_5), 1),
        "pm10_ugm3": round(max(2.0, pm2_5 * 1.6 + rng.gauss(0, 4)), 1),
        "air_temperature_c": round(27 + 4 * math.sin(2 * math.pi * (h - 9) / 24) + rng.gauss(0, 0.2), 2),
        "humidity_pct": round(
            min(100.0, 75 - 12 * math.sin(2 * math.pi * (h - 9) / 24) + rng.gauss(0, 1)), 1
        ),
        "noise_dba": round(48 + 14 * daylight + 8 * rush + rng.gauss(0, 1.5), 1),
        # street lights give ~15 lx at night; the sun up to ~90 klx at noon
        "illuminance_lx": round(90_000 * daylight + (15 if daylight < 0.01 else 0) + abs(rng.gauss(0, 2)), 1),
    }


def access_point_values(local: datetime, uptime_s: float, rng: random.Random) -> dict[str, float | str]:
    """A public hotspot: nearly empty before dawn, busiest in the evening."""
    h = local.hour + local.minute / 60
    busy = 0.1 + 0.9 * math.exp(-((h - 20) ** 2) / 8) + 0.4 * math.exp(-((h - 12) ** 2) / 4)
    clients = max(0, round(60 * busy + rng.gauss(0, 3)))
    return {
        "clients": clients,
        "rx_kbps": round(clients * rng.uniform(40, 90), 1),
        "tx_kbps": round(clients * rng.uniform(250, 600), 1),
        "uptime_s": round(uptime_s),
        "firmware_version": "3.2.1",
    }


def render(layout: MqttLayout, values: dict[str, Any], now: datetime) -> bytes:
    """Lay values out as the profile says devices publish them."""
    doc: dict[str, Any] = {}
    for spec in layout.fields:
        if spec.field not in values:
            continue
        node = doc
        *parents, last = spec.path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        raw = values[spec.field]
        node[last] = raw / spec.scale if isinstance(raw, int | float) and spec.scale != 1 else raw
    if layout.timestamp_path:
        doc[layout.timestamp_path] = round(now.timestamp(), 3)
    return json.dumps(doc).encode()


@dataclass(slots=True)
class MqttDeviceModel:
    spec: SimMqttDevice
    layout: MqttLayout
    kind: str
    rng: random.Random
    faults: set[MqttFault] = field(default_factory=set)
    booted: float = 0.0
    published: int = 0

    def payload(self, now: datetime, uptime_s: float) -> bytes:
        if MqttFault.GARBAGE in self.faults:
            return b"\x00garbage\xff"
        local = now.astimezone(ZoneInfo(self.spec.timezone))
        values: dict[str, Any]
        if self.kind == "access_point":
            values = access_point_values(local, uptime_s, self.rng)
        else:
            values = sensor_values(local, self.rng)
            if MqttFault.OUT_OF_RANGE in self.faults:
                values["humidity_pct"] = 140.0
            if MqttFault.DUST in self.faults:
                for name in ("pm2_5_ugm3", "pm10_ugm3"):
                    values[name] = round(values[name] * DUST_FACTOR, 1)
        return render(self.layout, values, now)


class MqttDeviceFleet:
    """All simulated MQTT devices on one broker, each with its own supervised connection."""

    def __init__(self, spec: BrokerSpec, *, seed: int = 1) -> None:
        self.spec = spec
        self.name = spec.name
        rng = random.Random(seed)
        self.devices: dict[str, MqttDeviceModel] = {}
        for dev in spec.devices:
            profile = load_profile(dev.profile)
            assert profile.mqtt is not None, f"{dev.profile} is not an MQTT profile"
            self.devices[dev.key] = MqttDeviceModel(
                dev, profile.mqtt, profile.profile.kind, random.Random(rng.random())
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._kick: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for i, key in enumerate(self.devices):
            self._kick[key] = asyncio.Event()
            # spread the devices over the interval, as real ones are
            offset = self.spec.interval_s * i / max(1, len(self.devices))
            self._tasks.append(loop.create_task(self._device_loop(key, offset), name=f"mqtt-sim:{key}"))

    async def stop(self) -> None:
        # cancelled again if one swallowed it (aiomqtt's wait for a PUBACK on Python 3.11): a
        # single cancel and a gather hung a test for ever
        await cancel_and_wait(self._tasks, again_s=0.05)
        self._tasks.clear()

    def set_fault(self, key: str, fault: MqttFault, active: bool) -> MqttDeviceModel:
        device = self.devices.get(key)
        if device is None:
            raise LookupError(f"{self.name} has no device {key!r}")
        if active:
            device.faults.add(fault)
        else:
            device.faults.discard(fault)
        self._kick[key].set()  # apply now: drop or restore the connection without waiting
        return device

    async def _device_loop(self, key: str, offset: float) -> None:
        device = self.devices[key]
        layout = device.layout
        loop = asyncio.get_running_loop()
        device.booted = loop.time()
        await asyncio.sleep(offset)
        backoff = Backoff(base_s=0.5, cap_s=10.0)
        while True:
            if MqttFault.OFFLINE in device.faults:
                await self._wait_kick(key, 3600)
                continue
            will = None
            if layout.availability_topic is not None:
                status = layout.availability_topic.for_device(key)
                will = aiomqtt.Will(status, layout.payload_offline, qos=1, retain=True)
            client = aiomqtt.Client(
                self.spec.host,
                self.spec.port,
                identifier=f"sim-{key}",
                will=will,
                keepalive=5,
                username=key if device.spec.password is not None else None,
                password=device.spec.password,
            )
            try:
                async with client:
                    backoff.reset()
                    if layout.availability_topic is not None:
                        await client.publish(
                            layout.availability_topic.for_device(key),
                            layout.payload_online,
                            qos=1,
                            retain=True,
                        )
                    await self._publish_until_offline(client, device, key, loop)
                    # a power cut: close the socket without DISCONNECT, so the broker sends the will
                    _drop_without_goodbye(client)
            except aiomqtt.MqttError as exc:
                delay = backoff.next_delay()
                log.debug("simulated %s: %s; retry in %.1f s", key, exc, delay)
                await asyncio.sleep(delay)

    async def _publish_until_offline(
        self, client: aiomqtt.Client, device: MqttDeviceModel, key: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        topic = device.layout.telemetry_topic.for_device(key)
        while MqttFault.OFFLINE not in device.faults:
            if MqttFault.STALE not in device.faults:
                now = datetime.now(UTC)
                await client.publish(topic, device.payload(now, loop.time() - device.booted), qos=1)
                device.published += 1
            await self._wait_kick(key, self.spec.interval_s)

    async def _wait_kick(self, key: str, longest_s: float) -> None:
        """Sleep up to `longest_s`, or until a fault change kicks this device."""
        event = self._kick[key]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(longest_s):
                await event.wait()
        event.clear()


def _drop_without_goodbye(client: aiomqtt.Client) -> None:
    sock = client._client.socket()  # paho's socket: shutting it is what a power cut looks like
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
