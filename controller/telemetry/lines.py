"""Readings as InfluxDB line protocol: one point per reading, tags for what a dashboard groups by.

`<measurement>,device=…,site=…,group=…,profile=…,kind=… field=value,… <µs>`. Numbers are always
written as floats (an integer level and a fractional power stay one type per field across devices,
so no field type conflicts), booleans as booleans, strings quoted. Timestamps are microseconds:
InfluxDB keeps one point per series and timestamp, and a device's backlog (after a broker restart,
say) can arrive within one millisecond.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence

from drivers.base import Reading


def escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class SeriesKeys(dict[str, str]):
    """device id → `<measurement>,<tags>` prefix, built at the device's first point and kept (each
    distinct tag text escaped once: sites, groups and profiles repeat across 50,000 devices).
    A device without tags is tagged with its id alone."""

    def __init__(self, measurement: str, tags: Mapping[str, Mapping[str, str]]) -> None:
        super().__init__()
        self.tags = tags
        self._escaped = functools.cache(escape_tag)
        self._measurement = self._escaped(measurement)

    def __missing__(self, device: str) -> str:
        escaped = self._escaped
        tags = self.tags.get(device) or {"device": device}
        key = self._measurement + "".join(f",{escaped(k)}={escaped(v)}" for k, v in sorted(tags.items()) if v)
        self[device] = key
        return key


def encode(readings: Sequence[Reading], keys: SeriesKeys) -> tuple[bytes, int]:
    """(line protocol, number of points); readings with no usable field are left out."""
    lines = []
    for r in readings:
        fields = []
        for name, value in r.values.items():
            if isinstance(value, bool):
                fields.append(f"{name}={'true' if value else 'false'}")
            elif isinstance(value, int | float):
                if math.isfinite(value):
                    fields.append(f"{name}={float(value)!r}")
            elif isinstance(value, str):
                fields.append(f'{name}="{escape_string(value)}"')
        if r.raw_status is not None:
            fields.append(f"status_bits={float(r.raw_status)!r}")
        if not fields:
            continue
        lines.append(f"{keys[r.device_id]} {','.join(fields)} {_microseconds(r.ts)}")
    if not lines:
        return b"", 0
    return ("\n".join(lines) + "\n").encode(), len(lines)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US = dt.timedelta(microseconds=1)


def _microseconds(ts: dt.datetime) -> int:
    """Exact integer arithmetic (a float of microseconds since 1970 can be off by one);
    readings' timestamps are timezone-aware."""
    return (ts - _EPOCH) // _ONE_US
