"""A bounded, ordered, on-disk FIFO of write batches: what the InfluxDB store keeps while it is down.

One file per batch, named `<sequence>-<points>.lp.gz` (line protocol, gzip): written to a temporary
name and renamed, so a crash never leaves half a batch; read back oldest first; removed once the
server has it. Past `max_bytes` the oldest batches are dropped, and their points counted. The files
survive a restart of the controller. All file work runs in a thread: the event loop never waits on
the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class TelemetryBufferError(OSError):
    """The buffer could not keep a batch (a full or read-only disk): the caller must keep it."""


@dataclass(frozen=True, slots=True)
class Segment:
    seq: int
    points: int
    size: int
    path: Path


class DiskBuffer:
    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segments: list[Segment] = []
        self.bytes = 0
        self.dropped_points = 0
        self.peak_bytes = 0
        self._next = 1

    async def open(self) -> None:
        self.segments = await asyncio.to_thread(self._scan)
        self.bytes = sum(s.size for s in self.segments)
        self.peak_bytes = self.bytes
        self._next = self.segments[-1].seq + 1 if self.segments else 1
        if self.segments:
            log.info(
                "telemetry buffer %s: %d batches, %d points waiting from before the restart",
                self.dir,
                len(self.segments),
                self.points,
            )

    @property
    def points(self) -> int:
        return sum(s.points for s in self.segments)

    def __len__(self) -> int:
        return len(self.segments)

    async def append(self, lines: bytes, points: int) -> None:
        """Keep a batch; OSError (a full disk, say) goes to the caller, which keeps the batch itself."""
        seq = self._next
        try:
            segment = await asyncio.to_thread(self._write, seq, points, lines)
        except OSError as exc:
            raise TelemetryBufferError(
                f"cannot keep {points} points in the telemetry buffer {self.dir}: {exc.strerror or exc}"
            ) from exc
        self._next += 1
        self.segments.append(segment)
        self.bytes += segment.size
        while self.bytes > self.max_bytes and len(self.segments) > 1:
            oldest = self.segments.pop(0)
            self.bytes -= oldest.size
            self.dropped_points += oldest.points
            await asyncio.to_thread(_unlink, oldest.path)
            log.error(
                "telemetry buffer over %.0f MB: dropped the oldest %d points (%d dropped so far)",
                self.max_bytes / 2**20,
                oldest.points,
                self.dropped_points,
            )
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def oldest(self) -> Segment | None:
        return self.segments[0] if self.segments else None

    async def read(self, segment: Segment) -> bytes:
        return await asyncio.to_thread(lambda: gzip.decompress(segment.path.read_bytes()))

    async def remove(self, segment: Segment) -> None:
        if self.segments and self.segments[0] == segment:
            self.segments.pop(0)
            self.bytes -= segment.size
        await asyncio.to_thread(_unlink, segment.path)

    async def discard(self, segments: list[Segment]) -> int:
        """Give up on batches that cannot be read back; their points count as dropped."""
        lost = 0
        for seg in segments:
            if seg in self.segments:
                self.segments.remove(seg)
                self.bytes -= seg.size
                lost += seg.points
                await asyncio.to_thread(_unlink, seg.path)
        self.dropped_points += lost
        return lost

    def _scan(self) -> list[Segment]:
        self.dir.mkdir(parents=True, exist_ok=True)
        found = []
        for path in self.dir.glob("*.lp.gz"):
            try:
                seq, points = (int(x) for x in path.name.removesuffix(".lp.gz").split("-"))
            except ValueError:
                log.warning("telemetry buffer: ignoring %s (not a batch file)", path)
                continue
            found.append(Segment(seq, points, path.stat().st_size, path))
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)  # a batch whose write was cut short: its data is still queued
        return sorted(found, key=lambda s: s.seq)

    def _write(self, seq: int, points: int, lines: bytes) -> Segment:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{seq:012d}-{points}.lp.gz"
        tmp = path.with_suffix(".tmp")
        data = gzip.compress(lines, compresslevel=1)
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return Segment(seq, points, len(data), path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):  # already gone, or its directory is: nothing left to remove
        path.unlink()
