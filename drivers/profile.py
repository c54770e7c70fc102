"""Device profiles: register maps as data, and the pure codec that turns registers into readings.

A profile is the single truth about a device model. Drivers decode with it; simulators encode
with it. Nothing here does I/O except `load_profile`, which reads a TOML file once at start-up.
"""

from __future__ import annotations

import functools
import struct
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.base import FieldValue
from drivers.errors import ProfileError
from drivers.fields import READING_FIELDS, SETPOINT_FIELDS, STATUS_FLAGS
from drivers.gatt import BleLayout
from drivers.line_protocol import LineLayout
from drivers.payload import MqttLayout

Table = Literal["holding", "input"]
RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32", "bits16", "version16"]
WordOrder = Literal["big", "little"]

_WIDTH: dict[str, int] = {"uint32": 2, "int32": 2, "float32": 2}
#: Modbus allows at most 125 registers in one read.
MAX_READ_COUNT = 125
#: merge register ranges separated by at most this many unused registers into one read.
MAX_READ_GAP = 8


class RegisterSpec(BaseModel):
    """One register (or 32-bit register pair) of a device model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    table: Table
    address: int = Field(ge=0, le=65534)
    type: RegisterType
    scale: float = 1.0
    word_order: WordOrder | None = None
    field: str | None = None
    setpoint: str | None = None
    min: float | None = None
    max: float | None = None
    bits: dict[str, int] | None = None
    description: str = ""

    @property
    def width(self) -> int:
        return _WIDTH.get(self.type, 1)

    @model_validator(mode="after")
    def _check(self) -> RegisterSpec:
        if self.field is not None and self.field not in READING_FIELDS:
            raise ValueError(f"unknown field {self.field!r}; known: {sorted(READING_FIELDS)}")
        if self.setpoint is not None:
            if self.setpoint not in SETPOINT_FIELDS:
                raise ValueError(f"unknown setpoint {self.setpoint!r}")
            if self.table != "holding":
                raise ValueError("a setpoint must live in a holding register")
        if self.type == "bits16":
            if not self.bits:
                raise ValueError("type bits16 needs a [bits] table naming each flag's bit")
            unknown = set(self.bits) - STATUS_FLAGS
            if unknown:
                raise ValueError(f"unknown status flags {sorted(unknown)}")
            if any(not 0 <= b <= 15 for b in self.bits.values()):
                raise ValueError("bit numbers must be 0–15")
        elif self.field is None and self.setpoint is None:
            raise ValueError("a register needs a field, a setpoint or bits")
        return self


class ProfileHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str
    kind: Literal["lamp", "sensor", "access_point"]
    protocol: Literal["modbus", "mqtt", "line", "ble"]
    word_order: WordOrder = "big"
    rated_power_w: float = Field(default=100.0, gt=0)
    nominal_voltage_v: float = Field(default=230.0, gt=0)
    power_factor: float = Field(default=0.95, gt=0, le=1)


class DeviceProfile(BaseModel):
    """A device model: header plus register map, validated for overlaps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: ProfileHeader
    registers: tuple[RegisterSpec, ...] = ()
    mqtt: MqttLayout | None = None
    line: LineLayout | None = None
    ble: BleLayout | None = None

    @model_validator(mode="after")
    def _layout_fits_protocol(self) -> DeviceProfile:
        if self.profile.protocol == "modbus" and not self.registers:
            raise ValueError("a modbus profile needs [[registers]]")
        if self.profile.protocol == "mqtt" and self.mqtt is None:
            raise ValueError("an mqtt profile needs an [mqtt] table")
        if self.profile.protocol == "line" and self.line is None:
            raise ValueError("a line profile needs a [line] table")
        if self.profile.protocol == "ble" and self.ble is None:
            raise ValueError("a ble profile needs a [ble] table")
        return self

    @model_validator(mode="after")
    def _no_overlaps(self) -> DeviceProfile:
        for table in ("holding", "input"):
            used: dict[int, str] = {}
            for reg in self.registers:
                if reg.table != table:
                    continue
                for a in range(reg.address, reg.address + reg.width):
                    if a in used:
                        raise ValueError(f"{table} register {a} used by both {used[a]!r} and {reg.name!r}")
                    used[a] = reg.name
        return self

    @property
    def name(self) -> str:
        return self.profile.name

    def __hash__(self) -> int:  # profiles are immutable; hash by name for caches
        return hash(self.profile.name)

    @functools.cached_property
    def codec(self) -> RegisterCodec:
        return RegisterCodec(self)


