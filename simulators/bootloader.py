"""A simulated device bootloader: receives an image in chunks, checks it itself, keeps A/B slots.

It speaks the frames of `drivers/firmware.py` (docs/firmware.md) and trusts only the public keys it
was given, as a real device does: a tampered or foreign image is refused by the device too, whatever
the controller did. The new image goes to the inactive slot; ACTIVATE reboots into it, and if its
boot check fails (injectable) the bootloader rolls back to the old slot and says so.

Faults a technician can inject: `crc_errors` (every 3rd chunk arrives corrupted: NAK), `silent` (stops
answering mid-transfer), `boot_fail` (the new image fails its boot check → rollback).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiomqtt
import serial_asyncio_fast
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.firmware import (
    FirmwareRejected,
    Frame,
    FrameError,
    check_image,
    check_manifest,
    decode_frame,
    parse_signed_manifest,
    unb64,
)
from simulators.wire import WireClock

log = logging.getLogger(__name__)
REBOOT_S = 0.3


class BootFault(enum.StrEnum):
    CRC_ERRORS = "crc_errors"
    SILENT = "silent"
    BOOT_FAIL = "boot_fail"


@dataclass
class Slot:
    version: str
    image: bytes = b""


@dataclass
class BootloaderModel:
    address: int
    model: str
    trusted: Mapping[str, Ed25519PublicKey]
    hw_rev: int = 1
    version: str = "1.0.0"
    slots: dict[str, Slot] = field(default_factory=dict)
    active: str = "A"
    faults: set[BootFault] = field(default_factory=set)
    state: str = "idle"
    chunks_seen: int = 0
    boots: int = 0
    _manifest_json: str = ""
    _staging: bytearray = field(default_factory=bytearray)
    _sha: str = ""

    def __post_init__(self) -> None:
        self.slots.setdefault("A", Slot(self.version))
        self.slots.setdefault("B", Slot(""))

    @property
    def inactive(self) -> str:
        return "B" if self.active == "A" else "A"

    def handle(self, frame: Frame) -> list[Frame]:
        """The replies to one request (none while silent)."""
        if BootFault.SILENT in self.faults:
            return []
        try:
            return [self._handle(frame)]
        except FrameError as exc:
            return [self._reply("ERR", "bad_frame", str(exc).replace(" ", "_")[:80])]

    def _reply(self, verb: str, *args: str) -> Frame:
        return Frame(self.address, verb, args)

    def _handle(self, f: Frame) -> Frame:
        if f.verb == "HELLO":
            return self._reply("STATUS", self.model, self.version, self.active, str(self.hw_rev), self.state)
        if f.verb == "BEGIN":
            text = unb64(f.arg(0)).decode()
            try:
                signed = parse_signed_manifest(text)
                check_manifest(signed, self.trusted, model=self.model, hw_rev=self.hw_rev)
            except FirmwareRejected as exc:
                self.state = "idle"
                return self._reply("ERR", exc.reason)
            sha = signed.manifest.sha256
            if sha != self._sha:  # a new image: start over; the same one: resume where it stopped
                self._sha, self._manifest_json, self._staging = sha, text, bytearray()
            self.state = "downloading"
            return self._reply("READY", str(len(self._staging)))
        if f.verb == "CHUNK":
            if self.state != "downloading":
                return self._reply("ERR", "not_downloading")
            offset, data = int(f.arg(0)), unb64(f.arg(1))
            self.chunks_seen += 1
            if BootFault.CRC_ERRORS in self.faults and self.chunks_seen % 3 == 0:
                return self._reply("NAK", str(offset), "crc")  # the line garbled it
            if offset != len(self._staging):
                return self._reply("NAK", str(len(self._staging)), "offset")
            self._staging += data
            return self._reply("ACK", str(len(self._staging)))
        if f.verb == "END":
            signed = parse_signed_manifest(self._manifest_json)
            try:
                check_manifest(signed, self.trusted, model=self.model, hw_rev=self.hw_rev)
                check_image(bytes(self._staging), signed.manifest)
            except FirmwareRejected as exc:
                self.state = "idle"
                self._staging, self._sha = bytearray(), ""
                return self._reply("ERR", exc.reason)
            self.slots[self.inactive] = Slot(signed.manifest.version, bytes(self._staging))
            self.state = "verified"
            return self._reply("VERIFIED", signed.manifest.version, self.inactive)
        if f.verb == "ACTIVATE":
            if self.state != "verified":
                return self._reply("ERR", "not_verified")
            self.state = "updating"
            return self._reply("UPDATING", self.inactive)
        if f.verb == "ABORT":
            self.state, self._staging, self._sha = "idle", bytearray(), ""
            return self._reply("STATUS", self.model, self.version, self.active, str(self.hw_rev), self.state)
        return self._reply("ERR", "bad_verb", f.verb)

    def reboot(self) -> Frame:
        """After ACTIVATE: boot the new slot; if its boot check fails, roll back."""
        self.boots += 1
        new = self.inactive
        self._staging, self._sha = bytearray(), ""
        if BootFault.BOOT_FAIL in self.faults or not self.slots[new].image:
            self.state = "idle"
            return self._reply("ROLLBACK", self.version, "boot_check_failed")
        self.active = new
        self.version = self.slots[new].version
        self.state = "idle"
        return self._reply("BOOTED", self.version, self.active)

    def image_sha256(self) -> str:
        return hashlib.sha256(self.slots[self.active].image).hexdigest()


class SerialBootloaders:
    """Bootloaders on one serial line (a pty's device end), answering with real wire timing."""

    def __init__(self, port: str, devices: list[BootloaderModel], *, baudrate: int = 115200) -> None:
        self.port = port
        self.baudrate = baudrate
        self.devices = {d.address: d for d in devices}
        self.clock = WireClock(baudrate)
        self.clock.char_s = 10 / baudrate  # 8N1
        self.clock.gap_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self.frames = 0

    async def start(self) -> None:
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=self.port, baudrate=self.baudrate
        )
        self._task = asyncio.create_task(self._serve(reader, writer), name=f"bootloader-sim:{self.port}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @staticmethod
    def _rebooted(device: BootloaderModel, writer: asyncio.StreamWriter) -> None:
        if not writer.is_closing():
            writer.write(device.reboot().encode())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await reader.readuntil(b"\n")
                arrived = loop.time()
                try:
                    frame = decode_frame(line)
                except FrameError:
                    continue  # a garbled line: the controller's timeout resends it
                device = self.devices.get(frame.address)
                if device is None:
                    continue
                self.frames += 1
                replies = device.handle(frame)
                out = b"".join(r.encode() for r in replies)
                # the request took its wire time to arrive, the reply takes its own
                wire = (len(line) + len(out)) * self.clock.char_s
                await asyncio.sleep(max(0.0, arrived + wire - loop.time()))
                if out:
                    writer.write(out)
                    await writer.drain()
                if frame.verb == "ACTIVATE" and device.state == "updating":
                    # the device reboots by itself; the line stays free for the others meanwhile
                    asyncio.get_running_loop().call_later(REBOOT_S, self._rebooted, device, writer)
        finally:
            writer.close()


class MqttBootloaders:
    """Bootloaders reached over MQTT: frames on `<prefix>/<device>/down`, replies on `…/up`."""

    def __init__(
        self, host: str, port: int, devices: dict[str, BootloaderModel], *, prefix: str = "lamplighter/fw"
    ) -> None:
        self.host, self.port = host, port
        self.devices = devices
        self.prefix = prefix
        self.frames = 0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._reboots: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="bootloader-sim:mqtt")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
            self._task = None

    async def _serve(self) -> None:
        nodelay = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)  # as the controller's side, docs/firmware.md
        async with aiomqtt.Client(self.host, self.port, timeout=10, socket_options=nodelay) as client:
            await client.subscribe(f"{self.prefix}/+/down", qos=1)
            self._ready.set()
            async for message in client.messages:
                key = message.topic.value.split("/")[-2]
                device = self.devices.get(key)
                if device is None or not isinstance(message.payload, bytes | bytearray):
                    continue
                try:
                    frame = decode_frame(bytes(message.payload))
                except FrameError:
                    continue
                self.frames += 1
                up = f"{self.prefix}/{key}/up"
                for reply in device.handle(frame):
                    await client.publish(up, reply.encode(), qos=1)
                if frame.verb == "ACTIVATE" and device.state == "updating":
                    task = asyncio.create_task(self._reboot_later(client, device, up))
                    self._reboots.add(task)
                    task.add_done_callback(self._reboots.discard)

    async def _reboot_later(self, client: aiomqtt.Client, device: BootloaderModel, up: str) -> None:
        await asyncio.sleep(REBOOT_S)
        await client.publish(up, device.reboot().encode(), qos=1)
