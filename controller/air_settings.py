"""`[air]`: which air quality index, what a district is, when a district's alert is raised and cleared
(docs/air.md). Apart from controller/air_figures.py, which reads the store: the config reads this."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.air_index import Scheme

#: an hour's mean is taken from quarter-hour means
QUARTERS = 4


class AirSettings(BaseModel):
    """`[air]`: which index, what a district is, when a district's alert is raised and cleared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    index: Scheme = Field(default="vn_aqi", description="vn_aqi (Decision 1459/QĐ-TCMT) or us_epa")
    district_depth: int = Field(
        default=2, ge=1, le=10, description="a district is this many first levels of the group path"
    )
    alert_level: int = Field(
        default=4, ge=2, le=6, description="a district's alert is raised on entering this level (4: bad)"
    )
    hysteresis: int = Field(
        default=10, ge=0, le=100, description="… and cleared this many index points below that level"
    )
    hour_s: int = Field(
        default=3600,
        ge=4,
        le=3600,
        description="the hour the means are taken over: 3600, as the regulations say. Shorter only "
        "to watch the whole path work in a test or a demonstration; every figure then means 'per hour_s'",
    )

    @field_validator("hour_s")
    @classmethod
    def _quarters(cls, v: int) -> int:
        if v % QUARTERS:
            raise ValueError(f"hour_s must divide into {QUARTERS} whole quarters, not {v}")
        return v