# Decoder kinds for the polling fast path; float32 takes the general path.
_U16, _I16, _BOOL, _VERSION, _U32, _I32, _GENERAL = range(7)
_KIND = {"uint16": _U16, "int16": _I16, "version16": _VERSION, "uint32": _U32, "int32": _I32}
#: (field, block, first word, second word, kind, scale, min, max, where, spec, word order)
_FastField = tuple[str, int, int, int, int, float, float | None, float | None, str, "RegisterSpec", WordOrder]


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One contiguous read request: `count` registers from `start` in `table`."""

    table: Table
    start: int
    count: int


class RegisterCodec:
    """Pure encode/decode for one profile, with its read plan computed once."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        order = profile.profile.word_order
        measured = [r for r in profile.registers if r.field is not None or r.bits]
        self.poll_blocks: tuple[ReadBlock, ...] = tuple(plan_reads(measured))
        self.setpoint_regs: tuple[RegisterSpec, ...] = tuple(
            r for r in profile.registers if r.setpoint is not None
        )
        self.setpoint_blocks: tuple[ReadBlock, ...] = tuple(plan_reads(self.setpoint_regs))
        self._measured = [(r, _locate(r, self.poll_blocks), r.word_order or order) for r in measured]
        self._setpoints = [
            (r, _locate(r, self.setpoint_blocks), r.word_order or order) for r in self.setpoint_regs
        ]
        self._order = order
        # Polling decodes every register of every device many times a second: resolve each
        # register once into plain values so the hot loop touches no pydantic attributes.
        self._fast: list[_FastField] = []
        self._status: tuple[int, int, tuple[tuple[str, int], ...]] | None = None
        for reg, (block, offset), reg_order in self._measured:
            if reg.bits:
                self._status = (block, offset, tuple(reg.bits.items()))
                continue
            assert reg.field is not None
            kind = _KIND.get(reg.type, _GENERAL)
            if kind == _U16 and reg.field == "lamp_on":
                kind = _BOOL
            first, second = (offset, offset + 1) if reg_order == "big" else (offset + 1, offset)
            where = f"register {reg.name} ({reg.table} {reg.address})"
            self._fast.append(
                (reg.field, block, first, second, kind, reg.scale, reg.min, reg.max, where, reg, reg_order)
            )

    # -- decoding ------------------------------------------------------------------------------
    def decode_poll(
        self, blocks: Sequence[Sequence[int]]
    ) -> tuple[dict[str, FieldValue], dict[str, bool], int | None, dict[str, str]]:
        """Decode the poll blocks into (values, status flags, raw status, rejected fields)."""
        values: dict[str, FieldValue] = {}
        status: dict[str, bool] = {}
        raw_status: int | None = None
        rejected: dict[str, str] = {}
        if self._status is not None:
            block, offset, bits = self._status
            raw_status = blocks[block][offset]
            for flag, bit in bits:
                status[flag] = bool(raw_status >> bit & 1)
        for field, block, first, second, kind, scale, lo, hi, where, reg, order in self._fast:
            words = blocks[block]
            if kind == _GENERAL:
                try:
                    values[field] = decode_register(reg, words[first : first + reg.width], order)
                except (ValueError, struct.error) as exc:
                    rejected[field] = f"{where}: {exc}"
                continue
            raw = words[first]
            if kind >= _U32:
                low = words[second]
                if raw > 0xFFFF or low > 0xFFFF:
                    rejected[field] = f"{where}: words {raw:#x}, {low:#x} wider than 16 bits"
                    continue
                raw = raw << 16 | low
                if kind == _I32 and raw & 0x80000000:
                    raw -= 0x1_0000_0000
            elif raw > 0xFFFF:
                rejected[field] = f"{where}: word {raw:#x} wider than 16 bits"
                continue
            elif kind == _I16 and raw & 0x8000:
                raw -= 0x10000
            elif kind == _VERSION:
                values[field] = f"{raw >> 8}.{raw & 0xFF}"
                continue
            value: float = raw * scale if scale != 1 else raw
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                rejected[field] = f"{where}: value {value:g} outside {lo}..{hi}"
                continue
            if kind == _BOOL:
                values[field] = bool(value)
            else:
                values[field] = round(value, 6) if scale != 1 else value
        return values, status, raw_status, rejected

    def decode_setpoints(self, blocks: Sequence[Sequence[int]]) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {}
        for reg, (block, offset), order in self._setpoints:
            assert reg.setpoint is not None
            words = blocks[block][offset : offset + reg.width]
            out[reg.setpoint] = decode_register(reg, words, order, as_bool=reg.setpoint == "lamp_on")
        return out

    # -- encoding ------------------------------------------------------------------------------
    def encode_setpoints(self, setpoints: Mapping[str, FieldValue]) -> list[tuple[int, list[int]]]:
        """Setpoints → contiguous holding-register writes [(start address, words)]."""
        unknown = set(setpoints) - {r.setpoint for r in self.setpoint_regs}
        if unknown:
            raise ValueError(f"profile {self.profile.name} has no setpoint {sorted(unknown)}")
        words: dict[int, int] = {}
        for reg, _, order in self._setpoints:
            if reg.setpoint is not None and reg.setpoint in setpoints:
                encoded = encode_register(reg, setpoints[reg.setpoint], order)
                for i, w in enumerate(encoded):
                    words[reg.address + i] = w
        return _contiguous(words)

    def encode_measurement(self, reg: RegisterSpec, value: FieldValue) -> list[int]:
        """Physical value → register words (used by simulators)."""
        return encode_register(reg, value, reg.word_order or self._order)


