"""InfluxDB series keys: a device's tags from its registry row, made at its first point."""

from __future__ import annotations

import datetime as dt

from controller.device import Device
from controller.telemetry.lines import SeriesKeys, encode
from controller.telemetry.tags import DeviceTags
from drivers.base import Reading

AT = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)
LAMP = Device("gw1-001", "hn", "gw1", 1, "1", "lamp_lcu", "lamp", "hanoi/ba dinh", 21.0, 105.8, 150.0, 60.0)


def test_points_carry_the_registry_tags_and_a_stranger_its_id() -> None:
    keys = SeriesKeys("lamplighter", DeviceTags({LAMP.id: LAMP}))
    assert not keys  # nothing built before a point needs it
    body, n = encode([Reading(LAMP.id, AT, {"power_w": 80}), Reading("odd,one", AT, {"power_w": 1})], keys)
    first, second = body.decode().splitlines()
    assert n == 2
    assert first == (
        "lamplighter,device=gw1-001,group=hanoi/ba\\ dinh,kind=lamp,profile=lamp_lcu,site=hn"
        " power_w=80.0 1796605200000000"
    )
    # a device the registry does not know (yet) is tagged by its id alone, escaped
    assert second == "lamplighter,device=odd\\,one power_w=1.0 1796605200000000"
    assert set(keys) == {LAMP.id, "odd,one"}
