"""Telemetry in InfluxDB: batched line-protocol writes, InfluxQL reads, nothing lost while it is down.

Writes: `write_endpoint = "v2"` goes through influxdb-client's async write API to `/api/v2/write`
(InfluxDB 2.x, 3.x, 1.8+, and servers that speak it, such as VictoriaMetrics); `"v1"` posts to `/write`
(InfluxDB 1.x) with httpx. Both gzip the body. Reads: InfluxQL on `/query`, which 1.x, 2.x (v1
compatibility / DBRP) and 3.x all serve.

One sender task sends batches in order. While the server is unreachable (refused, timeout, 5xx, 429,
401/403 — credentials can be fixed without losing data), batches go to a bounded on-disk buffer
(`DiskBuffer`) and are sent, oldest first, when it answers again; a restart keeps the buffer.
Points the server refuses (400: a field type conflict, say) are counted and logged; a refused batch
is split in halves until the bad points are isolated, so the good ones around them are kept.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import re
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

import controller.telemetry.influxql as ql
from controller.config import InfluxSettings
from controller.telemetry.disk_buffer import DiskBuffer, Segment
from controller.telemetry.lines import SeriesKeys, encode
from controller.telemetry.store import (
    NON_NUMERIC,
    Aggregate,
    TelemetryFigures,
    TelemetryPoint,
    TelemetryStore,
    known_fields,
)
from drivers.backoff import Backoff
from drivers.base import Reading
from drivers.fields import READING_FIELDS

if TYPE_CHECKING:
    from controller.telemetry.influx_v2 import V2Writer

log = logging.getLogger(__name__)
#: batches kept in memory before new ones go to disk even while the server is up
MAX_PENDING = 64
_DROPPED = re.compile(r"dropped=(\d+)")
_BOOLEAN = frozenset(name for name, (kind, _) in READING_FIELDS.items() if kind == "bool")


class Unavailable(Exception):
    """The server did not take the batch, and it may later: keep the batch and retry."""


class InfluxStore(TelemetryStore):
    def __init__(self, settings: InfluxSettings) -> None:
        self.s = settings
        self.keys = SeriesKeys(settings.measurement, {})
        self.buffer = DiskBuffer(settings.buffer_dir, int(settings.buffer_max_mb * 2**20))
        self.pending: deque[tuple[bytes, int]] = deque()
        self.written_points = 0
        self.rejected_points = 0
        self.errors: dict[str, int] = {}
        self.last_error: str | None = None
        self.down = False
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._spill: asyncio.Future[None] | None = None  # pending batches on their way to disk
        self._http: httpx.AsyncClient | None = None
        self._v2: V2Writer | None = None

    def describe_devices(self, tags: Mapping[str, Mapping[str, str]]) -> None:
        """Tags of each device's points: device, site, group, profile, kind."""
        self.keys = SeriesKeys(self.s.measurement, tags)

    # -- lifecycle --------------------------------------------------------------------------------
    async def open(self) -> None:
        headers = {"Authorization": f"Token {self.s.token}"} if self.s.token else {}
        # A server over plain HTTP needs no TLS context: httpx builds one (the CA bundle loaded,
        # 25–40 ms of every start) unless told there is nothing to verify.
        tls = urlsplit(self.s.url).scheme == "https"  # (lower-cased: HTTPS:// verifies too)
        self._http = httpx.AsyncClient(
            base_url=self.s.url, timeout=self.s.timeout_s, headers=headers, verify=tls
        )
        if self.s.write_endpoint == "v2":
            from controller.telemetry.influx_v2 import V2Writer  # only v2 loads influxdb-client

            self._v2 = V2Writer(self.s, self._bucket())
        else:
            await self._create_database()
        await self.buffer.open()
        self._sender = asyncio.create_task(self._send_forever(), name="influx-sender")

    async def close(self) -> None:
        """Stop sending; whatever is not yet acknowledged goes to the disk buffer for next time."""
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None
        if self._spill is not None:  # a batch half-way to the disk must get there (not be lost)
            await asyncio.gather(self._spill, return_exceptions=True)
        while self.pending:
            lines, n = self.pending.popleft()
            await self.buffer.append(lines, n)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._v2 is not None:
            await self._v2.close()
            self._v2 = None

    # -- writing ----------------------------------------------------------------------------------
    async def write(self, readings: Sequence[Reading]) -> None:
        size = self.s.batch_size
        for i in range(0, len(readings), size):
            lines, n = encode(readings[i : i + size], self.keys)
            if not n:
                continue
            if self.down or len(self.buffer) or len(self.pending) >= MAX_PENDING:
                await self.buffer.append(lines, n)  # OSError (disk full) → ingest retries the batch
            else:
                self.pending.append((lines, n))
        self._wake.set()

    def figures(self) -> TelemetryFigures:
        return TelemetryFigures(
            written_points=self.written_points,
            rejected_points=self.rejected_points,
            dropped_points=self.buffer.dropped_points,
            buffered_points=self.backlog_points,
            buffer_bytes=self.buffer.bytes,
        )

    @property
    def backlog_points(self) -> int:
        return self.buffer.points + sum(n for _, n in self.pending)

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything written so far has reached the server (for tests and shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.pending or len(self.buffer):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _send_forever(self) -> None:
        """The sender never dies: an unexpected error is logged and sending resumes (order kept)."""
        while True:
            try:
                await self._send_loop()
            except Exception:
                log.exception("InfluxDB sender failed; resuming in 1 s")
                await asyncio.sleep(1.0)

    async def _send_loop(self) -> None:
        backoff = Backoff(base_s=self.s.backoff_base_s, cap_s=self.s.backoff_cap_s)
        while True:
            segments = self._take_segments()
            if segments:
                try:
                    lines = b"".join([await self.buffer.read(seg) for seg in segments])
                except OSError as exc:  # a batch file gone or unreadable: it cannot be sent, say so
                    lost = await self.buffer.discard(segments)
                    log.error(
                        "telemetry buffer: %d points lost, their batch file is unreadable: %s", lost, exc
                    )
                    await asyncio.sleep(backoff.next_delay())
                    continue
                n = sum(seg.points for seg in segments)
                taken = 0
            elif self.pending:
                lines, n, taken = self._take_pending()
            else:
                self.down = False
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._send(lines, n)
            except Unavailable as exc:
                if not self.down:
                    log.error(
                        "InfluxDB %s unavailable (%s): buffering on disk in %s",
                        self.s.url,
                        exc,
                        self.buffer.dir,
                    )
                self.down = True
                self.last_error = str(exc)
                # Keep order: everything after the first unsent batch goes to disk. Shielded, and
                # awaited by close(): cancelled half-way, a batch taken off `pending` but not yet in
                # the buffer was lost (a flaky test found it).
                self._spill = asyncio.ensure_future(self._spill_pending())
                await asyncio.shield(self._spill)
                await asyncio.sleep(backoff.next_delay())
                continue
            if self.down:
                log.info(
                    "InfluxDB %s answers again; %d points still buffered", self.s.url, self.backlog_points
                )
            backoff.reset()
            for seg in segments:
                await self.buffer.remove(seg)
            for _ in range(taken):
                self.pending.popleft()

    async def _spill_pending(self) -> None:
        while self.pending:
            held, count = self.pending[0]
            await self.buffer.append(held, count)
            self.pending.popleft()  # only once it is on disk

    def _take_segments(self) -> list[Segment]:
        """The oldest buffered batches, together up to `batch_size` points (at least one)."""
        out: list[Segment] = []
        points = 0
        for seg in self.buffer.segments:
            if out and points + seg.points > self.s.batch_size:
                break
            out.append(seg)
            points += seg.points
        return out

    def _take_pending(self) -> tuple[bytes, int, int]:
        """The oldest pending batches joined, up to `batch_size` points: (lines, points, batches)."""
        parts: list[bytes] = []
        points = 0
        for lines, n in self.pending:
            if parts and points + n > self.s.batch_size:
                break
            parts.append(lines)
            points += n
        return b"".join(parts), points, len(parts)

    async def _send(self, lines: bytes, n: int) -> None:
        """Deliver one batch; refused points are counted, and the rest of the batch is kept."""
        status, text = await self._post(lines)
        if 200 <= status < 300:
            self.written_points += n
            return
        if status in (400, 413, 422):
            dropped = _DROPPED.search(text)
            if "partial write" in text and dropped:
                self._reject(int(dropped.group(1)), text)
                self.written_points += n - int(dropped.group(1))
                return
            if n > 1:  # split until the bad points are alone: the good ones still go in
                parts = lines.rstrip(b"\n").split(b"\n")
                half = len(parts) // 2
                await self._send(b"\n".join(parts[:half]) + b"\n", half)
                await self._send(b"\n".join(parts[half:]) + b"\n", len(parts) - half)
                return
            self._reject(1, f"{text} — point: {lines[:300].decode(errors='replace').strip()}")
            return
        reason = {401: "auth", 403: "auth", 404: "not_found"}.get(status, "server")
        self.errors[reason] = self.errors.get(reason, 0) + 1
        hint = ""
        if status == 404 and self.s.write_endpoint == "v2":
            hint = ' (an InfluxDB 1.x before 1.8 has no /api/v2/write: set write_endpoint = "v1")'
        elif status in (401, 403):
            hint = " (check token / username / password in [telemetry.influxdb])"
        raise Unavailable(f"HTTP {status}: {text[:200]}{hint}")

    async def _post(self, lines: bytes) -> tuple[int, str]:
        try:
            if self._v2 is not None:
                return await self._v2.post(lines)
            assert self._http is not None
            body = gzip.compress(lines, compresslevel=1) if self.s.gzip else lines
            headers = {"Content-Encoding": "gzip"} if self.s.gzip else {}
            response = await self._http.post(
                "/write", params=self._v1_params(precision="u"), content=body, headers=headers
            )
            return response.status_code, response.text
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            self.errors["unreachable"] = self.errors.get("unreachable", 0) + 1
            raise Unavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        except Exception as exc:  # aiohttp's errors, under influxdb-client's v2 API
            if type(exc).__module__.startswith("aiohttp"):
                self.errors["unreachable"] = self.errors.get("unreachable", 0) + 1
                raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
            raise

    def _reject(self, points: int, message: str) -> None:
        self.rejected_points += points
        self.errors["rejected"] = self.errors.get("rejected", 0) + 1
        log.error("InfluxDB refused %d point(s): %s", points, message[:500])

    def _bucket(self) -> str:
        rp = self.s.retention_policy
        return f"{self.s.database}/{rp}" if rp else self.s.database

    def _v1_params(self, **extra: str) -> dict[str, str]:
        params = {"db": self.s.database, **extra}
        if self.s.retention_policy:
            params["rp"] = self.s.retention_policy
        if self.s.username and not self.s.token:
            params |= {"u": self.s.username, "p": self.s.password or ""}
        return params

    async def _create_database(self) -> None:
        """InfluxDB 1.x: create the database if it is missing (idempotent; fine to fail if not allowed)."""
        assert self._http is not None
        try:
            q = f'CREATE DATABASE "{self.s.database}"'
            params = {k: v for k, v in self._v1_params(q=q).items() if k != "db"}
            await self._http.post("/query", params=params)
        except httpx.HTTPError as exc:
            log.warning("InfluxDB %s: cannot create database %r now (%s)", self.s.url, self.s.database, exc)

    # -- reading ----------------------------------------------------------------------------------
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
        wanted = known_fields(fields)  # also what keeps field names safe inside the query
        names = wanted if every_s is None else [f for f in wanted if f not in NON_NUMERIC | _BOOLEAN]
        if not names:
            return []
        measurement = self.s.measurement
        q = ql.select_points(
            measurement, device_id, start, end, names, every_s=every_s, aggregate=aggregate, limit=limit
        )
        rows = await self.influxql(q)

        def points() -> list[TelemetryPoint]:
            return [
                TelemetryPoint(
                    datetime.fromtimestamp(row[0] / 1000, UTC),
                    # raw points carry only what the reading had (as the SQLite store answers)
                    {n: v for n, v in zip(names, row[1:], strict=False) if v is not None or every_s},
                )
                for row in rows
            ]

        return await asyncio.to_thread(points)  # 50,000 points are felt on the event loop

    async def _spread(
        self, ids: Sequence[str], start: datetime, end: datetime, every_s: float, offset: float, counter: str
    ) -> dict[str, dict[datetime, float]]:
        q = ql.select_energy(self.s.measurement, ids, start, end, every_s, offset, counter)
        return ql.energy_by_device(await self._series(q), set(ids))

    async def reported(
        self, device_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, tuple[datetime, datetime]]:
        if not device_ids:
            return {}
        ask = functools.partial(ql.select_reported, self.s.measurement, device_ids, start, end)
        first = ql.point_times(await self._series(ask("first")))  # one selector per query: its time
        last = ql.point_times(await self._series(ask("last")))
        return {d: (first[d], last[d]) for d in set(device_ids) & first.keys() & last.keys()}

    async def _series(self, q: str) -> list[tuple[dict[str, str], list[list[Any]]]]:
        result = await self._run(q)
        return [(series.get("tags", {}), series["values"]) for series in result.get("series", [])]

    async def influxql(self, q: str) -> list[list[Any]]:
        """Rows of an InfluxQL query (all series concatenated; time in ms first)."""
        result = await self._run(q)
        return [row for series in result.get("series", []) for row in series["values"]]

    async def _run(self, q: str) -> dict[str, Any]:
        assert self._http is not None
        params = self._v1_params(q=q, epoch="ms")
        response = await self._http.get("/query", params=params)
        if response.status_code != 200:
            raise RuntimeError(f"InfluxDB /query answered HTTP {response.status_code}: {response.text[:200]}")
        # A long answer takes a while to parse: not on the event loop.
        result: dict[str, Any] = (await asyncio.to_thread(response.json))["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxDB /query: {result['error']}")
        return result
