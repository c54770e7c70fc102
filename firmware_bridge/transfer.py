"""Sending one signed image to one device: chunked, acknowledged, resumable (docs/firmware.md).

Per-device states, as ThingsBoard users know them: DOWNLOADING → DOWNLOADED → VERIFIED → UPDATING →
UPDATED, or FAILED with a reason. The image is checked (signature, key, model, size, hash, version)
off the event loop before the first frame is sent: nothing unverified ever leaves the controller.
A transfer cut short (the device stopped answering) can be run again: BEGIN with the same image
makes the device answer with the offset it already has, and sending resumes there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.firmware import (
    FirmwareRejected,
    Frame,
    FrameError,
    SignedManifest,
    b64,
    check_image,
    check_manifest,
    decode_frame,
)

log = logging.getLogger(__name__)
TransferState = Literal["IDLE", "DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED", "FAILED"]


class ChannelTimeout(Exception):
    """The device did not answer in time."""


class FirmwareChannel(Protocol):
    """How frames reach devices: a serial line, a BLE connection, MQTT topics."""

    async def request(self, frame: Frame, timeout_s: float) -> Frame:
        """Send a frame and return the device's reply (ChannelTimeout if none)."""

    async def receive(self, address: int, timeout_s: float) -> Frame:
        """Wait for a frame the device sends by itself (after a reboot)."""


@dataclass
class TransferStatus:
    device_id: str
    version: str  # the image's
    state: TransferState = "IDLE"
    offset: int = 0
    size: int = 0
    resumed_from: int = 0
    chunks: int = 0
    resent: int = 0
    reason: str | None = None
    version_before: str | None = None
    version_after: str | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None

    @property
    def done(self) -> bool:
        return self.state in ("UPDATED", "FAILED")


class TransferFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class TransferOptions:
    chunk_size: int = 512
    timeout_s: float = 2.0
    retries: int = 4  # per frame, after a timeout or a NAK
    boot_timeout_s: float = 30.0
    allow_downgrade: bool = False


async def verify_before_sending(
    image: bytes,
    signed: SignedManifest,
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    model: str | None = None,
    hw_rev: int | None = None,
    current_version: str | None = None,
    allow_downgrade: bool = False,
) -> None:
    """Every check, in a thread (hashing a large image must not stall polling)."""

    def run() -> None:
        check_manifest(
            signed,
            trusted,
            model=model,
            hw_rev=hw_rev,
            current_version=current_version,
            allow_downgrade=allow_downgrade,
        )
        check_image(image, signed.manifest)

    await asyncio.to_thread(run)


async def transfer(
    channel: FirmwareChannel,
    address: int,
    device_id: str,
    image: bytes,
    signed: SignedManifest,
    trusted: Mapping[str, Ed25519PublicKey],
    options: TransferOptions | None = None,
    on_progress: Callable[[TransferStatus], None] | None = None,
) -> TransferStatus:
    """Update one device; the returned status says how it ended (never raises for device trouble)."""
    opts = options or TransferOptions()
    status = TransferStatus(device_id, signed.manifest.version, size=len(image))

    def progress(state: TransferState | None = None) -> None:
        if state is not None:
            status.state = state
        if on_progress is not None:
            on_progress(status)

    try:
        hello = await _request(channel, Frame(address, "HELLO"), opts, status)
        _expect(hello, "STATUS")
        model, current, hw_rev = hello.arg(0), hello.arg(1), int(hello.arg(3))
        status.version_before = current
        try:
            await verify_before_sending(
                image,
                signed,
                trusted,
                model=model,
                hw_rev=hw_rev,
                current_version=current,
                allow_downgrade=opts.allow_downgrade,
            )
        except FirmwareRejected as exc:
            raise TransferFailed(f"refused before sending: {exc.reason}: {exc}") from None
        ready = await _request(
            channel, Frame(address, "BEGIN", (b64(signed.to_json().encode()),)), opts, status
        )
        _expect(ready, "READY")
        offset = int(ready.arg(0))
        status.offset = status.resumed_from = offset
        progress("DOWNLOADING")
        while offset < len(image):
            chunk = image[offset : offset + opts.chunk_size]
            reply = await _request(channel, Frame(address, "CHUNK", (str(offset), b64(chunk))), opts, status)
            _expect(reply, "ACK")
            offset = int(reply.arg(0))
            status.offset = offset
            status.chunks += 1
            progress()
        progress("DOWNLOADED")
        verified = await _request(channel, Frame(address, "END"), opts, status)
        _expect(verified, "VERIFIED")
        progress("VERIFIED")
        updating = await _request(channel, Frame(address, "ACTIVATE"), opts, status)
        _expect(updating, "UPDATING")
        progress("UPDATING")
        booted = await _await_boot(channel, address, opts)
        if booted.verb == "ROLLBACK":
            status.version_after = booted.arg(0)
            raise TransferFailed(f"the device rolled back to {booted.arg(0)}: {booted.arg(1)}")
        _expect(booted, "BOOTED")
        status.version_after = booted.arg(0)
        if booted.arg(0) != signed.manifest.version:
            raise TransferFailed(f"the device booted {booted.arg(0)}, not {signed.manifest.version}")
        status.finished_at = dt.datetime.now(dt.UTC)
        progress("UPDATED")
    except TransferFailed as exc:
        status.reason = exc.reason
        status.finished_at = dt.datetime.now(dt.UTC)
        log.warning("firmware %s → %s failed: %s", signed.manifest.version, device_id, exc.reason)
        progress("FAILED")
    return status


