"""Query and path parameters shared by routes, with the bounds that keep every request's price known.

Numbers and dates at the edges used to fail deep inside (an offset of 2^63 overflowed SQLite's
integer; `every=` with 400 nines became infinity; a date in year 1 or 9999 overflowed when a day
was added): each is refused here with a 400 or 422 that names the parameter. docs/api.md lists the
limits.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Path, Query

from api.errors import ApiError

#: the largest row id or offset: PostgreSQL's INTEGER (SQLite's is wider)
MAX_ROW_ID = 2**31 - 1
MAX_PAGE = 1000
#: instants the API accepts; far enough for any history or plan, near enough that arithmetic on
#: them (a day's margin, a time zone) can never leave Python's datetime range
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MIN_EVERY_S = 1.0
MAX_EVERY_S = 366 * 86400.0

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"items per page, 1–{MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="items to skip")]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a positive integer id")]

_DURATION = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(every: str) -> float:
    """`30s`, `5m`, `1h`, `1d` → seconds, from 1 s to 366 d; a 400 naming the value otherwise."""
    m = _DURATION.match(every.strip())
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)] if m else math.nan
    if not MIN_EVERY_S <= seconds <= MAX_EVERY_S:  # NaN fails this too
        raise ApiError(
            400,
            "invalid_every",
            f"`every` must look like 30s, 5m, 1h or 1d, from 1s to 366d; got {every[:40]!r}",
        )
    return seconds


def utc(ts: datetime) -> datetime:
    """A timestamp without a zone is UTC (SQLite hands back naive datetimes; everything is stored in UTC)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def instant(ts: datetime, name: str) -> datetime:
    """A query's instant, aware (no zone means UTC) and between 1970 and 2200; else 400 naming it."""
    aware = utc(ts)
    if not EARLIEST <= aware <= LATEST:
        raise ApiError(
            400,
            "invalid_range",
            f"`{name}` ({ts.isoformat()}) must be between {EARLIEST.date()} and {LATEST.date()}",
        )
    return aware


def time_range(
    start: datetime | None,
    end: datetime | None,
    *,
    default_span: timedelta,
    max_span: timedelta,
    default_end: datetime | None = None,
) -> tuple[datetime, datetime]:
    """[from, to) of a request: defaults (`to` now, `from` a default span earlier or, given only
    `from`, a default span later), both within bounds, `from` before `to`, at most `max_span` apart."""
    if end is not None:
        to = instant(end, "to")
        since = instant(start, "from") if start is not None else to - default_span
    elif start is not None:
        since = instant(start, "from")
        to = min(since + default_span, LATEST) if default_end is None else default_end
    else:
        to = default_end or datetime.now(UTC)
        since = to - default_span
    if since >= to:
        raise ApiError(
            400, "invalid_range", f"`from` ({since.isoformat()}) must be before `to` ({to.isoformat()})"
        )
    if to - since > max_span:
        raise ApiError(
            400,
            "invalid_range",
            f"`from` to `to` spans {_days(to - since)}; at most {_days(max_span)} per request",
        )
    return since, to


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    return f"{days:g} days" if days >= 1 else f"{span.total_seconds() / 3600:g} hours"
