"""Query parameters shared by routes: durations such as `5m` and timestamps without a zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from api.errors import ApiError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(every: str) -> float:
    """`30s`, `5m`, `1h`, `1d` → seconds; a 400 naming the value otherwise."""
    m = _DURATION.match(every.strip())
    if not m or float(m.group(1)) <= 0:
        raise ApiError(400, "invalid_every", f"`every` must look like 30s, 5m, 1h or 1d, got {every!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def utc(ts: datetime) -> datetime:
    """A timestamp without a zone is UTC (SQLite hands back naive datetimes; everything is stored in UTC)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
