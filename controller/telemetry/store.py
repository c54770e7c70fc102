"""The telemetry store's interface: write batches of readings, query a device's fields over a time
range, read energy counters by window. Implementations: controller/telemetry/sqlite.py (the
zero-set-up default) and controller/telemetry/influx.py."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from drivers.base import Reading
from drivers.fields import FIELD_NAME, READING_FIELDS, FieldValue

Aggregate = Literal["mean", "min", "max"]
#: fields that are not numbers cannot be aggregated; they are returned only for raw queries.
NON_NUMERIC = frozenset({"firmware_version"})


@dataclass(frozen=True, slots=True)
class TelemetryPoint:
    ts: datetime
    values: dict[str, FieldValue | None]


class TelemetryStore(abc.ABC):
    """Where readings go, and where history is read from."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def write(self, readings: Sequence[Reading]) -> None:
        """Store a batch atomically: all of it or, on error, none of it (the caller retries)."""

    @abc.abstractmethod
    async def query(
        self,
        device_id: str,
        start: datetime,
        end: datetime,
        *,
        fields: Sequence[str] | None = None,
        every_s: float | None = None,
        aggregate: Aggregate = "mean",
        limit: int = 10_000,
    ) -> list[TelemetryPoint]:
        """Points in [start, end), oldest first; with `every_s`, one aggregated point per window."""

    async def energy(
        self,
        device_ids: Sequence[str],
        start: datetime,
        end: datetime,
        every_s: float,
        offset_s: float = 0,
        counter: str = "energy_wh",
    ) -> dict[str, dict[datetime, float]]:
        """Wh used per device per window (the spread of its `energy_wh` counter in the window; of
        another counter such as `burning_hours_h` if named — a field name, else nothing).

        Windows start at `offset_s` past a multiple of `every_s` since the epoch (local midnight)."""
        if not device_ids or not FIELD_NAME.match(counter):
            return {}
        return await self._spread(device_ids, start, end, every_s, offset_s, counter)

    @abc.abstractmethod
    async def _spread(
        self, ids: Sequence[str], start: datetime, end: datetime, every_s: float, offset: float, counter: str
    ) -> dict[str, dict[datetime, float]]:
        """`energy` for a checked counter name and at least one device: the store's own query."""

    @abc.abstractmethod
    async def reported(
        self, device_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, tuple[datetime, datetime]]:
        """Each device's first and last `energy_wh` reading in [start, end): the span its energy
        figure covers (devices without one are left out)."""

    def describe_devices(self, tags: Mapping[str, Mapping[str, str]]) -> None:  # noqa: B027 - optional hook
        """What the store may keep beside each device's points (InfluxDB: tags); before `open`."""

    def figures(self) -> TelemetryFigures | None:
        """The store's own counts for /metrics (a store without a buffer has none)."""
        return None


@dataclass(frozen=True)
class TelemetryFigures:
    """What a store with a server behind it counts: points written, refused, dropped, waiting."""

    written_points: int = 0
    rejected_points: int = 0
    dropped_points: int = 0
    buffered_points: int = 0
    buffer_bytes: int = 0


def known_fields(fields: Sequence[str] | None) -> list[str]:
    """The fields asked for (the well-known ones by default); ValueError naming any that is not a
    field name (well-known or declared by a profile: a name that is safe inside any query)."""
    wanted = list(fields) if fields else list(READING_FIELDS)
    unknown = [f for f in wanted if not FIELD_NAME.match(f)]
    if unknown:
        raise ValueError(f"not field names: {unknown}")
    return wanted
