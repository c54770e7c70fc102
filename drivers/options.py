"""How a link is used: timing, retries, reconnection, and for MQTT how to reach the broker.

Declared once, here: the drivers take these models, and the configuration's `[[links]]` entries
are built from them (controller/config/city.py), so every option has one name, one default and one
range. Frozen pydantic models: a link's options do not change while it runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.zones import ZoneName


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkTiming(_Options):
    """Timing of a polled link (Modbus, a serial line, a BLE radio)."""

    timeout_s: float = Field(default=1.0, gt=0, le=60, description="how long a request waits for its answer")
    retries: int = Field(default=1, ge=0, le=5, description="requests again after a timeout")
    backoff_base_s: float = Field(default=0.5, gt=0, description="first wait before reconnecting; doubles")
    backoff_cap_s: float = Field(default=30.0, gt=0, description="longest wait before reconnecting")


class ModbusOptions(LinkTiming):
    """Timing of a Modbus link; `retries` are pymodbus' per-request retries after a timeout."""

    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)


class SerialOptions(LinkTiming):
    """Timing of a serial line of legacy lamp nodes."""


class MqttBroker(_Options):
    """How to reach and use one broker."""

    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = Field(default=None, description="default: lamplighter-<link id>")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    persistent_session: bool = Field(default=True, description="the broker keeps messages while we are away")
    qos: Literal[0, 1] = 1
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    max_queued_messages: int = Field(default=10_000, ge=1, description="waiting to be decoded, at most")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_cap_s: float = Field(default=30.0, gt=0)
    timestamp_zone: ZoneName | None = Field(
        default=None,
        description="IANA zone of the times devices on this broker write without an offset (a "
        "Tasmota's local `Time`), e.g. Asia/Ho_Chi_Minh; a profile's own timestamp_zone wins",
    )
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="several controllers on one broker: every instance subscribes (client id "
        "suffixed with its [cluster] instance number) and each telemetry message goes to one of "
        "them ($share/<group>/…); availability is seen by all, the broker sending no retained "
        "messages to shared subscribers",
    )
