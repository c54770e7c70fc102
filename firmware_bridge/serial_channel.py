"""Firmware frames over a serial line (RS-485, or a technician's USB cable), via pyserial-asyncio-fast.

One request at a time on the line (a lock); a reply is the next valid frame from the addressed
device. Frames from other devices on a shared line (a BOOTED after a reboot, say) are kept in that
device's mailbox, never dropped. The port opens on first use and reopens after an error.
"""

from __future__ import annotations

import asyncio
import contextlib

import serial_asyncio_fast

from drivers.base import SerialPort
from drivers.firmware import MAX_FRAME, Frame, FrameError, decode_frame
from firmware_bridge.transfer import ChannelTimeout


class SerialFirmwareChannel:
    def __init__(self, port: SerialPort) -> None:
        self.port = port
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._mail: dict[int, list[Frame]] = {}

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(
                url=self.port.port,
                baudrate=self.port.baudrate,
                parity=self.port.parity,
                stopbits=self.port.stopbits,
                limit=MAX_FRAME * 2,
            )
        return self._reader, self._writer

    async def request(self, frame: Frame, timeout_s: float) -> Frame:
        async with self._lock:
            self._mail.pop(frame.address, None)  # late replies to this device's earlier requests
            reader, writer = await self._open()
            writer.write(frame.encode())
            await writer.drain()
            return await self._read_from(reader, frame.address, timeout_s)

    async def receive(self, address: int, timeout_s: float) -> Frame:
        """Wait for a frame the device sends by itself, letting other devices' requests through."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            mail = self._mail.get(address)
            if mail:
                return mail.pop(0)
            left = deadline - loop.time()
            if left <= 0:
                raise ChannelTimeout(f"nothing from {address:02X} within {timeout_s:g} s")
            async with self._lock:
                reader, _ = await self._open()
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
                        continue  # noise, or a garbled reply: the caller's retry asks again
                    if reply.address == address:
                        return reply
                    self._mail.setdefault(reply.address, []).append(reply)
        except TimeoutError:
            raise ChannelTimeout(f"no reply from {address:02X} within {timeout_s:g} s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.close()
            raise ChannelTimeout(f"serial port {self.port.port}: {exc}") from exc

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