def decode_register(
    reg: RegisterSpec, words: Sequence[int], order: WordOrder, *, as_bool: bool = False
) -> FieldValue:
    """Decode one register's words into its physical value; ValueError if out of range."""
    if len(words) != reg.width:
        raise ValueError(f"expected {reg.width} words, got {len(words)}")
    if reg.type == "version16":
        return f"{words[0] >> 8}.{words[0] & 0xFF}"
    raw: float
    if reg.width == 2:
        hi, lo = (words[0], words[1]) if order == "big" else (words[1], words[0])
        packed = struct.pack(">HH", hi, lo)
        fmt = {"uint32": ">I", "int32": ">i", "float32": ">f"}[reg.type]
        raw = struct.unpack(fmt, packed)[0]
    elif reg.type == "int16":
        raw = words[0] - 0x10000 if words[0] & 0x8000 else words[0]
    else:
        raw = words[0]
    value = raw * reg.scale if reg.scale != 1 else raw
    if raw != raw or (reg.min is not None and value < reg.min) or (reg.max is not None and value > reg.max):
        raise ValueError(f"value {value:g} outside {reg.min}..{reg.max}")
    if as_bool or (reg.field == "lamp_on"):
        return bool(value)
    return round(value, 6) if isinstance(value, float) else value


def encode_register(reg: RegisterSpec, value: FieldValue, order: WordOrder) -> list[int]:
    """Encode a physical value into register words; ValueError if it does not fit."""
    if reg.type == "version16":
        major, minor = (int(p) for p in str(value).split("."))
        return [(major & 0xFF) << 8 | (minor & 0xFF)]
    number = float(value)
    if (reg.min is not None and number < reg.min) or (reg.max is not None and number > reg.max):
        raise ValueError(f"{reg.name}: {number:g} outside {reg.min}..{reg.max}")
    raw = number / reg.scale
    if reg.type == "float32":
        packed = struct.pack(">f", raw)
    elif reg.type in ("uint32", "int32"):
        packed = struct.pack(">I" if reg.type == "uint32" else ">i", round(raw))
    elif reg.type == "int16":
        return [struct.unpack(">H", struct.pack(">h", round(raw)))[0]]
    else:
        as_int = round(raw)
        if not 0 <= as_int <= 0xFFFF:
            raise ValueError(f"{reg.name}: {number:g} does not fit in 16 bits")
        return [as_int]
    hi, lo = struct.unpack(">HH", packed)
    return [hi, lo] if order == "big" else [lo, hi]


