"""The firmware image format and transfer frames: what the controller and a device's bootloader share.

Like a profile, this is the contract on both sides of the wire (docs/firmware.md): the controller
(`firmware_bridge`) signs, checks and sends images with it; a bootloader — our simulated one, or a
device maker's — parses the same frames and runs the same checks before it flashes anything.

A signed manifest is `{"manifest": {...}, "signature": "<base64 Ed25519>"}`; the signature covers
the manifest's canonical JSON (sorted keys, no spaces, UTF-8). The image itself is raw bytes, bound
to the manifest by its size and SHA-256.

A frame is one ASCII line: `<addr> <VERB> [<arg> ...]*<crc32>\\n` — `addr` two hex digits (the
device's address on a shared line; `00` on a point-to-point link), `crc32` eight hex digits of the
CRC-32 of every byte before the `*`. Binary data travels base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_FRAME = 16_384
_VERSION = r"^\d+(\.\d+){0,3}$"


class Manifest(BaseModel):
    """What an image is, and for which hardware."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = 1
    model: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="device model (profile name)")
    version: str = Field(pattern=_VERSION, description="dotted numbers, e.g. 1.5.0")
    size: int = Field(ge=1, description="image size in bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    min_hw_rev: int = Field(default=0, ge=0, description="oldest hardware revision it runs on")
    notes: str = Field(default="", max_length=4000, description="release notes")
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="which signing key (see key_id())")
    created_at: datetime

    def canonical(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


class SignedManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest: Manifest
    signature: str = Field(default="", description="base64 Ed25519 signature of the canonical manifest")

    def to_json(self) -> str:
        return self.model_dump_json()


class FirmwareRejected(Exception):
    """An image that must not be flashed; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw public key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_version(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def check_manifest(
    signed: SignedManifest,
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    model: str | None = None,
    hw_rev: int | None = None,
    current_version: str | None = None,
    allow_downgrade: bool = False,
) -> Manifest:
    """Signature, key, model, hardware and version checks — everything but the image bytes."""
    m = signed.manifest
    if not signed.signature:
        raise FirmwareRejected("unsigned", "the manifest carries no signature")
    key = trusted.get(m.key_id)
    if key is None:
        raise FirmwareRejected("unknown_key", f"signed with key {m.key_id}, which is not trusted here")
    try:
        key.verify(base64.b64decode(signed.signature, validate=True), m.canonical())
    except (InvalidSignature, binascii.Error, ValueError):
        raise FirmwareRejected(
            "bad_signature", "the signature does not match the manifest (tampered, or another key)"
        ) from None
    if model is not None and m.model != model:
        raise FirmwareRejected("wrong_model", f"the image is for {m.model!r}, the device is {model!r}")
    if hw_rev is not None and hw_rev < m.min_hw_rev:
        raise FirmwareRejected(
            "hardware_too_old", f"the image needs hardware revision {m.min_hw_rev}, the device has {hw_rev}"
        )
    if (
        current_version is not None
        and not allow_downgrade
        and parse_version(m.version) < parse_version(current_version)
    ):
        raise FirmwareRejected(
            "downgrade",
            f"{m.version} is older than the installed {current_version} (allow_downgrade to force)",
        )
    return m


def check_image(image: bytes, manifest: Manifest) -> None:
    """The bytes are the ones the manifest describes."""
    if len(image) != manifest.size:
        what = "truncated" if len(image) < manifest.size else "oversized"
        raise FirmwareRejected(what, f"the image has {len(image)} bytes, the manifest says {manifest.size}")
    if hashlib.sha256(image).hexdigest() != manifest.sha256:
        raise FirmwareRejected("hash_mismatch", "the image's SHA-256 differs from the manifest's (tampered)")


def parse_signed_manifest(text: str | bytes) -> SignedManifest:
    try:
        return SignedManifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FirmwareRejected("bad_manifest", f"not a signed manifest: {where}: {first['msg']}") from None


# -- frames --------------------------------------------------------------------------------------
_FRAME = re.compile(rb"^([0-9A-F]{2}) ([A-Z]+)((?: [^ *\r\n]+)*)\*([0-9A-F]{8})\r?\n?$")


class FrameError(ValueError):
    """A line that is not a valid frame (bad CRC, bad shape, too long)."""


@dataclass(frozen=True, slots=True)
class Frame:
    address: int
    verb: str
    args: tuple[str, ...] = ()

    def encode(self) -> bytes:
        body = f"{self.address:02X} {self.verb}{''.join(' ' + a for a in self.args)}".encode()
        line = body + f"*{zlib.crc32(body):08X}\n".encode()
        if len(line) > MAX_FRAME:
            raise FrameError(f"frame of {len(line)} bytes exceeds {MAX_FRAME}")
        return line

    def arg(self, i: int) -> str:
        if i >= len(self.args):
            raise FrameError(f"{self.verb} needs at least {i + 1} argument(s)")
        return self.args[i]


def decode_frame(line: bytes) -> Frame:
    if len(line) > MAX_FRAME:
        raise FrameError(f"line of {len(line)} bytes exceeds {MAX_FRAME}")
    m = _FRAME.match(line)
    if m is None:
        raise FrameError(f"not a frame: {line[:60]!r}")
    body = line[: line.index(b"*")]
    if zlib.crc32(body) != int(m.group(4), 16):
        raise FrameError(f"CRC mismatch in {line[:40]!r}…")
    args = tuple(a.decode() for a in m.group(3).split())
    return Frame(int(m.group(1), 16), m.group(2).decode(), args)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise FrameError(f"bad base64: {exc}") from None


# -- BLE ------------------------------------------------------------------------------------------
#: the firmware service a BLE bootloader exposes, and its one characteristic: frames are written to
#: it (with response) and replies arrive as notifications of it
BLE_FIRMWARE_SERVICE = "6c616d70-6677-4000-8000-000000000001"
BLE_FIRMWARE_FRAMES = "6c616d70-6677-4000-8000-000000000002"
