"""The indices against their authorities' own tables and worked examples.

VN_AQI: Decision 1459/QĐ-TCMT (2019) — table 1 (levels, colours), table 2 (breakpoints), section 2.2
(NowCast, hourly and daily rules) and section 2.3 (its worked examples). US EPA: EPA-454/B-24-002
(May 2024), table 6.
"""

from __future__ import annotations

import pytest

from controller.air_index import (
    LEVELS,
    daily_index,
    hourly_index,
    level_of,
    max_8h_mean,
    nowcast,
    round_half_up,
    sub_index,
)

# 2.3.a: PM2.5 hourly means from 09:00 to 20:00
EXAMPLE_PM25 = [26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6]
# 2.2.2.a: O3 hourly means from 18:00 one day to 00:00 two days later (31 hours)
EXAMPLE_O3 = [
    15.7, 14.2, 17.7, 18.9, 19.3, 15.7, 19.7, 22.6, 27.1, 29.0, 31.9, 25.3, 34.7, 35.2, 41.6, 45.7,
    49.2, 55.8, 69.6, 78.3, 91.5, 97.7, 81.2, 71.8, 43.5, 34.3, 21.5, 20.5, 19.4, 20.4, 21.3,
]  # fmt: skip


def test_nowcast_of_the_worked_example_is_20_3() -> None:
    # w* = 16.5 / 26.9 = 0.61 > 1/2, so w = w*; c1 is 20:00
    assert round(nowcast(EXAMPLE_PM25[::-1]) or 0, 1) == 20.3


def test_hourly_example_sub_indices() -> None:
    # 2.3.b: O3 136.1 → 43, PM2.5 NowCast 20.3 → 41
    assert round_half_up(sub_index("vn_aqi", "o3_1h", 136.1)) == 43
    assert round_half_up(sub_index("vn_aqi", "pm25", 20.3)) == 41
    # NO2 118.7: (100 − 50)/(200 − 100)·(118.7 − 100) + 50 = 59.35. The decision prints 60, which
    # its own formula does not give (59.35 rounds to 59); the formula is what is implemented.
    assert sub_index("vn_aqi", "no2", 118.7) == pytest.approx(59.35)
    result = hourly_index("vn_aqi", {"o3": [136.1], "no2": [118.7], "pm25": EXAMPLE_PM25[::-1]})
    assert result.sub_indices == {"pm25": 41, "o3": 43, "no2": 59}
    assert result.index == 59
    assert result.dominant == "no2"


def test_daily_example_is_110() -> None:
    # 2.3.c: O3 8-hour max 89.3 → 45, 1-hour max 114.6 → 36, NO2 130.8 → 65, PM2.5 55.7 → 110
    day = {"pm25": [55.7] * 24, "o3": [114.6] + [10.0] * 23, "no2": [130.8] + [20.0] * 23}
    result = daily_index("vn_aqi", day, o3_8h_max=89.3)
    assert result.sub_indices == {"pm25": 110, "o3": 45, "no2": 65}
    assert result.index == 110
    assert result.dominant == "pm25"
    assert level_of("vn_aqi", 110).key == "poor"


def test_highest_8_hour_mean_of_the_worked_example_is_74_4() -> None:
    # the day's 24 windows end at 01:00 … 00:00; the first starts at 18:00 the evening before
    assert round(max_8h_mean(EXAMPLE_O3) or 0, 1) == 74.4


@pytest.mark.parametrize(
    ("table", "breakpoints"),
    [
        ("pm25", [0, 25, 50, 80, 150, 250, 350, 500]),
        ("pm10", [0, 50, 150, 250, 350, 420, 500, 600]),
        ("o3_1h", [0, 160, 200, 300, 400, 800, 1000, 1200]),
        ("o3_8h", [0, 100, 120, 170, 210, 400]),
        ("co", [0, 10_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000]),
        ("so2", [0, 125, 350, 550, 800, 1600, 2100, 2630]),
        ("no2", [0, 100, 200, 700, 1200, 2350, 3100, 3850]),
    ],
)
def test_vn_each_breakpoint_gives_its_index(table: str, breakpoints: list[float]) -> None:
    for bp, index in zip(breakpoints, [0, 50, 100, 150, 200, 300, 400, 500], strict=False):
        assert sub_index("vn_aqi", table, bp) == pytest.approx(index)
    # halfway between two breakpoints: halfway between their indices
    assert sub_index("vn_aqi", table, (breakpoints[1] + breakpoints[2]) / 2) == pytest.approx(75)


def test_vn_above_the_table_is_500() -> None:
    assert sub_index("vn_aqi", "pm25", 900) == 500
    assert sub_index("vn_aqi", "pm10", 600.1) == 500


