"""GATT layouts for BLE sensors (Environmental Sensing Service) and their pure decoder.

Standard characteristics (Bluetooth SIG assigned numbers): temperature 0x2A6E (sint16, 0.01 °C),
humidity 0x2A6F (uint16, 0.01 %), pressure 0x2A6D (uint32, 0.1 Pa), battery level 0x2A19 (uint8, %).
Values are little-endian, as GATT requires.
"""

from __future__ import annotations

import struct
from typing import Literal

from bleak.uuids import normalize_uuid_str
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.fields import FieldValue, ReadingFieldName

_FORMATS = {"uint8": "<B", "sint8": "<b", "uint16": "<H", "sint16": "<h", "uint32": "<I", "sint32": "<i"}


class GattCharacteristic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uuid: str
    field: ReadingFieldName
    format: Literal["uint8", "sint8", "uint16", "sint16", "uint32", "sint32"]
    scale: float = 1.0
    min: float | None = None
    max: float | None = None
    description: str = ""

    @field_validator("uuid")
    @classmethod
    def _normalize(cls, v: str) -> str:
        return normalize_uuid_str(v)

    def decode(self, data: bytes) -> FieldValue:
        fmt = _FORMATS[self.format]
        if len(data) != struct.calcsize(fmt):
            raise ValueError(f"{len(data)} bytes, expected {struct.calcsize(fmt)}")
        (raw,) = struct.unpack(fmt, data)
        value = float(raw) * self.scale
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ValueError(f"value {value:g} outside {self.min}..{self.max}")
        return round(value, 6)

    def encode(self, value: float) -> bytes:
        """Physical value → characteristic bytes (used by the simulated radio)."""
        return struct.pack(_FORMATS[self.format], round(value / self.scale))


class AdvertisedField(BaseModel):
    """A value at a byte offset of the advertisement's service data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: ReadingFieldName
    offset: int = Field(ge=0, le=250)
    format: Literal["uint8", "sint8", "uint16", "sint16", "uint32", "sint32"]
    scale: float = 1.0
    min: float | None = None
    max: float | None = None


class AdvertisementLayout(BaseModel):
    """Readings broadcast in advertisements (service data), read without connecting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_data_uuid: str = "181a"
    fields: tuple[AdvertisedField, ...] = Field(min_length=1)

    @field_validator("service_data_uuid")
    @classmethod
    def _normalize(cls, v: str) -> str:
        return normalize_uuid_str(v)

    def decode(self, data: bytes) -> tuple[dict[str, FieldValue], dict[str, str]]:
        values: dict[str, FieldValue] = {}
        rejected: dict[str, str] = {}
        for spec in self.fields:
            fmt = _FORMATS[spec.format]
            end = spec.offset + struct.calcsize(fmt)
            if len(data) < end:
                rejected[spec.field] = f"service data of {len(data)} bytes ends before byte {end}"
                continue
            (raw,) = struct.unpack(fmt, data[spec.offset : end])
            value = float(raw) * spec.scale
            if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
                rejected[spec.field] = f"value {value:g} outside {spec.min}..{spec.max}"
                continue
            values[spec.field] = round(value, 6)
        return values, rejected

    def encode(self, values: dict[str, float], size: int = 15) -> bytes:
        """Physical values → service data bytes (used by the simulated radio)."""
        data = bytearray(size)
        for spec in self.fields:
            fmt = _FORMATS[spec.format]
            data[spec.offset : spec.offset + struct.calcsize(fmt)] = struct.pack(
                fmt, round(values[spec.field] / spec.scale)
            )
        return bytes(data)


class BleLayout(BaseModel):
    """How a BLE sensor model is read: GATT characteristics (connect) or advertisements (scan)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(default="181a", description="GATT service; 0x181A = Environmental Sensing")
    characteristics: tuple[GattCharacteristic, ...] = ()
    advertisement: AdvertisementLayout | None = None

    @field_validator("service")
    @classmethod
    def _normalize(cls, v: str) -> str:
        return normalize_uuid_str(v)

    @model_validator(mode="after")
    def _something_to_read(self) -> BleLayout:
        if not self.characteristics and self.advertisement is None:
            raise ValueError("a BLE layout needs [[ble.characteristics]] or [ble.advertisement]")
        return self
