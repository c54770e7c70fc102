"""The astronomical clock: sun events for a site and date, always in the site's own time zone.

astral answers in UTC unless given a tzinfo, so every call passes one. Near the poles an event may
not happen at all; the behaviour is explicit (see `AstroClock.event`):
- polar night (the sun does not rise): dusk events fall at the start of the day and dawn events at
  its end, so a dusk-to-dawn program keeps the lamps on all day;
- midnight sun (the sun does not set): there is no dusk, and steps tied to sun events are skipped.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import dawn, dusk, elevation, sunrise, sunset

SunEvent = Literal["sunset", "sunrise", "civil_dusk", "civil_dawn", "nautical_dusk", "nautical_dawn"]
EVENING_EVENTS: frozenset[str] = frozenset({"sunset", "civil_dusk", "nautical_dusk"})
_DEPRESSION = {"civil": 6.0, "nautical": 12.0}


@dataclass(frozen=True)
class AstroClock:
    """Sun events at one site."""

    latitude: float
    longitude: float
    timezone: str = "Asia/Ho_Chi_Minh"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - clocks live as long as the process; few sites
    def event(self, name: SunEvent, day: dt.date) -> dt.datetime | None:
        """When `name` happens on `day` (local date), or None if it does not happen (midnight sun).
        Remembered: a preview or an energy table asks for the same few days thousands of times."""
        observer = Observer(latitude=self.latitude, longitude=self.longitude)
        tz = self.tz
        try:
            if name == "sunset":
                return sunset(observer, day, tzinfo=tz)
            if name == "sunrise":
                return sunrise(observer, day, tzinfo=tz)
            kind, _, phase = name.partition("_")
            depression = _DEPRESSION[kind]
            if phase == "dusk":
                return dusk(observer, day, tzinfo=tz, depression=depression)
            return dawn(observer, day, tzinfo=tz, depression=depression)
        except ValueError:
            noon = dt.datetime.combine(day, dt.time(12), tz)
            if elevation(observer, noon) > 0:
                return None  # the sun stays up (or never gets low enough): no dusk, no dawn
            # polar night: dark all day — dusk at the start of the day, dawn at its end
            if name in EVENING_EVENTS:
                return dt.datetime.combine(day, dt.time(0), tz)
            return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz)

    def dark_hours(self, start: dt.datetime, end: dt.datetime) -> float:
        """Hours in [start, end) when the sun is down: before sunrise and after sunset of each local
        day. Exact from the day's two events (sampling the sun's elevation every few minutes cost
        seconds for a year of daily energy windows, and was only approximately this)."""
        hours = 0.0
        day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
        last = end.astimezone(self.tz).date()
        while day <= last:
            for dark_from, dark_to in self.dark_intervals(day):
                overlap = min(dark_to, end) - max(dark_from, start)
                if overlap > dt.timedelta(0):
                    hours += overlap / dt.timedelta(hours=1)
            day += dt.timedelta(days=1)
        return hours

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - as `event`
    def dark_intervals(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """The dark parts of local day `day`: midnight to sunrise, sunset to midnight (the whole
        day in polar night; none under the midnight sun)."""
        tz = self.tz
        midnight = dt.datetime.combine(day, dt.time(0), tz)
        next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz)
        sunrise = self.event("sunrise", day)
        sunset = self.event("sunset", day)
        if sunrise is None and sunset is None:
            return ()
        morning_end = sunrise if sunrise is not None else midnight
        evening_start = sunset if sunset is not None else next_midnight
        if evening_start <= morning_end:  # polar night: the events meet
            return ((midnight, next_midnight),)
        return ((midnight, morning_end), (evening_start, next_midnight))

    def is_daylight(self, instant: dt.datetime) -> bool:
        observer = Observer(latitude=self.latitude, longitude=self.longitude)
        return bool(elevation(observer, instant) > -0.833)  # the sun's upper limb above the horizon
