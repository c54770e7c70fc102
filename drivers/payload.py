"""JSON payload layouts for message-based devices (MQTT), and their pure decoder.

A layout says which topic a device publishes on (a template with `{device}` as one whole topic
level), where each reading field sits in the JSON document (a path: drivers/json_path.py — keys,
list items by position or by a key's value, wildcards, JSON inside strings), its scaling and its
physical range. Numbers may come as strings ("23.40"), switches as "ON"/"OFF", times as epoch
seconds, milliseconds or microseconds, or ISO 8601 with a zone or in the layout's
`timestamp_zone`. Decoding never raises for one bad field: it rejects that field with a reason and
keeps the others. A whole message is refused only when it cannot be read at all.
"""

from __future__ import annotations

import functools
import json
import math
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from drivers.fields import FieldValue, ReadingFieldName
from drivers.json_path import Step, lookup, parse_path
from drivers.zones import ZoneName

#: why a whole message was refused (counted per reason and device)
MessageProblem = Literal["too_large", "not_json", "not_object", "not_text", "unknown_device"]


class PayloadError(ValueError):
    """A message that cannot be decoded at all; `reason` is one of MessageProblem."""

    def __init__(self, reason: MessageProblem, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class JsonField(BaseModel):
    """One reading field taken from the JSON document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: ReadingFieldName
    path: str = Field(
        default="", description="path into the document, e.g. 'radio.clients' or 'items[type=P1].value'"
    )
    type: Literal["number", "bool", "string"] = "number"
    scale: float = 1.0
    unit: str | None = Field(default=None, description="the unit the device writes, if not the field's")
    min: float | None = None
    max: float | None = None
    description: str = ""
    #: set by the profile from `unit` and the field's unit (drivers/units.py)
    _conversion: tuple[float, float] = PrivateAttr(default=(1.0, 0.0))

    @functools.cached_property
    def conversion(self) -> tuple[float, float]:
        """(gain, offset) from `unit` to the field's unit: value × scale × gain + offset (read
        once: a pydantic private attribute costs a microsecond a read in the decode loop)."""
        return self._conversion

    @field_validator("path")
    @classmethod
    def _readable(cls, path: str) -> str:
        if path:  # no path: the whole payload (format = "text"; the layout checks)
            parse_path(path)
        return path

    @functools.cached_property
    def steps(self) -> tuple[Step, ...]:
        return parse_path(self.path) if self.path else ()


class TopicTemplate(BaseModel):
    """A topic with `{device}` standing for one whole level, e.g. `city/env/{device}/telemetry`;
    `+` levels match anything (ChirpStack's `application/+/device/{device}/event/up`)."""

    model_config = ConfigDict(frozen=True)

    template: str

    @model_validator(mode="after")
    def _one_device_level(self) -> TopicTemplate:
        levels = self.template.split("/")
        if levels.count("{device}") != 1 or "{device}" in self.template.replace("{device}", "", 1):
            raise ValueError(f"topic {self.template!r} must contain {{device}} once, as a whole level")
        if "#" in self.template or any("+" in level and level != "+" for level in levels):
            raise ValueError(f"topic {self.template!r}: only whole `+` levels may be wildcards (no #)")
        return self

    @property
    def subscription(self) -> str:
        return self.template.replace("{device}", "+")

    def device_key(self, topic: str) -> str | None:
        """The device key in `topic`, or None if the topic does not match the template."""
        want = self.template.split("/")
        got = topic.split("/")
        if len(want) != len(got):
            return None
        key = None
        for w, g in zip(want, got, strict=True):
            if w == "{device}":
                key = g
            elif w != g and w != "+":
                return None
        return key

    def for_device(self, key: str, any_level: str = "any") -> str:
        """The topic a device publishes on (`any_level` fills the `+` levels)."""
        return self.template.replace("{device}", key).replace("+", any_level)


class MqttLayout(BaseModel):
    """Where and how a device model publishes over MQTT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    telemetry_topic: TopicTemplate
    availability_topic: TopicTemplate | None = None
    payload_online: str = "online"
    payload_offline: str = "offline"
    timestamp_path: str | None = Field(
        default=None, description="epoch s, ms or µs, or ISO 8601; else receipt time"
    )
    timestamp_unit: Literal["auto", "s", "ms", "us"] = Field(
        default="auto", description="of epoch times; auto: told by their size"
    )
    timestamp_zone: ZoneName | None = Field(
        default=None, description="IANA zone of ISO times written without an offset, e.g. Asia/Ho_Chi_Minh"
    )
    max_payload_bytes: int = Field(default=8192, gt=0)
    format: Literal["json", "text"] = Field(
        default="json", description='text: the payload is one value ("23.4", "ON"), for one field'
    )
    fields: tuple[JsonField, ...] = Field(min_length=1)

    @field_validator("telemetry_topic", "availability_topic", mode="before")
    @classmethod
    def _template(cls, v: object) -> object:
        return {"template": v} if isinstance(v, str) else v

    @field_validator("timestamp_path")
    @classmethod
    def _time_path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_path(path)
        return path

    @functools.cached_property
    def timestamp_steps(self) -> tuple[Step, ...] | None:
        return parse_path(self.timestamp_path) if self.timestamp_path else None

    @model_validator(mode="after")
    def _paths_fit_format(self) -> MqttLayout:
        if self.format == "text":
            if len(self.fields) != 1 or self.fields[0].path or self.timestamp_path:
                raise ValueError("a text payload is one value: one field, with no path and no timestamp_path")
        else:
            for i, spec in enumerate(self.fields):
                if not spec.path:
                    raise ValueError(f"mqtt.fields[{i}] ({spec.field}): a JSON payload needs a path")
        return self

    @functools.cached_property
    def list_document(self) -> bool:
        """Every path starts with a list selector (`[n=voltage].v`): a top-level list (SenML) is read."""
        return all(spec.steps and spec.steps[0].name == "" for spec in self.fields)

    @model_validator(mode="after")
    def _one_path_per_field(self) -> MqttLayout:
        seen: dict[str, int] = {}
        for i, spec in enumerate(self.fields):
            if spec.field in seen:
                where = f"mqtt.fields[{seen[spec.field]}] and mqtt.fields[{i}]"
                raise ValueError(f"field {spec.field!r} is mapped twice: {where}")
            seen[spec.field] = i
        return self


def decode_json(
    layout: MqttLayout, payload: bytes, received: datetime, zone: str | None = None
) -> tuple[datetime, dict[str, FieldValue], dict[str, str]]:
    """Decode one message into (timestamp, values, rejected fields with reasons); `zone`: the link's
    zone for times written without an offset, when the layout names none.

    Raises PayloadError when the message as a whole cannot be used.
    """
    if len(payload) > layout.max_payload_bytes:
        raise PayloadError("too_large", f"{len(payload)} bytes, more than {layout.max_payload_bytes}")
    if layout.format == "text":
        return _decode_text(layout.fields[0], payload, received)
    try:
        # NaN and Infinity are not JSON; Python accepts them unless told otherwise
        doc = json.loads(payload, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("not_json", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) and not (isinstance(doc, list) and layout.list_document):
        raise PayloadError("not_object", f"expected a JSON object, got {type(doc).__name__}")
    values: dict[str, FieldValue] = {}
    rejected: dict[str, str] = {}
    for spec in layout.fields:
        found, raw = lookup(doc, spec.steps)
        if not found:
            rejected[spec.field] = f"{spec.path}: missing"
            continue
        try:
            values[spec.field] = _convert(spec, raw)
        except ValueError as exc:
            rejected[spec.field] = f"{spec.path}: {exc}"
    ts = received
    if layout.timestamp_steps:
        found, raw = lookup(doc, layout.timestamp_steps)
        if found:
            try:
                ts = _timestamp(raw, layout.timestamp_unit, layout.timestamp_zone or zone)
            except ValueError as exc:
                rejected["timestamp"] = f"{layout.timestamp_path}: {exc}; receipt time used"
    return ts, values, rejected


def _decode_text(
    spec: JsonField, payload: bytes, received: datetime
) -> tuple[datetime, dict[str, FieldValue], dict[str, str]]:
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("not_text", "not UTF-8 text") from None
    try:
        return received, {spec.field: _convert(spec, text)}, {}
    except ValueError as exc:
        return received, {}, {spec.field: f"payload: {exc}"}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


_TRUE = frozenset({"on", "true", "1", "yes", "open"})
_FALSE = frozenset({"off", "false", "0", "no", "closed"})


def _convert(spec: JsonField, raw: Any) -> FieldValue:
    if spec.type == "bool":
        return _switch(raw)
    if spec.type == "string":
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {type(raw).__name__}")
        return raw[:200]
    value = _number(raw)
    value = value * spec.scale if spec.scale != 1 else value
    gain, offset = spec.conversion
    if gain != 1 or offset:
        value = value * gain + offset
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise ValueError(f"value {value:g} outside {spec.min}..{spec.max}")
    return round(value, 6) if isinstance(value, float) else value


def _number(raw: Any) -> int | float:
    """A JSON number, or a string holding one ("23.40"; "n/a" is refused)."""
    number: int | float
    if isinstance(raw, str):
        text = raw.strip()
        try:
            number = int(text) if text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise ValueError(f"not a number: {raw[:40]!r}") from None
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"expected a number, got {type(raw).__name__} {str(raw)[:40]!r}")
    else:
        number = raw
    if not math.isfinite(number):
        raise ValueError(f"{number} is not finite")
    return number


def _switch(raw: Any) -> bool:
    """true/false, or the words devices use: "ON"/"OFF" (Tasmota, Home Assistant), 1/0."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError(f"expected true/false or ON/OFF, got {type(raw).__name__} {str(raw)[:40]!r}")


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}


def _timestamp(raw: Any, unit: str = "auto", zone: str | None = None) -> datetime:
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(raw, str) and raw.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raw = float(raw)
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError("not finite")
        if unit == "auto":  # seconds until the year 5138; then milliseconds, then microseconds
            unit = "s" if abs(raw) < 1e11 else "ms" if abs(raw) < 1e14 else "us"
        try:
            return datetime.fromtimestamp(raw / _PER_SECOND[unit], UTC)
        except (OverflowError, OSError, ValueError) as exc:  # found by tests/drivers/test_fuzz.py
            raise ValueError(f"epoch {unit} {raw:g} out of range") from exc
    if isinstance(raw, str):
        ts = datetime.fromisoformat(raw.strip())
        if ts.tzinfo is None:
            if zone is None:
                raise ValueError("ISO time without a zone (set timestamp_zone in the profile or link)")
            ts = ts.replace(tzinfo=ZoneInfo(zone))
        return ts.astimezone(UTC)
    raise ValueError(f"unreadable time {raw!r}")
