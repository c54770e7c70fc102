"""The embedded telemetry store: SQLite through aiosqlite, the zero-set-up default.

Values are kept as one JSON document per reading, so new device classes add fields without a
schema migration; aggregation runs in SQL. Decoding long answers runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.db import create_engine, json_text, json_value
from controller.telemetry.store import NON_NUMERIC, Aggregate, TelemetryPoint, TelemetryStore, known_fields
from drivers.base import Reading
from drivers.fields import FieldValue

_metadata = MetaData()
telemetry_table = Table(
    "telemetry",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("ts", Float, nullable=False),  # seconds since the epoch, UTC
    Column("doc", String, nullable=False),  # JSON object of field → value
    Index("ix_telemetry_device_ts", "device_id", "ts"),
)


_INSERT = "INSERT INTO telemetry (device_id, ts, doc) VALUES (?, ?, ?)"


class SqliteTelemetryStore(TelemetryStore):
    """Embedded telemetry store (SQLite through aiosqlite; any SQLAlchemy URL works)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None

    async def open(self) -> None:
        self._engine = create_engine(self.url)
        async with self._engine.begin() as conn:
            await conn.run_sync(_metadata.create_all)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("telemetry store is not open")
        return self._engine

    async def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        rows = [(r.device_id, r.ts.timestamp(), _encode(r)) for r in readings]
        async with self.engine.begin() as conn:
            # straight to the driver's executemany: SQLAlchemy's per-row statement handling
            # costs more than the insert itself at thousands of readings a second
            await conn.exec_driver_sql(_INSERT, rows)

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
        wanted = known_fields(fields)  # also what keeps field names safe to splice into a JSON path
        params = {"d": device_id, "a": start.timestamp(), "b": end.timestamp(), "n": limit}
        async with self.engine.connect() as conn:
            if every_s is None:
                # Straight from aiosqlite: its thread builds the rows, so the event loop does not
                # (50,000 SQLAlchemy rows cost it ~50 ms); decoding them runs in a thread too.
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                async with raw.execute(
                    "SELECT ts, doc FROM telemetry WHERE device_id = ? AND ts >= ? AND ts < ? "
                    "ORDER BY ts LIMIT ?",
                    (device_id, params["a"], params["b"], limit),
                ) as cursor:
                    rows = await cursor.fetchall()
                return await asyncio.to_thread(_decode_raw, rows, wanted)
            numeric = [f for f in wanted if f not in NON_NUMERIC]
            fn = {"mean": "AVG", "min": "MIN", "max": "MAX"}[aggregate]
            cols = ", ".join(f"{fn}(json_extract(doc, '$.{f}')) AS \"{f}\"" for f in numeric)
            result = await conn.execute(
                text(
                    f"SELECT CAST(ts / :w AS INTEGER) * :w AS bucket{', ' + cols if cols else ''} "
                    "FROM telemetry WHERE device_id = :d AND ts >= :a AND ts < :b "
                    "GROUP BY bucket ORDER BY bucket LIMIT :n"
                ),
                {**params, "w": every_s},
            )
            return await asyncio.to_thread(_decode_buckets, result.all(), numeric)

    async def _spread(
        self, ids: Sequence[str], start: datetime, end: datetime, every_s: float, offset: float, counter: str
    ) -> dict[str, dict[datetime, float]]:
        out: dict[str, dict[datetime, float]] = {}
        marks = ", ".join(f":d{i}" for i in range(len(ids)))
        params: dict[str, object] = {f"d{i}": d for i, d in enumerate(ids)}
        params |= {"a": start.timestamp(), "b": end.timestamp(), "w": every_s, "o": offset}
        counter = f"json_extract(doc, '$.{counter}')"  # a field name: letters, digits, _
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT device_id, CAST((ts - :o) / :w AS INTEGER) * :w + :o AS bucket, "
                    f"MAX({counter}) - MIN({counter}) FROM telemetry "
                    f"WHERE device_id IN ({marks}) AND ts >= :a AND ts < :b AND {counter} IS NOT NULL "
                    "GROUP BY device_id, bucket"
                ),
                params,
            )
            for device_id, bucket, wh in result:
                out.setdefault(device_id, {})[_dt(bucket)] = float(wh or 0)
        return out

    async def reported(
        self, device_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, tuple[datetime, datetime]]:
        if not device_ids:
            return {}
        marks = ", ".join(f":d{i}" for i in range(len(device_ids)))
        params: dict[str, object] = {f"d{i}": d for i, d in enumerate(device_ids)}
        params |= {"a": start.timestamp(), "b": end.timestamp()}
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT device_id, MIN(ts), MAX(ts) FROM telemetry "
                    f"WHERE device_id IN ({marks}) AND ts >= :a AND ts < :b "
                    "AND json_extract(doc, '$.energy_wh') IS NOT NULL GROUP BY device_id"
                ),
                params,
            )
            return {device_id: (_dt(first), _dt(last)) for device_id, first, last in result}


def _decode_raw(rows: Sequence[Any], wanted: Sequence[str]) -> list[TelemetryPoint]:
    points = []
    for ts, doc in rows:
        values = json_value(doc)  # the pair of json_text, which wrote it
        # Only what the reading carried: listing every known field as null made a year's page 23 MB.
        points.append(TelemetryPoint(_dt(ts), {f: values[f] for f in wanted if f in values}))
    return points


def _decode_buckets(rows: Sequence[Any], numeric: Sequence[str]) -> list[TelemetryPoint]:
    return [
        TelemetryPoint(_dt(row[0]), {f: _round(v) for f, v in zip(numeric, row[1:], strict=True)})
        for row in rows
    ]


def _encode(reading: Reading) -> str:
    doc: dict[str, object] = dict(reading.values)
    if reading.raw_status is not None:
        doc["status_bits"] = reading.raw_status
    return json_text(doc)  # orjson: a tenth of json.dumps' time, at every poll


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _round(v: object) -> FieldValue | None:
    return round(v, 6) if isinstance(v, float) else v  # type: ignore[return-value]
