"""Device profiles: per device model, the register map, JSON, line or GATT layout — as data.

A profile is the single truth about a device model: drivers read with it, simulators serve with it.
The register codec is in drivers/registers.py (`codec_for(profile)`). The only I/O here is
`load_profile`, which reads a TOML file once at start-up.
"""

from __future__ import annotations

import functools
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from drivers.errors import ProfileError
from drivers.fields import FIELD_NAME, READING_FIELDS, SETPOINT_FIELDS, STATUS_FLAGS, UNITS
from drivers.gatt import BleLayout
from drivers.line_protocol import LineLayout
from drivers.payload import JsonField, MqttLayout
from drivers.units import UnitError, conversion

#: what a device is: its alerts, its place in the energy report and its NGSI-LD type follow from it
DeviceKind = Literal["lamp", "meter", "sensor", "access_point", "device"]
#: what a sensor observes (its NGSI-LD type: AirQualityObserved, WeatherObserved, NoiseLevelObserved)
Observation = Literal["air_quality", "weather", "noise"]
#: the FIWARE Smart Data Models a device is exported as over NGSI-LD
NgsiType = Literal[
    "Streetlight",
    "StreetlightControlCabinet",
    "AirQualityObserved",
    "WeatherObserved",
    "NoiseLevelObserved",
    "Device",
]
_NGSI_BY_KIND: dict[str, NgsiType] = {
    "lamp": "Streetlight",
    "meter": "StreetlightControlCabinet",
    "access_point": "Device",
    "device": "Device",
}
_NGSI_BY_OBSERVATION: dict[str, NgsiType] = {
    "air_quality": "AirQualityObserved",
    "weather": "WeatherObserved",
    "noise": "NoiseLevelObserved",
}
#: an NGSI-LD attribute name a declared field is exported as (camelCase, as the data models write them)
_NGSI_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")

Table = Literal["holding", "input"]
RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32", "bits16", "version16"]
WordOrder = Literal["big", "little"]

_WIDTH: dict[str, int] = {"uint32": 2, "int32": 2, "float32": 2}


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
    unit: str | None = Field(default=None, description="the unit the device writes, if not the field's")
    description: str = ""
    _conversion: tuple[float, float] = PrivateAttr(default=(1.0, 0.0))

    @property
    def width(self) -> int:
        return _WIDTH.get(self.type, 1)

    @property
    def conversion(self) -> tuple[float, float]:
        """(gain, offset) from `unit` to the field's unit: value × scale × gain + offset."""
        return self._conversion

    @model_validator(mode="after")
    def _check(self) -> RegisterSpec:
        if self.field is not None and not FIELD_NAME.match(self.field):
            raise ValueError(f"field name {self.field!r}: lower-case letters, digits and _")
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
    kind: DeviceKind
    protocol: Literal["modbus", "mqtt", "line", "ble"]
    observation: Observation | None = Field(default=None, description="what a sensor observes")
    ngsi_type: NgsiType | None = Field(default=None, description="else told by kind and observation")
    maker: str = ""
    documentation: str = Field(default="", description="the maker's document this profile follows")
    word_order: WordOrder = "big"
    rated_power_w: float = Field(default=100.0, gt=0)
    nominal_voltage_v: float = Field(default=230.0, gt=0)
    power_factor: float = Field(default=0.95, gt=0, le=1)
    write_read_registers: bool = Field(
        default=False,
        description="the device answers Modbus function 23 (read/write multiple registers): a "
        "command is written and read back in one exchange, not two",
    )

    @model_validator(mode="after")
    def _observation_of_sensors(self) -> ProfileHeader:
        if self.observation is not None and self.kind != "sensor":
            raise ValueError(f"observation is for sensors; this profile's kind is {self.kind!r}")
        return self

    @property
    def entity_type(self) -> NgsiType:
        """The NGSI-LD type devices of this model are exported as."""
        if self.ngsi_type is not None:
            return self.ngsi_type
        if self.kind == "sensor":
            return _NGSI_BY_OBSERVATION[self.observation or "air_quality"]
        return _NGSI_BY_KIND[self.kind]


