"""The astronomical clock: pinned sun times, the poles, and a DST change."""

from __future__ import annotations

import datetime as dt

from schedules.astro import AstroClock

HANOI = AstroClock(21.0285, 105.8542, "Asia/Ho_Chi_Minh")
TROMSO = AstroClock(69.6492, 18.9553, "Europe/Oslo")
BERLIN = AstroClock(52.52, 13.405, "Europe/Berlin")


def hm(t: dt.datetime | None) -> str:
    assert t is not None
    return t.strftime("%H:%M")


def test_hanoi_midsummer_matches_the_noaa_figures() -> None:
    day = dt.date(2026, 6, 21)
    assert hm(HANOI.event("sunrise", day)) == "05:16"
    assert hm(HANOI.event("sunset", day)) == "18:40"
    assert HANOI.event("sunset", day).utcoffset() == dt.timedelta(hours=7)  # type: ignore[union-attr]
    dusk = HANOI.event("civil_dusk", day)
    sunset = HANOI.event("sunset", day)
    assert dusk is not None
    assert sunset is not None
    assert dusk > sunset


def within_a_minute(t: dt.datetime | None, expected: str) -> bool:
    assert t is not None
    h, m = (int(x) for x in expected.split(":"))
    return abs((t.hour * 60 + t.minute + t.second / 60) - (h * 60 + m)) <= 1.0


def test_hanoi_midwinter_matches_published_almanac_times() -> None:
    day = dt.date(2026, 12, 21)
    assert within_a_minute(HANOI.event("sunrise", day), "06:29")
    assert within_a_minute(HANOI.event("sunset", day), "17:20")


def test_polar_night_is_dark_all_day_and_midnight_sun_has_no_dusk() -> None:
    winter = dt.date(2026, 12, 21)
    assert TROMSO.event("sunset", winter) == dt.datetime(2026, 12, 21, 0, 0, tzinfo=TROMSO.tz)
    assert TROMSO.event("sunrise", winter) == dt.datetime(2026, 12, 22, 0, 0, tzinfo=TROMSO.tz)
    summer = dt.date(2026, 6, 21)
    assert TROMSO.event("sunset", summer) is None
    assert TROMSO.event("sunrise", summer) is None


def test_times_stay_local_across_a_dst_change() -> None:
    before, after = dt.date(2026, 3, 28), dt.date(2026, 3, 29)  # Europe/Berlin springs forward on the 29th
    s1, s2 = BERLIN.event("sunset", before), BERLIN.event("sunset", after)
    assert s1 is not None
    assert s2 is not None
    assert s1.utcoffset() == dt.timedelta(hours=1)
    assert s2.utcoffset() == dt.timedelta(hours=2)
    assert hm(s1) == "18:33"
    assert hm(s2) == "19:35"  # about an hour later on the clock, two minutes later in the sky
