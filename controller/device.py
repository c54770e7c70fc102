"""A registry device as the running controller holds it: plain values, read once at start."""

from __future__ import annotations

from typing import NamedTuple

from controller.vocabulary import DeviceKind


class Device(NamedTuple):
    """One device of the registry (`controller.registry.DeviceRow`'s columns), as plain values.

    Not the ORM row: at 52,500 devices a start read the rows' attributes ~1.2 million times (the
    fleet, shards, schedules, alerts, map index), ~350 ns each through SQLAlchemy's instrumented
    attributes against ~40 ns here, and loading the 52,500 rows as ORM objects took 0.46–0.62 s
    against 0.19–0.31 s as these (SQLite; cProfile of `Controller.start`). Rows are replaced, never
    changed in place."""

    id: str
    site_id: str
    link_id: str
    unit_id: int | None  # Modbus and serial devices
    #: how the link addresses the device: the unit id for Modbus, the topic key for MQTT
    address: str
    profile: str
    kind: DeviceKind
    group_path: str
    latitude: float
    longitude: float
    rated_power_w: float | None  # lamps only
    poll_interval_s: float