def plan_reads(regs: Iterable[RegisterSpec]) -> list[ReadBlock]:
    """Group registers into as few contiguous reads as the gap and size limits allow."""
    blocks: list[ReadBlock] = []
    tables: tuple[Table, ...] = ("holding", "input")
    for table in tables:
        spans = sorted((r.address, r.address + r.width) for r in regs if r.table == table)
        start = end = -1
        for lo, hi in spans:
            if start >= 0 and lo - end <= MAX_READ_GAP and hi - start <= MAX_READ_COUNT:
                end = max(end, hi)
                continue
            if start >= 0:
                blocks.append(ReadBlock(table, start, end - start))
            start, end = lo, hi
        if start >= 0:
            blocks.append(ReadBlock(table, start, end - start))
    return blocks


def _locate(reg: RegisterSpec, blocks: Sequence[ReadBlock]) -> tuple[int, int]:
    for i, b in enumerate(blocks):
        if b.table == reg.table and b.start <= reg.address < b.start + b.count:
            return i, reg.address - b.start
    raise AssertionError(f"register {reg.name} not in read plan")  # plan_reads covers all


def _contiguous(words: Mapping[int, int]) -> list[tuple[int, list[int]]]:
    runs: list[tuple[int, list[int]]] = []
    for addr in sorted(words):
        if runs and runs[-1][0] + len(runs[-1][1]) == addr:
            runs[-1][1].append(words[addr])
        else:
            runs.append((addr, [words[addr]]))
    return runs


# -- loading ---------------------------------------------------------------------------------
def parse_profile(text: str, source: str) -> DeviceProfile:
    """Parse and validate a profile; errors name the source file and the offending key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _describe_loc(data, err["loc"])
            problems.append(f"{source}: {loc}: {err['msg']}")
        raise ProfileError("\n".join(problems)) from exc


def _describe_loc(data: object, loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            name = node[key].get("name") if isinstance(node, list) and key < len(node) else None
            parts[-1] = f"{parts[-1]}[{key}]" + (f" ({name})" if name else "")
            node = node[key] if isinstance(node, list) and key < len(node) else None
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def available_profiles(extra_dir: Path | None = None) -> list[str]:
    names = {p.name[:-5] for p in resources.files("drivers.profiles").iterdir() if p.name.endswith(".toml")}
    if extra_dir is not None and extra_dir.is_dir():
        names |= {p.stem for p in extra_dir.glob("*.toml")}
    return sorted(names)


@functools.lru_cache(maxsize=64)
def load_profile(name: str, extra_dir: Path | None = None) -> DeviceProfile:
    """Load a profile by name: a file in `extra_dir` wins over the built-in one."""
    if extra_dir is not None and (extra_dir / f"{name}.toml").is_file():
        path = extra_dir / f"{name}.toml"
        return parse_profile(path.read_text(encoding="utf-8"), str(path))
    resource = resources.files("drivers.profiles") / f"{name}.toml"
    if not resource.is_file():
        raise ProfileError(f"unknown profile {name!r}; available: {available_profiles(extra_dir)}")
    return parse_profile(resource.read_text(encoding="utf-8"), f"drivers/profiles/{name}.toml")
