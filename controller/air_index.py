"""Air quality indices from hourly means, as the authorities define them. Pure: no I/O, no clock.

VN_AQI — Decision 1459/QĐ-TCMT of 12 Nov 2019 (Vietnam Environment Administration), "Hướng dẫn kỹ
thuật tính toán và công bố chỉ số chất lượng không khí Việt Nam":
- Table 2 (Bảng 2): the breakpoints BPi of each pollutant (µg/m³) against the index Ii, used with
  linear interpolation (formulas 1 and 2); above the last breakpoint the sub-index is 500.
- Hourly index (2.2.1): PM2.5 and PM10 use the NowCast of the last 12 hourly means — weight
  w = max(min/max, 1/2), hours without data weigh nothing, and at least 2 of the 3 latest hours must
  have data; O3 (1-hour table), NO2, SO2 and CO use the current hour's mean.
- Daily index (2.2.2): PM from the 24-hour mean; O3 the larger of its highest 1-hour and highest
  8-hour means (the 8-hour part only while that mean is ≤ 400 µg/m³); NO2, SO2, CO their highest
  1-hour mean. The index is the highest sub-index, rounded to an integer, and needs PM2.5 or PM10.
- Table 1 (Bảng 1): six levels and their colours; tables 4 and 5: health effects and advice (their
  words live in the translation files, `air.vn_aqi.*`).

Two choices the decision leaves open, made here and documented in docs/air.md:
- With w = 1/2 the decision writes the NowCast as Σ (1/2)^i·cᵢ, an approximation of the weighted
  mean Σ w^(i−1)·cᵢ / Σ w^(i−1) it uses otherwise (the two differ by 0.025 %); the weighted mean
  is used in both cases, which also keeps a missing hour from counting as zero.
- A 24-hour mean, or a day's highest 1-hour mean, needs 18 of the day's 24 hourly means (75 %);
  fewer is "not enough data".

US EPA AQI — Technical Assistance Document EPA-454/B-24-002 (May 2024), table 6, PM2.5 as revised
in February 2024: the same NowCast for the hourly figure (PM2.5 truncated to 0.1 µg/m³ and PM10 to
1 µg/m³ before the table is read), 24-hour means for the daily one. Only PM2.5 and PM10: the EPA
tables for gases are in ppm/ppb, which a µg/m³ reading cannot be turned into without its
temperature and pressure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Scheme = Literal["vn_aqi", "us_epa"]
SCHEMES: tuple[Scheme, ...] = ("vn_aqi", "us_epa")
#: the reading fields an index is computed from (µg/m³); gases only count for VN_AQI
POLLUTANT_FIELDS: dict[str, str] = {
    "pm2_5_ugm3": "pm25",
    "pm10_ugm3": "pm10",
    "o3_ugm3": "o3",
    "no2_ugm3": "no2",
    "so2_ugm3": "so2",
    "co_ugm3": "co",
}
DUST = ("pm25", "pm10")
NOWCAST_HOURS = 12
#: hourly means a day needs for its 24-hour mean or its highest 1-hour mean (ours: 75 %)
DAY_MIN_HOURS = 18
#: VN_AQI: the 8-hour O3 mean above which only the 1-hour table counts (2.2.2.b)
O3_8H_LIMIT = 400.0

# Bảng 2: Ii and, per pollutant, BPi (µg/m³); None where the table has "-".
_VN_INDEX = (0, 50, 100, 150, 200, 300, 400, 500)
_VN_BREAKPOINTS: dict[str, tuple[float | None, ...]] = {
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 120, 170, 210, 400, None, None),
    "co": (0, 10_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "pm25": (0, 25, 50, 80, 150, 250, 350, 500),
}
# EPA table 6: (C_low, C_high, I_low, I_high) per band.
_EPA_BANDS: dict[str, tuple[tuple[float, float, int, int], ...]] = {
    "pm25": (
        (0.0, 9.0, 0, 50),
        (9.1, 35.4, 51, 100),
        (35.5, 55.4, 101, 150),
        (55.5, 125.4, 151, 200),
        (125.5, 225.4, 201, 300),
        (225.5, 325.4, 301, 500),
    ),
    "pm10": (
        (0, 54, 0, 50),
        (55, 154, 51, 100),
        (155, 254, 101, 150),
        (255, 354, 151, 200),
        (355, 424, 201, 300),
        (425, 604, 301, 500),
    ),
}
_EPA_DECIMALS = {"pm25": 1, "pm10": 0}


@dataclass(frozen=True)
class Level:
    """One of the six levels: 1 (good) … 6 (hazardous), its index range, key and colour."""

    number: int
    low: int
    high: int
    key: str
    rgb: tuple[int, int, int]

    @property
    def colour(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)


_RGB = ((0, 228, 0), (255, 255, 0), (255, 126, 0), (255, 0, 0), (143, 63, 151), (126, 0, 35))
_RANGES = ((0, 50), (51, 100), (101, 150), (151, 200), (201, 300), (301, 500))
LEVELS: dict[Scheme, tuple[Level, ...]] = {
    # Bảng 1: Tốt, Trung bình, Kém, Xấu, Rất xấu, Nguy hại
    "vn_aqi": tuple(
        Level(i + 1, lo, hi, key, rgb)
        for i, ((lo, hi), key, rgb) in enumerate(
            zip(_RANGES, ("good", "moderate", "poor", "bad", "very_bad", "hazardous"), _RGB, strict=True)
        )
    ),
    # EPA table 1 (the same colours)
    "us_epa": tuple(
        Level(i + 1, lo, hi, key, rgb)
        for i, ((lo, hi), key, rgb) in enumerate(
            zip(
                _RANGES,
                ("good", "moderate", "unhealthy_sensitive", "unhealthy", "very_unhealthy", "hazardous"),
                _RGB,
                strict=True,
            )
        )
    ),
}


def level_of(scheme: Scheme, index: int) -> Level:
    """The level an index falls in (above 500: the last)."""
    if index < 0:
        raise ValueError(f"an air quality index is never negative: {index}")
    return next((lv for lv in LEVELS[scheme] if index <= lv.high), LEVELS[scheme][-1])


@dataclass(frozen=True)
class IndexResult:
    """An index, or None: "not enough data" (no PM2.5 or PM10 sub-index could be computed)."""

    index: int | None
    #: rounded sub-index per pollutant that had enough data ("pm25", "pm10", "o3", …)
    sub_indices: dict[str, int] = field(default_factory=dict)
    dominant: str | None = None
    #: what each sub-index was computed from (NowCast, hourly, 24-hour mean or daily maximum), µg/m³
    inputs: dict[str, float] = field(default_factory=dict)


def round_half_up(x: float) -> int:
    # rounded to 9 places first, so that 59.4999999999 from float arithmetic is not taken as < .5
    return math.floor(round(x, 9) + 0.5)


def _missing(c: float | None) -> bool:
    return c is None or not math.isfinite(c)


def nowcast(hourly: Sequence[float | None]) -> float | None:
    """The NowCast of hourly means, newest first (c1 = the latest hour; only the first 12 count).

    None when fewer than 2 of the 3 latest hours have data."""
    c = list(hourly[:NOWCAST_HOURS])
    if sum(not _missing(x) for x in c[:3]) < 2:
        return None
    present = [x for x in c if x is not None and not _missing(x)]
    c_max = max(present)
    if c_max <= 0:
        return 0.0
    w = max(min(present) / c_max, 0.5)
    num = den = 0.0
    for i, x in enumerate(c):
        if x is not None and not _missing(x):
            num += w**i * x
            den += w**i
    return num / den


def _vn_sub_index(table: str, c: float) -> float:
    bps = _VN_BREAKPOINTS[table]
    for i in range(len(bps) - 1):
        lo, hi = bps[i], bps[i + 1]
        if lo is None or hi is None:
            break
        if c <= hi:
            return (_VN_INDEX[i + 1] - _VN_INDEX[i]) / (hi - lo) * (c - lo) + _VN_INDEX[i]
    return float(_VN_INDEX[-1])


def _epa_sub_index(pollutant: str, c: float) -> float:
    digits = _EPA_DECIMALS[pollutant]
    c = math.floor(round(c * 10**digits, 9)) / 10**digits  # EPA truncates, it does not round
    for c_lo, c_hi, i_lo, i_hi in _EPA_BANDS[pollutant]:
        if c <= c_hi:
            return (i_hi - i_lo) / (c_hi - c_lo) * (c - c_lo) + i_lo
    return 500.0


def sub_index(scheme: Scheme, table: str, concentration: float) -> float:
    """The unrounded sub-index of a concentration (µg/m³) by a pollutant's table.

    `table`: "pm25", "pm10", "no2", "so2", "co", "o3_1h", "o3_8h" (VN_AQI); "pm25", "pm10" (US EPA)."""
    if concentration < 0 or not math.isfinite(concentration):
        raise ValueError(f"not a concentration: {concentration}")
    if scheme == "vn_aqi":
        return _vn_sub_index(table, concentration)
    return _epa_sub_index(table, concentration)


def _combine(sub: Mapping[str, float], inputs: dict[str, float]) -> IndexResult:
    rounded = {p: round_half_up(v) for p, v in sub.items()}
    if not any(p in rounded for p in DUST):  # 2.1.b: PM2.5 or PM10 is required
        return IndexResult(None, rounded, None, inputs)
    # ties (at the top of the scale both dusts read 500): PM2.5 before PM10 before the gases,
    # whatever order the profile maps them in
    ranked = sorted(rounded, key=lambda p: (DUST.index(p) if p in DUST else len(DUST), p))
    dominant = max(ranked, key=lambda p: rounded[p])
    return IndexResult(rounded[dominant], rounded, dominant, inputs)


def hourly_index(scheme: Scheme, hourly: Mapping[str, Sequence[float | None]]) -> IndexResult:
    """The hourly index from each pollutant's hourly means, newest first (`hourly["pm25"][0]` is
    the latest hour). Gases are read by VN_AQI only."""
    sub: dict[str, float] = {}
    inputs: dict[str, float] = {}
    for pollutant in ("pm25", "pm10", "o3", "no2", "so2", "co"):
        series = hourly.get(pollutant) or ()
        if scheme == "us_epa" and pollutant not in DUST:
            continue
        c = nowcast(series) if pollutant in DUST else (series[0] if series else None)
        if c is None or _missing(c) or c < 0:
            continue
        inputs[pollutant] = round(c, 2)
        sub[pollutant] = sub_index(scheme, "o3_1h" if pollutant == "o3" else pollutant, c)
    return _combine(sub, inputs)


def max_8h_mean(hourly: Sequence[float | None]) -> float | None:
    """The highest mean of 8 consecutive hourly means, oldest first; windows with a gap are skipped."""
    best: float | None = None
    for end in range(8, len(hourly) + 1):
        window = hourly[end - 8 : end]
        if all(x is not None and not _missing(x) for x in window):
            mean = sum(x for x in window if x is not None) / 8
            best = mean if best is None else max(best, mean)
    return best


def daily_index(
    scheme: Scheme,
    day: Mapping[str, Sequence[float | None]],
    o3_8h_max: float | None = None,
) -> IndexResult:
    """The daily index from a day's 24 hourly means per pollutant (oldest first). `o3_8h_max`: the
    day's highest 8-hour O3 mean (its windows may start the evening before), if known."""
    sub: dict[str, float] = {}
    inputs: dict[str, float] = {}
    for pollutant in ("pm25", "pm10", "o3", "no2", "so2", "co"):
        if scheme == "us_epa" and pollutant not in DUST:
            continue
        values = [x for x in day.get(pollutant) or () if x is not None and not _missing(x) and x >= 0]
        if len(values) < DAY_MIN_HOURS:
            continue
        if pollutant in DUST:
            c = sum(values) / len(values)
            inputs[pollutant] = round(c, 2)
            sub[pollutant] = sub_index(scheme, pollutant, c)
        elif pollutant == "o3":
            parts = [sub_index(scheme, "o3_1h", max(values))]
            inputs["o3_1h"] = max(values)
            if o3_8h_max is not None and o3_8h_max <= O3_8H_LIMIT:
                parts.append(sub_index(scheme, "o3_8h", o3_8h_max))
                inputs["o3_8h"] = round(o3_8h_max, 2)
            sub["o3"] = max(parts)
        else:
            inputs[pollutant] = max(values)
            sub[pollutant] = sub_index(scheme, pollutant, max(values))
    return _combine(sub, inputs)
