"""JSON payload layouts for message-based devices (MQTT), and their pure decoder.

A layout says which topic a device publishes on (a template with `{device}` as one whole topic
level), where each reading field sits in the JSON document (a dotted path), its scaling and its
physical range. Decoding never raises for one bad field: it rejects that field with a reason and
keeps the others. A whole message is refused only when it cannot be read at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.fields import FieldValue, ReadingFieldName

#: why a whole message was refused (counted per reason and device)
MessageProblem = Literal["too_large", "not_json", "not_object", "unknown_device"]


class PayloadError(ValueError):
    """A message that cannot be decoded at all; `reason` is one of MessageProblem."""

    def __init__(self, reason: MessageProblem, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class JsonField(BaseModel):
    """One reading field taken from the JSON document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: ReadingFieldName
    path: str = Field(description="dotted path into the document, e.g. 'radio.clients'")
    type: Literal["number", "bool", "string"] = "number"
    scale: float = 1.0
    min: float | None = None
    max: float | None = None
    description: str = ""


class TopicTemplate(BaseModel):
    """A topic with `{device}` standing for one whole level, e.g. `city/env/{device}/telemetry`."""

    model_config = ConfigDict(frozen=True)

    template: str

    @model_validator(mode="after")
    def _one_device_level(self) -> TopicTemplate:
        levels = self.template.split("/")
        if levels.count("{device}") != 1 or "{device}" in self.template.replace("{device}", "", 1):
            raise ValueError(f"topic {self.template!r} must contain {{device}} once, as a whole level")
        if any(c in self.template for c in "+#"):
            raise ValueError(f"topic {self.template!r} must not contain MQTT wildcards")
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
            elif w != g:
                return None
        return key

    def for_device(self, key: str) -> str:
        return self.template.replace("{device}", key)


class MqttLayout(BaseModel):
    """Where and how a device model publishes over MQTT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    telemetry_topic: TopicTemplate
    availability_topic: TopicTemplate | None = None
    payload_online: str = "online"
    payload_offline: str = "offline"
    timestamp_path: str | None = Field(
        default=None, description="epoch seconds or ISO 8601; else receipt time"
    )
    max_payload_bytes: int = Field(default=8192, gt=0)
    fields: tuple[JsonField, ...] = Field(min_length=1)

    @field_validator("telemetry_topic", "availability_topic", mode="before")
    @classmethod
    def _template(cls, v: object) -> object:
        return {"template": v} if isinstance(v, str) else v


def decode_json(
    layout: MqttLayout, payload: bytes, received: datetime
) -> tuple[datetime, dict[str, FieldValue], dict[str, str]]:
    """Decode one message into (timestamp, values, rejected fields with reasons).

    Raises PayloadError when the message as a whole cannot be used.
    """
    if len(payload) > layout.max_payload_bytes:
        raise PayloadError("too_large", f"{len(payload)} bytes, more than {layout.max_payload_bytes}")
    try:
        # NaN and Infinity are not JSON; Python accepts them unless told otherwise
        doc = json.loads(payload, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("not_json", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("not_object", f"expected a JSON object, got {type(doc).__name__}")
    values: dict[str, FieldValue] = {}
    rejected: dict[str, str] = {}
    for spec in layout.fields:
        found, raw = _lookup(doc, spec.path)
        if not found:
            rejected[spec.field] = f"{spec.path}: missing"
            continue
        try:
            values[spec.field] = _convert(spec, raw)
        except ValueError as exc:
            rejected[spec.field] = f"{spec.path}: {exc}"
    ts = received
    if layout.timestamp_path:
        found, raw = _lookup(doc, layout.timestamp_path)
        if found:
            try:
                ts = _timestamp(raw)
            except ValueError as exc:
                rejected["timestamp"] = f"{layout.timestamp_path}: {exc}; receipt time used"
    return ts, values, rejected


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _lookup(doc: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = doc
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _convert(spec: JsonField, raw: Any) -> FieldValue:
    if spec.type == "bool":
        if not isinstance(raw, bool):
            raise ValueError(f"expected true/false, got {type(raw).__name__} {raw!r}")
        return raw
    if spec.type == "string":
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {type(raw).__name__}")
        return raw[:200]
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"expected a number, got {type(raw).__name__} {str(raw)[:40]!r}")
    if not math.isfinite(raw):
        raise ValueError(f"{raw} is not finite")
    value = raw * spec.scale if spec.scale != 1 else raw
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise ValueError(f"value {value:g} outside {spec.min}..{spec.max}")
    return round(value, 6) if isinstance(value, float) else value


def _timestamp(raw: Any) -> datetime:
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError("not finite")
        try:
            return datetime.fromtimestamp(raw, UTC)
        except (OverflowError, OSError) as exc:  # found by tests/drivers/test_fuzz.py
            raise ValueError(f"epoch seconds {raw:g} out of range") from exc
    if isinstance(raw, str):
        ts = datetime.fromisoformat(raw)
        if ts.tzinfo is None:
            raise ValueError("ISO time without a zone")
        return ts.astimezone(UTC)
    raise ValueError(f"unreadable time {raw!r}")
