"""One function decides a level: programs, ramps, calendars, holidays, lunar dates, overrides."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schedules.astro import AstroClock
from schedules.model import Calendar, CalendarRule, Override, Program, Step
from schedules.plan import Plan, ScheduleError, Target

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HANOI = AstroClock(21.0285, 105.8542, "Asia/Ho_Chi_Minh")
STREET = Target("hanoi/hoan-kiem/trang-tien", "trangtien-001")

NIGHTLY = Program(
    id="nightly",
    steps=(
        Step(event="sunset", offset_min=-10, level=100),
        Step(at="23:00", level=60, ramp_min=10),
        Step(at="01:00", level=40),
        Step(event="sunrise", offset_min=10, level=0),
    ),
)
FESTIVE = Program(
    id="festive",
    steps=(Step(event="sunset", offset_min=-10, level=100), Step(event="sunrise", offset_min=10, level=0)),
)
LANTERNS = Program(id="lanterns", steps=(Step(event="sunset", level=30), Step(event="sunrise", level=0)))
WEEKEND = Program(
    id="weekend",
    steps=(Step(event="sunset", level=100), Step(at="02:00", level=50), Step(event="sunrise", level=0)),
)


def plan(*rules: CalendarRule, overrides: tuple[Override, ...] = ()) -> Plan:
    calendar = Calendar(id="hanoi", default_program="nightly", rules=rules)
    programs = {p.id: p for p in (NIGHTLY, FESTIVE, LANTERNS, WEEKEND)}
    return Plan(HANOI, programs, {"hanoi": calendar}, overrides)


def at(day: int, hh: int, mm: int, month: int = 6) -> dt.datetime:
    return dt.datetime(2026, month, day, hh, mm, tzinfo=TZ)


def test_a_night_follows_its_program_from_dusk_to_dawn() -> None:
    p = plan()
    # 2026-06-22 (Monday): sunset 18:40 → step at 18:30; sunrise next day 05:16 → off at 05:26
    assert p.resolve(STREET, at(22, 18, 29)).level == 0
    decision = p.resolve(STREET, at(22, 18, 31))
    assert decision.level == 100
    assert "program nightly: sunset −10 min" in decision.cause
    assert p.resolve(STREET, at(22, 23, 5)).level == 80  # halfway through a 10-minute ramp to 60
    assert p.resolve(STREET, at(22, 23, 30)).level == 60
    assert p.resolve(STREET, at(23, 1, 30)).level == 40
    assert p.resolve(STREET, at(23, 5, 25)).level == 40
    assert p.resolve(STREET, at(23, 5, 27)).level == 0
    assert p.resolve(STREET, at(23, 12, 0)).level == 0  # day: the last level of the night before


def test_holidays_lunar_dates_and_weekdays_choose_the_program_first_match_wins() -> None:
    p = plan(
        CalendarRule(program="festive", holiday="Reunification"),
        CalendarRule(program="lanterns", lunar_month=8, lunar_day=15),  # Mid-Autumn
        CalendarRule(program="festive", holiday="any"),
        CalendarRule(program="weekend", weekdays=("sat", "sun")),
    )
    reunification = p.resolve(STREET, at(30, 23, 30, month=4))
    assert reunification.level == 100
    assert "rule 1 (holiday Reunification)" in reunification.cause
    mid_autumn = p.resolve(STREET, at(25, 21, 0, month=9))  # 15/8 lunar = 2026-09-25
    assert mid_autumn.level == 30
    assert "lunar 15/8" in mid_autumn.cause
    national_day = p.resolve(STREET, at(2, 23, 30, month=9))
    assert "rule 3 (holiday any)" in national_day.cause
    saturday = p.resolve(STREET, at(27, 23, 30))  # 2026-06-27 is a Saturday
    assert saturday.level == 100
    assert "rule 4" in saturday.cause
    assert p.resolve(STREET, at(28, 3, 0)).level == 50  # still Saturday's night after midnight
    monday = p.resolve(STREET, at(29, 23, 30))
    assert "default" in monday.cause


def test_overrides_win_while_active_and_the_program_resumes_without_a_gap() -> None:
    storm = Override(
        id="storm",
        group="hanoi/hoan-kiem",
        level=100,
        start=at(22, 22, 0),
        expiry=at(23, 0, 30),
        reason="storm warning",
    )
    repair = Override(
        id="repair",
        device_id="trangtien-001",
        level=0,
        start=at(22, 23, 0),
        expiry=at(22, 23, 45),
        priority=90,
    )
    p = plan(overrides=(storm, repair))
    assert p.resolve(STREET, at(22, 22, 30)).cause == "override storm: storm warning"
    assert p.resolve(STREET, at(22, 23, 10)).level == 0  # higher priority on the lamp itself
    assert p.resolve(STREET, at(22, 23, 50)).level == 100  # back to the storm
    resumed = p.resolve(STREET, at(23, 0, 30))
    assert resumed.level == 60  # the program's level at that moment, not the next transition
    other_district = Target("hanoi/ba-dinh", "x")
    assert p.resolve(other_district, at(22, 22, 30)).level == 100 - 0  # nightly program, not the storm
    assert "program nightly" in p.resolve(other_district, at(22, 22, 30)).cause
    elsewhere = [t.cause for t in p.transitions(Target("hanoi/ba-dinh"), at(22, 12, 0), at(23, 12, 0))]
    assert not [c for c in elsewhere if "override" in c]  # a group override stays in its group
    starts = [t.cause for t in p.transitions(STREET, at(22, 12, 0), at(23, 12, 0))]
    assert "override storm starts" in starts
    assert starts.index("override storm starts") < starts.index("override storm expires")


def test_polar_night_keeps_a_dusk_to_dawn_program_on_all_day() -> None:
    tromso = Plan(
        AstroClock(69.6492, 18.9553, "Europe/Oslo"),
        {"festive": FESTIVE},
        {"norway": Calendar(id="no", default_program="festive", holiday_country="NO")},
    )
    noon = dt.datetime(2026, 12, 21, 12, 30, tzinfo=ZoneInfo("Europe/Oslo"))
    assert tromso.resolve(Target("norway"), noon).level == 100
    midsummer = dt.datetime(2026, 6, 21, 23, 30, tzinfo=ZoneInfo("Europe/Oslo"))
    assert tromso.resolve(Target("norway"), midsummer).level == 0  # the sun never sets: no dusk step


def test_bad_schedules_are_refused_with_the_reason() -> None:
    unordered = Program(id="bad", steps=(Step(at="23:00", level=60), Step(event="sunset", level=100)))
    p = Plan(HANOI, {"bad": unordered}, {"hanoi": Calendar(id="c", default_program="bad")})
    with pytest.raises(ScheduleError, match="step 'sunset' comes before '23:00'"):
        p.resolve(STREET, at(22, 20, 0))
    with pytest.raises(ScheduleError, match="no calendar for group 'saigon'"):
        p.resolve(Target("saigon"), at(22, 20, 0))
    missing = Plan(HANOI, {}, {"hanoi": Calendar(id="c", default_program="ghost")})
    with pytest.raises(ScheduleError, match="unknown program 'ghost'"):
        missing.resolve(STREET, at(22, 20, 0))
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        Step(at="20:00", level=101)
    with pytest.raises(ValidationError, match="exactly one of `at`"):
        Step(at="20:00", event="sunset", level=1)
    with pytest.raises(ValidationError, match="expires before it starts"):
        Override(id="o", group="hanoi", level=1, start=at(22, 20, 0), expiry=at(22, 19, 0))
    with pytest.raises(ValidationError, match="exactly one of: weekdays"):
        CalendarRule(program="x", weekdays=("mon",), date=dt.date(2026, 1, 1))


def test_preview_shows_the_curve_the_transitions_and_the_energy_saved() -> None:
    from schedules.preview import preview

    p = plan()
    night = preview(
        p, STREET, at(22, 12, 0), at(23, 12, 0), every=dt.timedelta(minutes=1), rated_power_w=100, lamps=10
    )
    levels = {pt.level for pt in night.points}
    assert levels >= {0, 100, 60, 40}
    assert [t.cause.split(": ")[1] for t in night.transitions] == [
        "sunset −10 min",
        "23:00",
        "01:00",
        "sunrise +10 min",
    ]
    # dark from 18:40 to 05:16 ≈ 10.6 h at 10 × 100 W
    assert night.baseline_kwh == pytest.approx(10.6, abs=0.1)
    # 4.5 h at 100 %, 2 h at 60 %, 4.4 h at 40 % (and a 10-minute ramp) ≈ 7.5 kWh
    assert night.energy_kwh == pytest.approx(7.5, abs=0.15)
    assert night.saving_pct is not None
    assert 25 < night.saving_pct < 32
    with pytest.raises(ValueError, match="end after it starts"):
        preview(p, STREET, at(23, 12, 0), at(22, 12, 0))


def test_a_photocell_period_switches_with_hysteresis_and_fails_safe() -> None:
    from schedules.model import Photocell

    cell = Photocell(on_below_lx=20, off_above_lx=50)
    program = Program(
        id="lux",
        steps=(
            Step(at="16:00", level=80, photocell=cell),  # from 16:00 the sensor decides
            Step(event="sunset", offset_min=30, level=100),
            Step(event="sunrise", level=0),
        ),
    )
    p = Plan(HANOI, {"lux": program}, {"hanoi": Calendar(id="c", default_program="lux")})
    storm = at(22, 16, 30)  # a dark afternoon storm
    d = p.resolve(STREET, storm, lux=12)
    assert d.level == 80
    assert d.photocell_on is True
    assert "photocell 12 lx" in d.cause
    assert p.resolve(STREET, storm, lux=35, photocell_was_on=True).level == 80  # inside the band: stays on
    assert p.resolve(STREET, storm, lux=35, photocell_was_on=False).level == 0  # inside the band: stays off
    assert p.resolve(STREET, storm, lux=60, photocell_was_on=True).level == 0
    silent = p.resolve(STREET, storm, lux=None)
    assert silent.level == 80
    assert "fail-safe" in silent.cause
    assert p.resolve(STREET, at(22, 21, 0), lux=60).level == 100  # after sunset +30 the program rules
    with pytest.raises(ValidationError, match="hysteresis"):
        Photocell(on_below_lx=50, off_above_lx=20)


def test_constant_light_output_raises_output_as_lamps_age() -> None:
    program = Program(
        id="clo", steps=NIGHTLY.steps, constant_light_output=((0, 0.8), (50_000, 1.0), (100_000, 1.2))
    )
    p = Plan(HANOI, {"clo": program}, {"hanoi": Calendar(id="c", default_program="clo")})
    late = at(22, 23, 30)  # programmed 60 %
    assert p.resolve(STREET, late, burning_hours=0).level == 48
    assert p.resolve(STREET, late, burning_hours=25_000).level == 54
    assert p.resolve(STREET, late, burning_hours=100_000).level == 72
    assert p.resolve(STREET, at(22, 19, 0), burning_hours=100_000).level == 100  # capped at full output
    assert p.resolve(STREET, late).level == 60  # age unknown: the program as written
    assert "constant light output ×1.200" in p.resolve(STREET, late, burning_hours=200_000).cause
    with pytest.raises(ValidationError, match="increasing burning hours"):
        Program(id="bad", steps=NIGHTLY.steps, constant_light_output=((100, 1.0), (50, 1.1)))


def test_many_lamps_decided_at_once_get_what_each_would_alone() -> None:
    """A pass decides a group's lamps once (controller/scheduling.py); a lamp with its own
    override, another group, a photocell state or an age that changes the level still gets its own."""
    repair = Override(
        id="repair", device_id="trangtien-002", level=0, start=at(22, 22, 0), expiry=at(22, 23, 45)
    )
    clo = Program(id="clo", steps=NIGHTLY.steps, constant_light_output=((0, 0.8), (100_000, 1.2)))
    calendars = {
        "hanoi": Calendar(id="c", default_program="nightly"),
        "hanoi/ba-dinh": Calendar(id="d", default_program="clo"),
    }
    p = Plan(HANOI, {"nightly": NIGHTLY, "clo": clo}, calendars, (repair,))
    instant = at(22, 23, 30)
    decide = p.deciding(instant)
    assert decide.uses_age
    lamps = [
        ("hanoi/hoan-kiem/trang-tien", "trangtien-001", None),
        ("hanoi/hoan-kiem/trang-tien", "trangtien-002", None),  # its own override
        ("hanoi/hoan-kiem/trang-tien", "trangtien-003", None),
        ("hanoi/ba-dinh", "badinh-001", 0.0),
        ("hanoi/ba-dinh", "badinh-002", 100_000.0),
    ]
    for group, device, age in lamps:
        alone = p.resolve(Target(group, device), instant, burning_hours=age)
        assert decide(group, device, False, age) == alone, device
    assert [decide(g, d, False, a).level for g, d, a in lamps] == [60, 0, 60, 48, 72]
    assert not plan().deciding(instant).uses_age  # no program ages: the lamps' ages are not read