class DeclaredField(BaseModel):
    """A field of this model beyond the well-known ones, e.g. a meter's `frequency_hz`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str = Field(description="a SenML unit (RFC 8428): Hz, V, A, W, Wh, kWh, Cel, %RH, ug/m3 …")
    description: str = ""
    ngsi: str | None = Field(
        default=None, description="the NGSI-LD attribute it is exported as, e.g. voltageR"
    )

    @model_validator(mode="after")
    def _senml(self) -> DeclaredField:
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r} is not a SenML unit (RFC 8428): Hz, V, kWh, Cel, %RH …")
        if self.ngsi is not None and not _NGSI_ATTRIBUTE.match(self.ngsi):
            raise ValueError(f"ngsi {self.ngsi!r}: an attribute name as its data model writes it: voltageR")
        return self


class DeviceProfile(BaseModel):
    """A device model: header plus register map, validated for overlaps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: ProfileHeader
    registers: tuple[RegisterSpec, ...] = ()
    mqtt: MqttLayout | None = None
    line: LineLayout | None = None
    ble: BleLayout | None = None
    #: alert thresholds for this model (names in docs/alerts.md; checked by the controller's config)
    alerts: dict[str, float] = Field(default_factory=dict)
    #: fields of this model beyond the well-known ones (drivers/fields.py), by name
    fields: dict[str, DeclaredField] = Field(default_factory=dict)

    def mapped_fields(self) -> list[str]:
        """Every reading field this model's layout fills, in layout order."""
        names = [r.field for r in self.registers if r.field is not None]
        if self.mqtt is not None:
            names += [f.field for f in self.mqtt.fields]
        if self.line is not None:
            names += [f.field for f in self.line.fields if f.field is not None]
        if self.ble is not None:
            names += [c.field for c in self.ble.characteristics]
            if self.ble.advertisement is not None:
                names += [f.field for f in self.ble.advertisement.fields]
        return list(dict.fromkeys(names))

    def unit_of(self, field: str) -> str | None:
        if field in self.fields:
            return self.fields[field].unit
        known = READING_FIELDS.get(field)
        return known[0] if known else None

    @model_validator(mode="after")
    def _fields_are_known_or_declared(self) -> DeviceProfile:
        for name in self.fields:
            if not FIELD_NAME.match(name):
                raise ValueError(f"[fields] {name!r}: lower-case letters, digits and _ (e.g. frequency_hz)")
            if name in READING_FIELDS:
                raise ValueError(f"[fields] {name!r} is a well-known field: map onto it, do not declare it")
        where = [(r.field, f"registers[{i}]") for i, r in enumerate(self.registers) if r.field]
        where += [(f.field, f"mqtt.fields[{i}]") for i, f in enumerate(self.mqtt.fields if self.mqtt else ())]
        named = dict(reversed(where))  # the first entry naming each field
        for name in self.mapped_fields():
            if name not in READING_FIELDS and name not in self.fields:
                at = f" ({named[name]})" if name in named else ""
                raise ValueError(f"unknown field {name!r}{at}: not well-known (docs/devices.md), no [fields]")
        return self

    @model_validator(mode="after")
    def _units_convert(self) -> DeviceProfile:
        """Each `unit = …` a register or JSON value names converts into its field's unit (pint)."""
        specs: list[tuple[str, RegisterSpec | JsonField]] = [
            (f"registers[{i}]", r) for i, r in enumerate(self.registers) if r.field
        ]
        specs += [(f"mqtt.fields[{i}]", f) for i, f in enumerate(self.mqtt.fields if self.mqtt else ())]
        for where, spec in specs:
            if spec.unit is None or spec.field is None:
                continue
            target = self.unit_of(spec.field)
            if target is None:
                continue  # an unknown field: reported by _fields_are_known_or_declared
            try:
                spec._conversion = conversion(spec.unit, target)
            except UnitError as exc:
                raise ValueError(f"{where} ({spec.field}): {exc}") from None
        return self

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

    @model_validator(mode="after")
    def _one_register_per_field(self) -> DeviceProfile:
        seen: dict[str, int] = {}
        for i, reg in enumerate(self.registers):
            if reg.field is None:
                continue
            if reg.field in seen:
                where = f"registers[{seen[reg.field]}] and registers[{i}]"
                raise ValueError(f"field {reg.field!r} is mapped twice: {where}")
            seen[reg.field] = i
        return self

    @property
    def name(self) -> str:
        return self.profile.name

    def __hash__(self) -> int:  # profiles are immutable; hash by name for caches
        return hash(self.profile.name)


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
            problems.append(f"{source}{_line(text, err['loc'], err['msg'])}: {loc}: {err['msg']}")
        raise ProfileError("\n".join(problems)) from exc


_ENTRY = re.compile(r"\b(registers|mqtt\.fields)\[(\d+)\]")


def _line(text: str, loc: tuple[int | str, ...], message: str) -> str:
    """`:<line>` of the table entry an error is about (the last one it names), or nothing."""
    named = _ENTRY.findall(message)
    if named:
        table, index = named[-1][0], int(named[-1][1])
    elif len(loc) >= 2 and loc[0] == "registers" and isinstance(loc[1], int):
        table, index = "registers", loc[1]
    elif len(loc) >= 3 and loc[:2] == ("mqtt", "fields") and isinstance(loc[2], int):
        table, index = "mqtt.fields", loc[2]
    else:
        return ""
    header = f"[[{table}]]"
    count = -1
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith(header):
            count += 1
            if count == index:
                return f":{number}"
    return ""


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
    """Load a profile by name: a file in `extra_dir` wins over the built-in one.

    One object per file, however it is asked for (`load_profile(n)`, `load_profile(n, None)`, an
    `extra_dir` without that file): codecs are cached per object, and two equal objects of one
    name made each lookup compare their register maps (~20 µs a poll, simulators and controller
    in one process)."""
    if extra_dir is not None and (extra_dir / f"{name}.toml").is_file():
        return _profile_file(extra_dir / f"{name}.toml")
    return _builtin_profile(name, extra_dir)


@functools.lru_cache(maxsize=64)
def _profile_file(path: Path) -> DeviceProfile:
    return parse_profile(path.read_text(encoding="utf-8"), str(path))


def _builtin_profile(name: str, extra_dir: Path | None) -> DeviceProfile:
    resource = resources.files("drivers.profiles") / f"{name}.toml"
    if not resource.is_file():
        raise ProfileError(f"unknown profile {name!r}; available: {available_profiles(extra_dir)}")
    return _parsed_builtin(name)


@functools.lru_cache(maxsize=64)
def _parsed_builtin(name: str) -> DeviceProfile:
    resource = resources.files("drivers.profiles") / f"{name}.toml"
    return parse_profile(resource.read_text(encoding="utf-8"), f"drivers/profiles/{name}.toml")
