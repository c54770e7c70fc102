"""The legacy lamp-node line protocol (docs/serial-protocol.md): frames, checksums, profile layout.

An ASCII request/reply protocol on a multi-drop serial line, NMEA-style:

    >07 READ*35\\r\\n
    <07 OK LVL=60 ON=1 V=229.8 I=0.27 P=60.1 E=123456 T=41.2 H=1234.5 ST=00 FW=1.2*42\\r\\n
    >07 SET LVL=40 ON=1*07\\r\\n
    <07 ERR RANGE LVL*6B\\r\\n

`>` starts a request, `<` a reply; two hex digits address the node; `*` is followed by two hex digits,
the XOR of every byte between the start character and the `*`. Pure functions; no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.fields import SETPOINT_FIELDS, STATUS_FLAGS, FieldValue, ReadingFieldName

MAX_LINE_BYTES = 256
_FRAME = re.compile(r"^([<>])([0-9A-F]{2}) ([A-Z]+)((?: [^*\s]+)*)\*([0-9A-F]{2})$")


class FrameError(ValueError):
    """A line that is not a valid frame (bad shape or checksum)."""


@dataclass(frozen=True, slots=True)
class Frame:
    direction: Literal["request", "reply"]
    address: int
    verb: str
    args: tuple[str, ...]

    @property
    def pairs(self) -> dict[str, str]:
        return dict(a.split("=", 1) for a in self.args if "=" in a)


def checksum(body: str) -> str:
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def encode_frame(frame: Frame) -> bytes:
    if not 0 < frame.address < 0xFF:
        raise ValueError(f"address {frame.address} outside 1..254")
    body = f"{frame.address:02X} {' '.join((frame.verb, *frame.args))}"
    start = ">" if frame.direction == "request" else "<"
    return f"{start}{body}*{checksum(body)}\r\n".encode("ascii")


def decode_frame(line: bytes) -> Frame:
    """Parse one line (with or without CR LF); FrameError says what is wrong."""
    if len(line) > MAX_LINE_BYTES:
        raise FrameError(f"line of {len(line)} bytes is longer than {MAX_LINE_BYTES}")
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise FrameError("line is not ASCII") from None
    m = _FRAME.match(text)
    if m is None:
        raise FrameError(f"not a frame: {text[:60]!r}")
    start, address, verb, args, given = m.groups()
    body = text[1 : text.index("*")]
    if checksum(body) != given:
        raise FrameError(f"checksum {given} does not match {checksum(body)}")
    direction: Literal["request", "reply"] = "request" if start == ">" else "reply"
    return Frame(direction, int(address, 16), verb, tuple(args.split()))


class LineField(BaseModel):
    """One reply key and the reading field it becomes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[A-Z][A-Z0-9]{0,7}$")
    field: ReadingFieldName | None = None
    type: Literal["number", "bool", "string", "status"] = "number"
    scale: float = 1.0
    min: float | None = None
    max: float | None = None
    bits: dict[str, int] | None = None
    description: str = ""

    @field_validator("bits")
    @classmethod
    def _flags(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is not None and set(v) - STATUS_FLAGS:
            raise ValueError(f"unknown status flags {sorted(set(v) - STATUS_FLAGS)}")
        return v


class LineLayout(BaseModel):
    """How a legacy node model answers: its read and set verbs, reply keys and setpoint keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read_verb: str = "READ"
    set_verb: str = "SET"
    fields: tuple[LineField, ...] = Field(min_length=1)
    setpoints: dict[str, str] = Field(description="setpoint field → key, e.g. dim_level_pct = 'LVL'")

    @field_validator("setpoints")
    @classmethod
    def _setpoints(cls, v: dict[str, str]) -> dict[str, str]:
        if set(v) - set(SETPOINT_FIELDS):
            raise ValueError(f"unknown setpoints {sorted(set(v) - set(SETPOINT_FIELDS))}")
        return v

    def decode_reply(
        self, pairs: Mapping[str, str]
    ) -> tuple[dict[str, FieldValue], dict[str, bool], int | None, dict[str, str]]:
        """Reply pairs → (values, status flags, raw status, rejected fields with reasons)."""
        values: dict[str, FieldValue] = {}
        status: dict[str, bool] = {}
        raw_status: int | None = None
        rejected: dict[str, str] = {}
        for spec in self.fields:
            raw = pairs.get(spec.key)
            name = spec.field or spec.key
            if raw is None:
                rejected[name] = f"{spec.key}: missing"
                continue
            try:
                if spec.type == "status":
                    raw_status = int(raw, 16)
                    status = {flag: bool(raw_status >> bit & 1) for flag, bit in (spec.bits or {}).items()}
                elif spec.field is not None:
                    values[spec.field] = _convert(spec, raw)
            except ValueError as exc:
                rejected[name] = f"{spec.key}={raw[:20]}: {exc}"
        return values, status, raw_status, rejected

    def encode_setpoints(self, setpoints: Mapping[str, FieldValue]) -> tuple[str, ...]:
        unknown = set(setpoints) - set(self.setpoints)
        if unknown:
            raise ValueError(f"no setpoint {sorted(unknown)}")
        args = []
        for name, value in setpoints.items():
            if name == "dim_level_pct" and not 0 <= float(value) <= 100:
                raise ValueError(f"dim_level_pct {value} outside 0..100")
            args.append(
                f"{self.setpoints[name]}={int(bool(value)) if isinstance(value, bool) else int(value)}"
            )
        return tuple(args)

    def decode_setpoints(self, pairs: Mapping[str, str]) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {}
        for name, key in self.setpoints.items():
            if key not in pairs:
                raise ValueError(f"reply has no {key}")
            out[name] = pairs[key] == "1" if name == "lamp_on" else int(pairs[key])
        return out


def _convert(spec: LineField, raw: str) -> FieldValue:
    if spec.type == "string":
        return raw
    if spec.type == "bool":
        if raw not in ("0", "1"):
            raise ValueError("expected 0 or 1")
        return raw == "1"
    try:
        number = float(raw)
    except ValueError:
        raise ValueError("not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("not finite")
    value = number * spec.scale
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise ValueError(f"value {value:g} outside {spec.min}..{spec.max}")
    return int(value) if value.is_integer() and "." not in raw else round(value, 6)
