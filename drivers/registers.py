"""The register codec: a profile's registers ⇄ physical values, and the reads that fetch them.

Pure functions; built once per profile (`codec_for(profile)`). Drivers decode polls with it,
simulators encode their register images with it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drivers.fields import FieldValue
from drivers.profile import DeviceProfile, RegisterSpec, Table, WordOrder

#: Modbus allows at most 125 registers in one read.
MAX_READ_COUNT = 125
#: merge register ranges separated by at most this many unused registers into one read.
MAX_READ_GAP = 8


# Decoder kinds for the polling fast path; float32 takes the general path.
_U16, _I16, _BOOL, _VERSION, _U32, _I32, _GENERAL = range(7)
_KIND = {"uint16": _U16, "int16": _I16, "version16": _VERSION, "uint32": _U32, "int32": _I32}
#: (field, block, first word, second word, kind, scale, divisor, rounded, min, max, where, spec, word order)
_FastField = tuple[
    str, int, int, int, int, float, int, bool, float | None, float | None, str, "RegisterSpec", WordOrder
]


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
        #: the setpoints are one block of holding registers: function 23 can read them back
        blocks = self.setpoint_blocks
        self.one_setpoint_block = len(blocks) == 1 and blocks[0].table == "holding"
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
            gain, shift = reg.conversion
            if shift:  # an offset unit (°F → °C): the general path converts it
                kind = _GENERAL
            scale: float = reg.scale * gain
            divisor, rounded = _exact_scaling(scale)
            self._fast.append(
                (
                    *(reg.field, block, first, second, kind, scale, divisor, rounded),
                    *(reg.min, reg.max, where, reg, reg_order),
                )
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
        for (
            field,
            block,
            first,
            second,
            kind,
            scale,
            divisor,
            rounded,
            lo,
            hi,
            where,
            reg,
            order,
        ) in self._fast:
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
            value: float = raw / divisor if divisor else raw * scale if scale != 1 else raw
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                rejected[field] = f"{where}: value {value:g} outside {lo}..{hi}"
                continue
            if kind == _BOOL:
                values[field] = bool(value)
            else:
                values[field] = round(value, 6) if rounded else value
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


def _exact_scaling(scale: float) -> tuple[int, bool]:
    """(divisor, rounded) for the polling fast path. A scale of 0.1, 0.01, 0.001 divides by 10, 100,
    1000: the result is already the nearest float to the decimal (230.1, not 230.10000000000002),
    as round(raw * scale, 6) made it, without round's cost at every field of every poll. A whole
    scale needs no rounding either; any other scale is multiplied, then rounded to 6 places."""
    if scale == 1 or scale == int(scale):
        return 0, False
    inverse = round(1 / scale)
    # (a finer scale than 1e-6 keeps its rounding to 6 places: the division would keep more)
    if 1 < inverse <= 1_000_000 and abs(1 / scale - inverse) < 1e-9:
        return inverse, False
    return 0, True


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
        if reg.type == "float32" and raw == raw:
            raw = float(f"{raw:.7g}")  # what a float32 holds: 231.2, not 231.199997
    elif reg.type == "int16":
        raw = words[0] - 0x10000 if words[0] & 0x8000 else words[0]
    else:
        raw = words[0]
    gain, offset = reg.conversion
    scale = reg.scale * gain
    value = raw * scale + offset if scale != 1 or offset else raw
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
    gain, offset = reg.conversion
    raw = (number - offset) / (reg.scale * gain)
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


#: codecs by the identity of their profile, which each entry keeps alive (so its id is not reused)
_CODECS: dict[int, tuple[DeviceProfile, RegisterCodec]] = {}


def codec_for(profile: DeviceProfile) -> RegisterCodec:
    """The codec of a profile, built once per profile object (profiles are immutable).

    By identity, not equality: profiles hash by name, so a cache keyed by the profile compared two
    objects of one name field by field at every lookup — ~20 µs a poll, against 0.4 µs."""
    hit = _CODECS.get(id(profile))
    if hit is None or hit[0] is not profile:
        if len(_CODECS) >= 256:  # profiles parsed again and again (tests, `profile check`)
            _CODECS.clear()
        hit = _CODECS[id(profile)] = (profile, RegisterCodec(profile))
    return hit[1]
