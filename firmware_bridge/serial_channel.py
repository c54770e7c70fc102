"""Firmware frames over a serial line (RS-485, or a technician's USB cable), via pyserial-asyncio-fast.

One request at a time on the line; a reply is the next valid frame from the addressed device.
Frames from other devices on a shared line (a BOOTED after a reboot, say) are kept in that device's
mailbox, never dropped. Two ways to reach the line:
- `SerialFirmwareChannel(port)`: the channel opens the port itself (a technician's cable);
- `SerialFirmwareChannel(line=link)`: a line the controller polls; each exchange borrows the line
  from its `SerialLineLink` between polls, so lamps keep being polled during a transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import serial_asyncio_fast

from drivers.base import SerialPort
from drivers.errors import DriverError
from drivers.firmware import MAX_FRAME, Frame, FrameError, decode_frame
from drivers.serial import SerialLineLink
from firmware_bridge.transfer import ChannelTimeout

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class SerialFirmwareChannel:
    def __init__(self, port: SerialPort | None = None, *, line: SerialLineLink | None = None) -> None:
        if (port is None) == (line is None):
            raise ValueError("give a serial port, or a polled line, not both")
        self.port = port or line.port  # type: ignore[union-attr]
        self.line = line
        self._lock = asyncio.Lock()
        self._streams: Streams | None = None
        self._mail: dict[int, list[Frame]] = {}

    @contextlib.asynccontextmanager
    async def _use(self) -> AsyncIterator[Streams]:
        if self.line is not None:
            try:
                async with self.line.borrow() as streams:
                    yield streams
            except (OSError, DriverError) as exc:  # the line is down (LinkUnavailable) or lost
                raise ChannelTimeout(f"serial line {self.port.port}: {exc}") from exc
            return
        async with self._lock:
            if self._streams is None:
                try:
                    self._streams = await serial_asyncio_fast.open_serial_connection(
                        url=self.port.port,
                        baudrate=self.port.baudrate,
                        parity=self.port.parity,
                        stopbits=self.port.stopbits,
                        limit=MAX_FRAME * 2,
                    )
                except (OSError, ValueError) as exc:
                    raise ChannelTimeout(f"serial port {self.port.port}: {exc}") from exc
            yield self._streams

    async def request(self, frame: Frame, timeout_s: float) -> Frame:
        self._mail.pop(frame.address, None)  # late replies to this device's earlier requests
        async with self._use() as (reader, writer):
            writer.write(frame.encode())
            await writer.drain()
            return await self._read_from(reader, frame.address, timeout_s)

    async def receive(self, address: int, timeout_s: float) -> Frame:
        """Wait for a frame the device sends by itself, letting other exchanges through meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            mail = self._mail.get(address)
            if mail:
                return mail.pop(0)
            left = deadline - loop.time()
            if left <= 0:
                raise ChannelTimeout(f"nothing from {address:02X} within {timeout_s:g} s")
            async with self._use() as (reader, _):
                try:
                    return await self._read_from(reader, address, min(left, 0.2))
                except ChannelTimeout:
                    continue

    async def _read_from(self, reader: asyncio.StreamReader, address: int, timeout_s: float) -> Frame:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    line = await reader.readuntil(b"\n")
                    try:
                        reply = decode_frame(line)
                    except FrameError:
                        continue  # noise, a lamp node's reply, or a garbled frame: the retry asks again
                    if reply.address == address:
                        return reply
                    self._mail.setdefault(reply.address, []).append(reply)
        except TimeoutError:
            raise ChannelTimeout(f"no reply from {address:02X} within {timeout_s:g} s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.close()
            raise ChannelTimeout(f"serial port {self.port.port}: {exc}") from exc

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None and self.line is None:
            streams[1].close()
            with contextlib.suppress(Exception):
                await streams[1].wait_closed()
