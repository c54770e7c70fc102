"""Modbus TCP and RTU driver on pymodbus: one object per link, in the manner of a Home Assistant hub.

The link owns its client, its lock and its reconnect schedule. Devices only say what to read
(their profile); every request goes through the link. pymodbus' own reconnect is switched off
(`reconnect_delay=0`) because it neither caps jitter nor recovers after timeouts in every
version: the link reconnects itself with capped, jittered backoff and never busy-loops.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from drivers.backoff import ReconnectSchedule
from drivers.base import DeviceRef, Driver, LinkStats, Reading, SerialPort
from drivers.errors import DecodeError, DeviceTimeout, LinkUnavailable, ProtocolError
from drivers.fields import FieldValue
from drivers.options import ModbusOptions
from drivers.registers import ReadBlock, codec_for

log = logging.getLogger(__name__)

#: Modbus exception codes a gateway uses when the device behind it is silent.
_GATEWAY_SILENT = {0x0A: "gateway path unavailable", 0x0B: "gateway target failed to respond"}
_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    6: "device busy",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ModbusTcp:
    """A Modbus TCP gateway or device."""

    host: str
    port: int = 502


class ModbusLink(Driver):
    """One Modbus link: a TCP gateway or an RS-485 bus, with one connection and one lock."""

    def __init__(
        self,
        link_id: str,
        transport: ModbusTcp | SerialPort,
        options: ModbusOptions | None = None,
    ) -> None:
        self.link_id = link_id
        self.transport = transport
        self.options = options or ModbusOptions()
        self.stats = LinkStats()
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._late_reply_until = 0.0  # an exchange was cut short: its reply may still be coming
        self._schedule = ReconnectSchedule(
            link_id, self.stats, base_s=self.options.backoff_base_s, cap_s=self.options.backoff_cap_s
        )

    def __repr__(self) -> str:
        return f"ModbusLink({self.link_id!r}, {self.transport!r})"

    # -- Driver interface ------------------------------------------------------------------------
    async def open(self) -> None:
        async with self._lock:
            await self._ensure_connected(force=True)

    async def close(self) -> None:
        async with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            self.stats.connected = False

    async def read(self, device: DeviceRef) -> Reading:
        codec = codec_for(device.profile)
        async with self._lock:
            if len(codec.poll_blocks) == 1:  # most profiles: no (async) comprehension per poll
                blocks = [await self._read_block(device, codec.poll_blocks[0])]
            else:
                blocks = [await self._read_block(device, b) for b in codec.poll_blocks]
        values, status, raw_status, rejected = codec.decode_poll(blocks)
        return Reading(device.device_id, datetime.now(UTC), values, status, raw_status, rejected)

    async def write(self, device: DeviceRef, setpoints: Mapping[str, FieldValue]) -> None:
        writes = _encoded(device, setpoints)
        async with self._lock:
            await self._write_blocks(device, writes)

    async def read_setpoints(self, device: DeviceRef) -> dict[str, FieldValue]:
        async with self._lock:
            blocks = await self._read_setpoint_blocks(device)
        return _decoded_setpoints(device, blocks)

    async def write_and_read_back(
        self, device: DeviceRef, setpoints: Mapping[str, FieldValue]
    ) -> dict[str, FieldValue]:
        writes = _encoded(device, setpoints)
        codec = codec_for(device.profile)
        async with self._lock:  # one turn of the link: no poll between the write and its read-back
            if device.profile.profile.write_read_registers and len(writes) == 1 and codec.one_setpoint_block:
                blocks = [await self._write_and_read(device, *writes[0], codec.setpoint_blocks[0])]
            else:
                await self._write_blocks(device, writes)
                blocks = await self._read_setpoint_blocks(device)
        return _decoded_setpoints(device, blocks)

    # -- internals (call with the lock held) ------------------------------------------------------
    async def _write_blocks(self, device: DeviceRef, writes: list[tuple[int, list[int]]]) -> None:
        unit = int(device.address)
        for start, words in writes:
            await self._call(device, functools.partial(_write_registers, start, words, unit))

    async def _write_and_read(
        self, device: DeviceRef, start: int, words: list[int], block: ReadBlock
    ) -> list[int]:
        """Function 23: the device writes, then answers with the block read after the write."""
        unit = int(device.address)
        rsp = await self._call(
            device,
            lambda c: c.readwrite_registers(
                read_address=block.start,
                read_count=block.count,
                write_address=start,
                values=words,
                device_id=unit,
            ),
        )
        return self._checked(device, block, rsp.registers)

    async def _read_setpoint_blocks(self, device: DeviceRef) -> list[list[int]]:
        return [await self._read_block(device, b) for b in codec_for(device.profile).setpoint_blocks]

    async def _read_block(self, device: DeviceRef, block: ReadBlock) -> list[int]:
        unit = int(device.address)
        if block.table == "input":
            rsp = await self._call(
                device,
                lambda c: c.read_input_registers(block.start, count=block.count, device_id=unit),
            )
        else:
            rsp = await self._call(
                device,
                lambda c: c.read_holding_registers(block.start, count=block.count, device_id=unit),
            )
        return self._checked(device, block, rsp.registers)

    @staticmethod
    def _checked(device: DeviceRef, block: ReadBlock, registers: list[int]) -> list[int]:
        if len(registers) != block.count:
            raise DecodeError(
                f"{block.table} {block.start}+{block.count}: got {len(registers)} registers",
                device_id=device.device_id,
            )
        return registers

    async def _call(self, device: DeviceRef, request: Callable[[Any], Awaitable[Any]]) -> Any:
        client = self._client
        if client is None or not client.connected:
            client = await self._ensure_connected()
        if self._late_reply_until:
            await self._let_late_reply_pass()
        try:
            rsp = await request(client)
        except asyncio.CancelledError:
            # Cut short (a command's deadline) after the request may have gone out: the device
            # answers anyway, and on RTU, which has no transaction ids, pymodbus would take that
            # reply for the next exchange's with the same unit (a poll's registers as a command's
            # read-back). The next exchange waits for it to pass. (TCP skips it by its id.)
            if isinstance(self.transport, SerialPort):
                self._late_reply_until = asyncio.get_running_loop().time() + self.options.timeout_s
            raise
        except ConnectionException as exc:
            self._drop(f"connection lost: {exc}")
            raise LinkUnavailable(f"link {self.link_id}: {exc}", device_id=device.device_id) from exc
        except ModbusIOException as exc:
            if not client.connected:  # pymodbus closes TCP after repeated timeouts
                self._drop("closed after repeated timeouts")
            raise DeviceTimeout(
                f"{self.link_id} unit {device.address}: no response", device_id=device.device_id
            ) from exc
        except ModbusException as exc:
            raise ProtocolError(
                f"{self.link_id} unit {device.address}: {exc}", device_id=device.device_id
            ) from exc
        if rsp.isError():
            code = int(getattr(rsp, "exception_code", 0))
            if code in _GATEWAY_SILENT:
                raise DeviceTimeout(
                    f"{self.link_id} unit {device.address}: {_GATEWAY_SILENT[code]}",
                    device_id=device.device_id,
                )
            name = _EXCEPTION_NAMES.get(code, "exception")
            raise ProtocolError(
                f"{self.link_id} unit {device.address}: Modbus exception {code} ({name})",
                device_id=device.device_id,
                code=code,
            )
        return rsp

    async def _let_late_reply_pass(self) -> None:
        """A reply arriving while no request waits is dropped by pymodbus; after the link's
        timeout none comes any more."""
        wait = self._late_reply_until - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._late_reply_until = 0.0

    async def _ensure_connected(
        self, *, force: bool = False
    ) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        if not force:
            self._schedule.check()
        if self._client is not None:
            self._client.close()
        client = self._make_client()
        reason = f"connect failed: {self._describe()}"
        try:
            ok = await asyncio.wait_for(client.connect(), self.options.connect_timeout_s)
        except (TimeoutError, OSError) as exc:
            ok = False
            reason = f"connect failed: {exc or type(exc).__name__}"
        if not ok or not client.connected:
            client.close()
            self._client = None
            self._schedule.failed(reason)
            raise LinkUnavailable(f"link {self.link_id}: {reason}")
        self._client = client
        self._schedule.succeeded()
        log.info("link %s connected (%s)", self.link_id, self._describe())
        return client

    def _drop(self, reason: str) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._schedule.failed(reason, connecting=False)
        log.warning("link %s dropped: %s", self.link_id, reason)

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        o = self.options
        t = self.transport
        if isinstance(t, ModbusTcp):
            return AsyncModbusTcpClient(
                t.host,
                port=t.port,
                timeout=o.timeout_s,
                retries=o.retries,
                reconnect_delay=0,
                name=self.link_id,
            )
        return AsyncModbusSerialClient(
            t.port,
            framer=FramerType.RTU,
            baudrate=t.baudrate,
            parity=t.parity,
            stopbits=t.stopbits,
            bytesize=t.bytesize,
            timeout=o.timeout_s,
            retries=o.retries,
            reconnect_delay=0,
            name=self.link_id,
        )

    def _describe(self) -> str:
        t = self.transport
        return f"tcp {t.host}:{t.port}" if isinstance(t, ModbusTcp) else f"rtu {t.port}@{t.baudrate}"


def _write_registers(start: int, words: list[int], unit: int, client: Any) -> Awaitable[Any]:
    return client.write_registers(start, words, device_id=unit)  # type: ignore[no-any-return]


def _encoded(device: DeviceRef, setpoints: Mapping[str, FieldValue]) -> list[tuple[int, list[int]]]:
    try:
        return codec_for(device.profile).encode_setpoints(setpoints)
    except ValueError as exc:
        raise DecodeError(str(exc), device_id=device.device_id) from exc


def _decoded_setpoints(device: DeviceRef, blocks: list[list[int]]) -> dict[str, FieldValue]:
    try:
        return codec_for(device.profile).decode_setpoints(blocks)
    except ValueError as exc:
        raise DecodeError(str(exc), device_id=device.device_id) from exc