#: what answers each request (ERR and NAK may answer any)
ANSWERS = {"HELLO": "STATUS", "BEGIN": "READY", "CHUNK": "ACK", "END": "VERIFIED", "ACTIVATE": "UPDATING"}
_ANSWER_VERBS = frozenset(ANSWERS.values())


async def _request(
    channel: FirmwareChannel, frame: Frame, opts: TransferOptions, status: TransferStatus
) -> Frame:
    """One frame, retried after a timeout or a NAK for CRC; a NAK for offset is the device's to say."""
    for attempt in range(opts.retries + 1):
        try:
            reply = await channel.request(frame, opts.timeout_s)
            while reply.verb in _ANSWER_VERBS and reply.verb != ANSWERS.get(frame.verb):
                # The answer to an earlier request sent again after a timeout, come late (after
                # this request went out): not this one's answer. Taken for it, it failed a whole
                # transfer ("expected READY, the device answered STATUS") on a busy machine.
                reply = await channel.receive(frame.address, opts.timeout_s)
        except ChannelTimeout:
            if attempt == opts.retries:
                where = f" at offset {status.offset}" if frame.verb == "CHUNK" else ""
                raise TransferFailed(
                    f"the device stopped answering{where} ({frame.verb}, {opts.retries + 1} tries)"
                ) from None
            status.resent += 1
            continue
        except FrameError as exc:  # a garbled reply: ask again
            if attempt == opts.retries:
                raise TransferFailed(f"garbled replies to {frame.verb}: {exc}") from None
            status.resent += 1
            continue
        if reply.verb == "NAK" and reply.args[1:2] == ("crc",):
            status.resent += 1
            continue
        if reply.verb == "NAK" and frame.verb == "CHUNK":
            return Frame(reply.address, "ACK", (reply.arg(0),))  # the device says where to continue
        return reply
    raise TransferFailed(f"{frame.verb}: refused {opts.retries + 1} times (CRC errors on the line)")


async def _await_boot(channel: FirmwareChannel, address: int, opts: TransferOptions) -> Frame:
    """BOOTED or ROLLBACK, as the device announces it; if that announcement is lost (a poll on a
    shared line read it, a broker dropped it), ask with HELLO until `boot_timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + opts.boot_timeout_s
    wait = min(2.0, opts.boot_timeout_s)
    while True:
        try:
            return await channel.receive(address, min(wait, max(0.05, deadline - loop.time())))
        except ChannelTimeout:
            pass
        try:
            status = await channel.request(Frame(address, "HELLO"), opts.timeout_s)
            if status.verb == "STATUS" and status.args[4:5] == ("idle",):
                return Frame(address, "BOOTED", (status.arg(1), status.arg(2)))  # the version it runs now
        except (ChannelTimeout, FrameError):
            pass
        if loop.time() >= deadline:
            raise TransferFailed(f"no word from the device {opts.boot_timeout_s:g} s after it rebooted")
        wait = 1.0


async def next_frame(queue: asyncio.Queue[bytes], timeout_s: float, where: str) -> Frame:
    """The next valid frame a channel's reader queued (garbled ones are skipped)."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    return decode_frame(await queue.get())
                except FrameError:
                    continue
    except TimeoutError:
        raise ChannelTimeout(f"{where}: no reply within {timeout_s:g} s") from None


def _expect(reply: Frame, verb: str) -> None:
    if reply.verb == "ERR":
        raise TransferFailed(f"the device refused: {' '.join(reply.args)}")
    if reply.verb != verb:
        raise TransferFailed(f"expected {verb}, the device answered {reply.verb} {' '.join(reply.args)}")
