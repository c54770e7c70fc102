"""The InfluxQL the InfluxDB store asks: text built from checked names only, values quoted.

Field names come from the known vocabulary (`known_fields`), device ids are quoted as string literals
or escaped inside a regular expression, times are integers in milliseconds: nothing a client sends
reaches the query text unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from controller.telemetry.store import Aggregate


def select_points(
    measurement: str,
    device_id: str,
    start: datetime,
    end: datetime,
    names: Sequence[str],
    *,
    every_s: float | None,
    aggregate: Aggregate,
    limit: int,
) -> str:
    """One device's `names` over [start, end): raw rows, or one `aggregate` per `every_s` window."""
    where = f"\"device\" = '{_literal(device_id)}' AND {_between(start, end)}"
    if every_s is None:
        cols = ", ".join(f'"{f}"' for f in names)
        return f'SELECT {cols} FROM "{measurement}" WHERE {where} ORDER BY time ASC LIMIT {int(limit)}'
    cols = ", ".join(f'{aggregate}("{f}") AS "{f}"' for f in names)
    return (
        f'SELECT {cols} FROM "{measurement}" WHERE {where} '
        f"GROUP BY time({max(1, int(every_s))}s) fill(none) LIMIT {int(limit)}"
    )


def select_energy(
    measurement: str,
    device_ids: Sequence[str],
    start: datetime,
    end: datetime,
    every_s: float,
    offset_s: float,
    counter: str = "energy_wh",
) -> str:
    """Energy used per device per window: the spread of its `energy_wh` meter (or another counter,
    a field name), grouped by device."""
    names = _device_regex(device_ids)
    return (
        f'SELECT spread("{counter}") FROM "{measurement}" WHERE "device" =~ /^({names})$/ '
        f"AND {_between(start, end)} "
        f'GROUP BY time({int(every_s)}s, {int(offset_s) % int(every_s)}s), "device" fill(none)'
    )


def select_reported(
    measurement: str, device_ids: Sequence[str], start: datetime, end: datetime, which: str
) -> str:
    """The time of each device's first (or last) energy reading in [start, end)."""
    names = _device_regex(device_ids)
    return (
        f'SELECT {which}("energy_wh") FROM "{measurement}" WHERE "device" =~ /^({names})$/ '
        f'AND {_between(start, end)} GROUP BY "device"'
    )


Series = list[tuple[dict[str, str], list[list[Any]]]]  # (tags, rows with the time in ms first)


def energy_by_device(series: Series, wanted: set[str]) -> dict[str, dict[datetime, float]]:
    """Wh per device and window from `select_energy`'s answer."""
    out: dict[str, dict[datetime, float]] = {}
    for tags, rows in series:
        device = tags.get("device", "")
        for ts, wh in rows:
            if device in wanted and wh is not None:
                out.setdefault(device, {})[datetime.fromtimestamp(ts / 1000, UTC)] = float(wh)
    return out


def point_times(series: Series) -> dict[str, datetime]:
    """Each device's point time from `select_reported`'s answer."""
    return {tags.get("device", ""): datetime.fromtimestamp(r[0][0] / 1000, UTC) for tags, r in series if r}


def _device_regex(device_ids: Sequence[str]) -> str:
    return "|".join(re.escape(d) for d in sorted(set(device_ids))).replace("/", "\\/")


def _between(start: datetime, end: datetime) -> str:
    return f"time >= {int(start.timestamp() * 1000)}ms AND time < {int(end.timestamp() * 1000)}ms"


def _literal(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