@pytest.mark.parametrize(
    ("pollutant", "concentration", "index"),
    [
        ("pm25", 9.0, 50),
        ("pm25", 9.1, 51),
        ("pm25", 9.19, 51),  # truncated to 9.1 first
        ("pm25", 35.4, 100),
        ("pm25", 35.5, 101),
        ("pm25", 55.4, 150),
        ("pm25", 125.4, 200),
        ("pm25", 125.5, 201),
        ("pm25", 225.4, 300),
        ("pm25", 225.5, 301),
        ("pm25", 325.4, 500),
        ("pm25", 400.0, 500),
        ("pm10", 54.9, 50),  # truncated to 54
        ("pm10", 55, 51),
        ("pm10", 154, 100),
        ("pm10", 254, 150),
        ("pm10", 354, 200),
        ("pm10", 424, 300),
        ("pm10", 425, 301),
        ("pm10", 604, 500),
    ],
)
def test_epa_breakpoints(pollutant: str, concentration: float, index: int) -> None:
    assert round_half_up(sub_index("us_epa", pollutant, concentration)) == index


def test_levels_and_colours_of_table_1() -> None:
    vn = LEVELS["vn_aqi"]
    assert [(lv.low, lv.high) for lv in vn] == [
        (0, 50),
        (51, 100),
        (101, 150),
        (151, 200),
        (201, 300),
        (301, 500),
    ]
    assert [lv.colour for lv in vn] == ["#00E400", "#FFFF00", "#FF7E00", "#FF0000", "#8F3F97", "#7E0023"]
    edges = (0, 50, 51, 100, 101, 150, 151, 200, 201, 300, 301, 500)
    assert [level_of("vn_aqi", i).number for i in edges] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    with pytest.raises(ValueError, match="never negative"):
        level_of("vn_aqi", -1)


def test_nowcast_needs_two_of_the_three_latest_hours() -> None:
    full = [40.0] * 12
    assert nowcast(full) == pytest.approx(40.0)
    assert nowcast([None, 40.0, 40.0, *full[3:]]) == pytest.approx(40.0)
    assert nowcast([None, None, 40.0, *full[3:]]) is None
    assert nowcast([40.0, None, None, *full[3:]]) is None
    assert nowcast([]) is None
    result = hourly_index("vn_aqi", {"pm25": [None, None, 80.0, 80.0]})
    assert result.index is None
    assert result.sub_indices == {}


def test_missing_hours_weigh_nothing() -> None:
    # a gap is not a zero: the NowCast of 60, gap, 60 … is 60
    assert nowcast([60.0, None, 60.0, None, 60.0]) == pytest.approx(60.0)


def test_nowcast_weight_never_falls_below_one_half() -> None:
    # a sharp rise: min/max = 0.1 → w = 1/2, the latest hour counts about half
    series = [100.0] + [10.0] * 11
    expected = sum(0.5**i * c for i, c in enumerate(series)) / sum(0.5**i for i in range(12))
    assert nowcast(series) == pytest.approx(expected)
    # and the decision's shorthand Σ (1/2)^i·cᵢ differs from it by less than 0.03 %
    shorthand = sum(0.5 ** (i + 1) * c for i, c in enumerate(series))
    assert abs(shorthand - expected) / expected < 3e-4


def test_an_index_needs_dust() -> None:
    result = hourly_index("vn_aqi", {"no2": [300.0], "o3": [180.0]})
    assert result.index is None
    assert result.sub_indices == {"no2": 110, "o3": 75}


def test_daily_needs_18_hours() -> None:
    assert daily_index("vn_aqi", {"pm25": [30.0] * 17 + [None] * 7}).index is None
    assert daily_index("vn_aqi", {"pm25": [30.0] * 18 + [None] * 6}).index == 60


def test_daily_o3_8_hour_part_dropped_above_400() -> None:
    day = {"pm25": [10.0] * 24, "o3": [420.0] * 24}
    with_8h = daily_index("vn_aqi", day, o3_8h_max=420.0)
    assert with_8h.sub_indices["o3"] == round_half_up(sub_index("vn_aqi", "o3_1h", 420.0)) == 205
    assert "o3_8h" not in with_8h.inputs


def test_epa_reads_dust_only() -> None:
    result = hourly_index("us_epa", {"pm25": [35.5] * 12, "no2": [900.0]})
    assert result.sub_indices == {"pm25": 101}
    assert result.index == 101
    assert level_of("us_epa", 101).key == "unhealthy_sensitive"


def test_bad_concentrations_refused() -> None:
    with pytest.raises(ValueError, match="not a concentration"):
        sub_index("vn_aqi", "pm25", -1)
    with pytest.raises(ValueError, match="not a concentration"):
        sub_index("vn_aqi", "pm25", float("nan"))
