"""Groups are paths: `hanoi/hoan-kiem/trang-tien` is in `hanoi/hoan-kiem` and in `hanoi`.

The one rule every filter, command, schedule, alert threshold and report applies.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import InstrumentedAttribute


def in_group(path: str, group: str) -> bool:
    """Whether a device at group path `path` belongs to `group` (its own group, or one above it):
    `hanoi/hoan-kiem` holds `hanoi/hoan-kiem/trang-tien`, not `hanoi/hoan-kiem-2`."""
    group = group.rstrip("/")
    return bool(group) and (path == group or path.startswith(group + "/"))


def in_group_sql(path: ColumnElement[str] | InstrumentedAttribute[str], group: str) -> ColumnElement[bool]:
    """The same rule as a SQL condition on a group-path column. `%` and `_` in a group are
    characters, not wildcards (a filter of `%` once matched every alert)."""
    group = group.rstrip("/")
    return or_(path == group, path.startswith(group + "/", autoescape=True))
