"""Schedule objects in the TALQ vocabulary: programs of timed steps, calendars that choose a program
per night, and overrides with a start and an expiry. Validated at the edge (pydantic); immutable."""

from __future__ import annotations

import itertools
from typing import Literal

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schedules.astro import SunEvent
from schedules.inputs import Day, Instant, Number, Whole

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: a night has a handful of steps; a 5,760-step program took 10 s to assign and 17 s to preview
MAX_STEPS = 48
#: holidays, events and weekdays of a year fit easily
MAX_RULES = 200


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Photocell(_Frozen):
    """Lux-triggered switching with hysteresis: on below `on_below_lx`, off above `off_above_lx`."""

    on_below_lx: Number = Field(ge=0, allow_inf_nan=False)
    off_above_lx: Number = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _hysteresis(self) -> Photocell:
        if self.on_below_lx >= self.off_above_lx:
            raise ValueError("on_below_lx must be below off_above_lx (that gap is the hysteresis)")
        return self

    def switch(self, lux: float | None, was_on: bool) -> bool:
        """On or off for this lux reading; between the thresholds nothing changes. No reading: on."""
        if lux is None:
            return True  # fail-safe: light rather than dark when the sensor is silent
        if lux < self.on_below_lx:
            return True
        if lux > self.off_above_lx:
            return False
        return was_on


class Step(_Frozen):
    """From this moment the level is `level` (reached over `ramp_min` minutes).

    The moment is a clock time ("23:00"; times before noon belong to the morning after) or a sun
    event with an offset ("sunset", -10 = ten minutes before sunset).
    """

    at: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM")
    event: SunEvent | None = None
    offset_min: Whole = Field(default=0, ge=-240, le=240)
    level: Whole = Field(ge=0, le=100)
    ramp_min: Number = Field(default=0, ge=0, le=120)
    photocell: Photocell | None = Field(
        default=None, description="until the next step, follow the photocell: `level` when on, 0 when off"
    )

    @model_validator(mode="after")
    def _one_moment(self) -> Step:
        if (self.at is None) == (self.event is None):
            raise ValueError("a step needs exactly one of `at` (HH:MM) or `event` (a sun event)")
        if self.at is not None and self.offset_min:
            raise ValueError("offset_min applies to sun events only")
        return self

    def describe(self) -> str:
        if self.at is not None:
            return self.at
        sign = "+" if self.offset_min >= 0 else "−"
        return f"{self.event} {sign}{abs(self.offset_min)} min" if self.offset_min else str(self.event)


class Program(_Frozen):
    """A night's dimming: steps in the order they happen, from the evening to the next morning.

    `constant_light_output`: (burning hours, output factor) points; LEDs dim as they age, so the
    commanded level is raised by the interpolated factor (capped at 100 %) to keep the light constant.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = Field(default="", max_length=200)
    steps: tuple[Step, ...] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description=f"at most {MAX_STEPS}: every lamp's level is decided from them, often",
    )
    constant_light_output: tuple[tuple[Number, Number], ...] = Field(default=(), max_length=100)

    @model_validator(mode="after")
    def _clo_curve(self) -> Program:
        hours = [h for h, _ in self.constant_light_output]
        if hours != sorted(hours) or len(set(hours)) != len(hours):
            raise ValueError("constant_light_output points must have increasing burning hours")
        if any(not 0.5 <= f <= 2.0 for _, f in self.constant_light_output):
            raise ValueError("constant_light_output factors must be between 0.5 and 2.0")
        return self

    def clo_factor(self, burning_hours: float | None) -> float:
        points = self.constant_light_output
        if not points or burning_hours is None:
            return 1.0
        if burning_hours <= points[0][0]:
            return points[0][1]
        for (h0, f0), (h1, f1) in itertools.pairwise(points):
            if burning_hours <= h1:
                return f0 + (f1 - f0) * (burning_hours - h0) / (h1 - h0)
        return points[-1][1]


class CalendarRule(_Frozen):
    """Use `program` on the nights this rule matches (exactly one kind of match per rule)."""

    program: str = Field(max_length=64)
    weekdays: tuple[Weekday, ...] | None = Field(default=None, min_length=1, max_length=7)
    date: Day | None = None
    date_from: Day | None = None
    date_to: Day | None = None
    holiday: str | None = Field(
        default=None, max_length=100, description='a holiday name, or "any" public holiday'
    )
    lunar_month: Whole | None = Field(default=None, ge=1, le=12)
    lunar_day: Whole | None = Field(default=None, ge=1, le=30)

    @model_validator(mode="after")
    def _one_kind(self) -> CalendarRule:
        kinds = [
            self.weekdays is not None,
            self.date is not None,
            self.date_from is not None or self.date_to is not None,
            self.holiday is not None,
            self.lunar_month is not None or self.lunar_day is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "a rule matches by exactly one of: weekdays, date, date range, holiday, lunar date"
            )
        if (self.date_from is None) != (self.date_to is None):
            raise ValueError("a date range needs both date_from and date_to")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        if (self.lunar_month is None) != (self.lunar_day is None):
            raise ValueError("a lunar date needs both lunar_month and lunar_day")
        return self


class Calendar(_Frozen):
    """Chooses the program per night: the first matching rule in declared order, else the default."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    default_program: str = Field(max_length=64)
    rules: tuple[CalendarRule, ...] = Field(
        default=(), max_length=MAX_RULES, description=f"at most {MAX_RULES}, tried in order every night"
    )
    holiday_country: str = Field(default="VN", pattern=r"^[A-Z]{2}$", description="ISO 3166 country code")

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, country: str) -> str:
        if country not in holidays.list_supported_countries():
            raise ValueError(f"no public holidays are known for country {country!r}")
        return country


class Override(_Frozen):
    """A manual level on a lamp or group from `start` until `expiry`; the highest priority wins."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    device_id: str | None = Field(default=None, max_length=64)
    group: str | None = Field(default=None, max_length=300)
    level: Whole = Field(ge=0, le=100)
    start: Instant
    expiry: Instant
    priority: Whole = Field(default=50, ge=0, le=100)
    reason: str = Field(default="", max_length=500, description="free text, shown as text (never as markup)")

    @model_validator(mode="after")
    def _valid(self) -> Override:
        if (self.device_id is None) == (self.group is None):
            raise ValueError("an override targets exactly one of device_id or group")
        if self.start.tzinfo is None or self.expiry.tzinfo is None:
            raise ValueError("start and expiry need a time zone")
        if self.expiry <= self.start:
            raise ValueError("the override expires before it starts")
        return self
