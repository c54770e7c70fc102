"""Groups are paths: `hanoi/hoan-kiem/trang-tien` is in `hanoi/hoan-kiem` and in `hanoi`.

The one rule every filter, command, schedule, alert threshold and report applies.
"""

from __future__ import annotations


def in_group(path: str, group: str) -> bool:
    """Whether a device at group path `path` belongs to `group` (its own group, or one above it):
    `hanoi/hoan-kiem` holds `hanoi/hoan-kiem/trang-tien`, not `hanoi/hoan-kiem-2`."""
    group = group.rstrip("/")
    return bool(group) and (path == group or path.startswith(group + "/"))
