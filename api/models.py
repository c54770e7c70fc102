"""Response models of the HTTP API (the documented, stable shapes the IOC consumes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")
DeviceStateName = Literal["unknown", "ok", "fault", "offline"]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="items matching the filters, across all pages")
    limit: int
    offset: int


class ReadingOut(BaseModel):
    ts: datetime
    values: dict[str, float | int | bool | str]
    status: dict[str, bool] = Field(description="status flags decoded from the status register")
    raw_status: int | None = Field(description="the status register as read")
    rejected: dict[str, str] = Field(description="fields that failed to decode, with the reason")


class DeviceSummary(BaseModel):
    id: str
    site: str
    link: str
    unit_id: int | None = Field(description="Modbus unit id (Modbus devices)")
    address: str = Field(description="how the link addresses the device: unit id, or MQTT topic key")
    profile: str
    kind: str
    group: str
    latitude: float
    longitude: float
    rated_power_w: float | None = Field(description="lamps: nameplate power, W")
    poll_interval_s: float = Field(
        description="Modbus: how often it is polled; MQTT: expected reporting interval"
    )
    state: DeviceStateName
    last_seen: datetime | None


class DeviceDetail(DeviceSummary):
    last_reading: ReadingOut | None
    last_error: str | None
    consecutive_failures: int
    counters: dict[str, int] = Field(
        description="polls_ok (readings received), and failures by kind: timeout, exception, decode, "
        "unreachable, rejected (unusable messages)"
    )
    units: dict[str, str] = Field(
        description="the unit of each field its profile maps (SenML names; 'bool', 'text', '' for none)"
    )


class TelemetryPointOut(BaseModel):
    ts: datetime
    values: dict[str, float | int | bool | str | None]


class TelemetryOut(BaseModel):
    device_id: str
    start: datetime
    end: datetime
    every_s: float | None
    aggregate: str | None
    fields: list[str]
    points: list[TelemetryPointOut]


class CommandOut(BaseModel):
    id: int
    device_id: str
    action: str
    value: Any
    origin: str
    priority: int
    expires_at: datetime | None
    status: Literal["pending", "confirmed", "mismatch", "failed", "expired"]
    detail: str
    written: dict[str, Any]
    readback: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None


class HeldShardOut(BaseModel):
    shard: str = Field(description="the instance number whose links these are")
    links: list[str]
    token: int = Field(description="fencing token: counted up each time the shard changes hands")
    valid_for_s: float = Field(description="how long this instance may still command them, unless renewed")
    own: bool = Field(description="this instance's own shard (else taken over from a dead instance)")


class LeasesOut(BaseModel):
    """[cluster] leases (docs/deployment.md): which shards of links this instance serves now."""

    holder: str = Field(description="this process (host:pid:random)")
    home: str | None = Field(description="its own shard; null for a standby")
    held: list[HeldShardOut]
    database_reachable: bool
    leases_lost: int = Field(description="leases that ran out or were taken while held, since start")


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"] = Field(
        description="degraded: a link is down, this instance does not hold its own shard's lease "
        "(it cannot reach the database, or another instance serves its links), or its links are "
        "polled but not yet watched (see `watching`)"
    )
    started_at: datetime | None
    links: dict[str, bool]
    devices: dict[str, int]
    queue_depth: int
    leases: LeasesOut | None = Field(default=None, description="null: one instance, or no takeover")
    watching: bool = Field(
        default=True,
        description="false: the links this instance serves are polled, but their schedules, fault "
        "detection and firmware campaigns wait for the database (a takeover or restart could not "
        "read it; tried again every lease_s / 4)",
    )


class GroupCommandOut(BaseModel):
    group: str
    total: int
    by_status: dict[str, int] = Field(description="how many lamps ended confirmed, mismatch, failed, expired")
    results: list[CommandOut] = Field(description="one result per lamp")
