"""Firmware frames over MQTT: `<prefix>/<device>/down` to the device, `<prefix>/<device>/up` back.

One broker connection carries the frames of many devices; a reader task routes each `up` message to
its device's bounded queue. QoS 1 both ways. Each device is a point-to-point link (address 00).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

import aiomqtt

from drivers.firmware import Frame
from firmware_bridge.transfer import ChannelTimeout, next_frame

PREFIX = "lamplighter/fw"
#: frames are small request/reply messages: without TCP_NODELAY each one waits out Nagle's algorithm
#: against the peer's delayed ACK (≈ 40 ms a hop). The broker needs it too (`set_tcp_nodelay true`).
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


class MqttFirmwareLink:
    """`async with MqttFirmwareLink(host, port) as link: channel = link.channel("node-7")`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        prefix: str = PREFIX,
        username: str | None = None,
        password: str | None = None,
        queue_size: int = 64,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.queue_size = queue_size
        self._client = aiomqtt.Client(
            host, port, username=username, password=password, timeout=10, socket_options=NODELAY
        )
        self._queues: dict[str, asyncio.Queue[bytes]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MqttFirmwareLink:
        await self._client.__aenter__()
        await self._client.subscribe(f"{self.prefix}/+/up", qos=1)
        self._reader = asyncio.create_task(self._read(), name="firmware-mqtt-reader")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        await self._client.__aexit__(et, e, tb)

    @property
    def alive(self) -> bool:
        """False once the broker connection has dropped (make a new link)."""
        return self._reader is not None and not self._reader.done()

    def channel(self, device: str) -> MqttFirmwareChannel:
        queue = self._queues.setdefault(device, asyncio.Queue(self.queue_size))
        return MqttFirmwareChannel(self._client, f"{self.prefix}/{device}/down", queue)

    async def _read(self) -> None:
        async for message in self._client.messages:
            device = message.topic.value.split("/")[-2]
            queue = self._queues.get(device)
            if queue is not None and isinstance(message.payload, bytes | bytearray):
                if queue.full():
                    queue.get_nowait()  # a device flooding us: keep the newest
                queue.put_nowait(bytes(message.payload))


class MqttFirmwareChannel:
    def __init__(self, client: aiomqtt.Client, down: str, queue: asyncio.Queue[bytes]) -> None:
        self.client = client
        self.down = down
        self.queue = queue
        self._lock = asyncio.Lock()

    async def request(self, frame: Frame, timeout_s: float) -> Frame:
        async with self._lock:
            while not self.queue.empty():
                self.queue.get_nowait()  # a late reply to an earlier, timed-out request
            try:
                await self.client.publish(self.down, frame.encode(), qos=1)
            except aiomqtt.MqttError as exc:
                raise ChannelTimeout(f"broker: {exc}") from exc
            return await self._next(timeout_s)

    async def receive(self, address: int, timeout_s: float) -> Frame:
        async with self._lock:
            return await self._next(timeout_s)

    async def _next(self, timeout_s: float) -> Frame:
        return await next_frame(self.queue, timeout_s, self.down.replace("/down", "/up"))
