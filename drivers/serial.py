"""Serial driver for legacy lamp nodes speaking the ASCII line protocol (drivers/line_protocol.py).

One object per serial port (a multi-drop RS-485 line): one connection, one lock, requests strictly
one at a time. I/O goes through pyserial-asyncio-fast, so nothing blocks the event loop. A reply is
matched by address: a late reply to an earlier, timed-out request is discarded, not mistaken for
the answer. The port reconnects with capped, jittered backoff when it disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import serial_asyncio_fast

from drivers.backoff import ReconnectSchedule
from drivers.base import DeviceRef, Driver, LinkStats, Reading, SerialPort
from drivers.errors import DecodeError, DeviceTimeout, LinkUnavailable, ProtocolError
from drivers.fields import FieldValue
from drivers.line_protocol import MAX_LINE_BYTES, Frame, FrameError, LineLayout, decode_frame, encode_frame
from drivers.options import SerialOptions

log = logging.getLogger(__name__)


class SerialLineLink(Driver):
    """A serial line of legacy lamp nodes."""

    def __init__(self, link_id: str, port: SerialPort, options: SerialOptions | None = None) -> None:
        self.link_id = link_id
        self.port = port
        self.options = options or SerialOptions()
        self.stats = LinkStats()
        self.discarded = 0  # lines that were not the awaited reply (late, foreign, corrupt)
        self.corrupt = 0  # lines that failed their checksum or framing
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._schedule = ReconnectSchedule(
            link_id, self.stats, base_s=self.options.backoff_base_s, cap_s=self.options.backoff_cap_s
        )

    async def open(self) -> None:
        async with self._lock:
            await self._ensure_open(force=True)

    async def close(self) -> None:
        async with self._lock:
            self._drop(None)

    async def read(self, device: DeviceRef) -> Reading:
        layout = _layout(device)
        reply = await self._transact(device, layout.read_verb, ())
        values, status, raw_status, rejected = layout.decode_reply(reply.pairs)
        return Reading(device.device_id, datetime.now(UTC), values, status, raw_status, rejected)

    async def write(self, device: DeviceRef, setpoints: Mapping[str, FieldValue]) -> None:
        layout = _layout(device)
        try:
            args = layout.encode_setpoints(setpoints)
        except ValueError as exc:
            raise DecodeError(str(exc), device_id=device.device_id) from exc
        await self._transact(device, layout.set_verb, args)

    async def read_setpoints(self, device: DeviceRef) -> dict[str, FieldValue]:
        layout = _layout(device)
        reply = await self._transact(device, layout.read_verb, ())
        try:
            return layout.decode_setpoints(reply.pairs)
        except ValueError as exc:
            raise DecodeError(str(exc), device_id=device.device_id) from exc

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """The open line, to oneself, between polls (firmware transfers take turns with polling)."""
        async with self._lock:
            yield await self._ensure_open()

    # -- internals -------------------------------------------------------------------------------
    async def _transact(self, device: DeviceRef, verb: str, args: tuple[str, ...]) -> Frame:
        address = int(device.address)
        request = encode_frame(Frame("request", address, verb, args))
        async with self._lock:
            reader, writer = await self._ensure_open()
            corrupt_before = self.corrupt
            for _attempt in range(self.options.retries + 1):
                try:
                    writer.write(request)
                    await writer.drain()
                    reply = await self._await_reply(reader, address)
                except TimeoutError:
                    continue
                except (OSError, asyncio.IncompleteReadError) as exc:
                    self._drop(f"port lost: {exc}")
                    raise LinkUnavailable(f"link {self.link_id}: {exc}", device_id=device.device_id) from exc
                if reply.verb == "ERR":
                    raise ProtocolError(
                        f"{self.link_id} node {address:02X}: refused: {' '.join(reply.args)}",
                        device_id=device.device_id,
                    )
                return reply
        if self.corrupt > corrupt_before:
            raise DecodeError(
                f"{self.link_id} node {address:02X}: reply failed its checksum or framing",
                device_id=device.device_id,
            )
        raise DeviceTimeout(f"{self.link_id} node {address:02X}: no reply", device_id=device.device_id)

    async def _await_reply(self, reader: asyncio.StreamReader, address: int) -> Frame:
        """The next valid reply from `address`; anything else on the line is discarded."""
        async with asyncio.timeout(self.options.timeout_s):
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    await reader.read(MAX_LINE_BYTES * 4)  # runaway noise: throw it away
                    self.discarded += 1
                    continue
                try:
                    frame = decode_frame(line)
                except FrameError as exc:
                    self.discarded += 1
                    self.corrupt += 1
                    log.debug("link %s: discarded %s", self.link_id, exc)
                    continue
                if frame.direction == "reply" and frame.address == address:
                    return frame
                self.discarded += 1

    async def _ensure_open(self, *, force: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is not None:
            return self._streams
        if not force:
            self._schedule.check()
        p = self.port
        try:
            self._streams = await serial_asyncio_fast.open_serial_connection(
                url=p.port,
                baudrate=p.baudrate,
                parity=p.parity,
                stopbits=p.stopbits,
                limit=MAX_LINE_BYTES * 2,
            )
        except (OSError, ValueError) as exc:  # pyserial's SerialException is an OSError
            self._schedule.failed(f"cannot open {p.port}: {exc}")
            raise LinkUnavailable(f"link {self.link_id}: {self.stats.last_error}") from exc
        self._schedule.succeeded()
        log.info("link %s opened %s at %d baud", self.link_id, p.port, p.baudrate)
        return self._streams

    def _drop(self, reason: str | None) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None
        self.stats.connected = False
        if reason:
            self._schedule.failed(reason, connecting=False)
            log.warning("link %s dropped: %s", self.link_id, reason)


def _layout(device: DeviceRef) -> LineLayout:
    layout = device.profile.line
    if layout is None:
        raise DecodeError(f"profile {device.profile.name} is not a line profile", device_id=device.device_id)
    return layout
