"""Leq as the regulation means it: an energy average over time, worked by hand — and the day and night
of QCVN 26:2010/BTNMT (70 and 55 dB(A) in ordinary areas) judged from it."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest

from controller.noise_levels import NoiseLimits, leq, noise_day

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
GAP = dt.timedelta(minutes=5)


def every(
    seconds: float, start: dt.datetime, end: dt.datetime, level: float
) -> list[tuple[dt.datetime, float]]:
    out, t = [], start
    while t < end:
        out.append((t, level))
        t += dt.timedelta(seconds=seconds)
    return out


def test_a_steady_level_is_its_own_leq() -> None:
    assert leq(every(60, T0, T0 + HOUR, 60.0), T0, T0 + HOUR, max_gap=GAP, min_coverage=0.75) == (60.0, 100.0)


def test_half_an_hour_at_60_and_half_at_70_is_67_4_not_65() -> None:
    half = T0 + HOUR / 2
    samples = every(60, T0, half, 60.0) + every(60, half, T0 + HOUR, 70.0)
    value, _ = leq(samples, T0, T0 + HOUR, max_gap=GAP, min_coverage=0.75)
    assert value == pytest.approx(10 * math.log10((10**6 + 10**7) / 2), abs=0.01)  # 67.40
    assert value == pytest.approx(67.40, abs=0.01)


def test_a_sensor_reporting_faster_when_loud_does_not_weigh_the_loud_minute_more() -> None:
    quiet = every(60, T0, T0 + HOUR, 50.0)
    burst = every(1, T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(minutes=31), 80.0)
    samples = sorted(quiet + burst)
    value, _ = leq(samples, T0, T0 + HOUR, max_gap=GAP, min_coverage=0.75)
    # one minute at 80 and 59 at 50, by time
    assert value == pytest.approx(10 * math.log10((59 * 10**5 + 1 * 10**8) / 60), abs=0.05)


def test_too_little_data_is_not_enough_data_never_a_guess() -> None:
    samples = every(60, T0, T0 + dt.timedelta(minutes=40), 60.0)  # readings at 0 … 39 min, then silence
    # each holds to the next one; the last one for at most 5 minutes: 44 of 60 minutes covered
    assert leq(samples, T0, T0 + HOUR, max_gap=GAP, min_coverage=0.75) == (None, 73.33)
    assert leq(samples, T0, T0 + HOUR, max_gap=GAP, min_coverage=0.70) == (60.0, 73.33)


def test_a_day_and_its_night_are_judged_by_the_limits_of_qcvn_26() -> None:
    day = dt.date(2026, 11, 20)
    start = dt.datetime.combine(day, dt.time(0), HANOI).astimezone(dt.UTC)
    six = dt.datetime.combine(day, dt.time(6), HANOI).astimezone(dt.UTC)
    nine_pm = dt.datetime.combine(day, dt.time(21), HANOI).astimezone(dt.UTC)
    next_six = six + dt.timedelta(days=1)
    samples = every(60, start, six, 50.0) + every(60, six, nine_pm, 72.0) + every(60, nine_pm, next_six, 50.0)
    judged = noise_day("noise-1", day, HANOI, samples, NoiseLimits())
    assert len(judged.hours) == 24
    assert judged.hours[7].leq_dba == 72.0
    assert judged.hours[7].limit_dba == 70.0
    assert judged.hours[7].exceeds is True
    assert judged.hours[3].limit_dba == 55.0  # 03:00 is night
    assert judged.hours[3].exceeds is False
    assert (judged.day.leq_dba, judged.day.exceeds) == (72.0, True)
    assert (judged.night.leq_dba, judged.night.exceeds) == (50.0, False)
    assert judged.night.end == next_six
    quiet_area = NoiseLimits(day_dba=55, night_dba=45)  # QCVN 26's special areas: hospitals, schools
    assert noise_day("noise-1", day, HANOI, samples, quiet_area).night.exceeds is True
