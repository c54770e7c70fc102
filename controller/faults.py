"""The kinds of fault the controller detects and alerts on, and the limits it judges them by.

One vocabulary for the detectors, the alert book, the configuration (webhook filters, per-group
thresholds), the API and the translations. `Thresholds` is declared here once: device profiles
(`[alerts]`) and the config (`[[alert_thresholds]]`) set some of its fields, and the fields a
document set (`overrides()`) are what it changes; the rest are inherited.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "lampFailure",
    "dayBurning",
    "cyclingLamp",
    "lampPowerTooHigh",
    "lampPowerTooLow",
    "supplyVoltageTooHigh",
    "supplyVoltageTooLow",
    "relayFault",
    "driverFault",
    "overTemperature",
    "communicationFailure",
    "sensorStale",
    "sensorOutOfRange",
    "accessPointOffline",
    "airQuality",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
#: alerts about a place, not a device: a district's air (controller/air_watch.py)
AREA_KINDS: frozenset[str] = frozenset({"airQuality"})
#: open alerts after which a lamp no longer gives the light it should (availability counts them)
DARKENING: frozenset[str] = frozenset(
    {"lampFailure", "driverFault", "relayFault", "communicationFailure", "cyclingLamp"}
)


class Thresholds(BaseModel):
    """Limits the detectors apply; every field can be set in a device profile and per group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    voltage_min_v: float = Field(default=207.0, gt=0, description="230 V −10 %")
    voltage_max_v: float = Field(default=253.0, gt=0, description="230 V +10 %")
    power_tolerance: float = Field(
        default=0.25, gt=0, lt=1, description="±25 % of the power the level and rating predict"
    )
    lamp_failure_ratio: float = Field(
        default=0.2, gt=0, lt=1, description="below 20 % of the predicted power: the lamp is out"
    )
    standby_w: float = Field(default=2.0, ge=0, description="what an unlit controller may draw")
    cycling_toggles: int = Field(default=4, ge=2, description="on/off changes within the window …")
    cycling_window_s: float = Field(default=600.0, gt=0)
    missed_polls: int = Field(default=3, ge=1, description="comms loss by the third missed poll")
    stale_after_s: float = Field(
        default=900.0, gt=0, description="a sensor or access point silent this long is stale"
    )
    settle_s: float = Field(
        default=2.0, ge=0, description="readings this soon after a command are not judged against it"
    )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(Thresholds.model_fields)

    def overrides(self) -> dict[str, float]:
        """The thresholds this document set (not those it inherits)."""
        return {k: getattr(self, k) for k in self.model_fields_set if k in Thresholds.model_fields}
