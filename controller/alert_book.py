"""Alerts: raised once, cleared once — debounce on the way up, hysteresis on the way down. Pure.

An alert's key is (device, kind). It is raised when its detector has fired `raise_after` evaluations
in a row, and cleared when it has been quiet `clear_after` evaluations in a row, so a value that
flaps around a threshold yields one alert, not a storm. Changes come back as events for delivery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from controller.detectors import FaultKind

Severity = Literal["critical", "major", "minor", "warning"]
SEVERITY: dict[str, Severity] = {
    "lampFailure": "major",
    "dayBurning": "minor",
    "cyclingLamp": "minor",
    "lampPowerTooHigh": "minor",
    "lampPowerTooLow": "minor",
    "supplyVoltageTooHigh": "major",
    "supplyVoltageTooLow": "major",
    "relayFault": "major",
    "driverFault": "major",
    "communicationFailure": "major",
    "sensorStale": "warning",
    "sensorOutOfRange": "warning",
    "accessPointOffline": "major",
}


@dataclass
class Alert:
    device_id: str
    kind: FaultKind
    severity: Severity
    raised_at: dt.datetime
    evidence: str
    acknowledged_at: dt.datetime | None = None
    cleared_at: dt.datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.device_id, self.kind

    @property
    def active(self) -> bool:
        return self.cleared_at is None


@dataclass(frozen=True)
class AlertEvent:
    change: Literal["raised", "cleared"]
    alert: Alert


@dataclass
class AlertBook:
    raise_after: int = 2
    clear_after: int = 3
    active: dict[tuple[str, str], Alert] = field(default_factory=dict)
    _streak: dict[tuple[str, str], int] = field(default_factory=dict)  # + firing in a row, − quiet in a row

    def evaluate(self, device_id: str, found: Mapping[FaultKind, str], now: dt.datetime) -> list[AlertEvent]:
        """Feed one evaluation of a device (every fault present now); return what changed."""
        events: list[AlertEvent] = []
        kinds = set(found) | {k for (d, k) in self._streak if d == device_id}
        for kind in sorted(kinds):
            key = (device_id, kind)
            streak = self._streak.get(key, 0)
            step = 1 if kind in found else -1  # a run continues, or a new run starts
            streak = streak + step if streak * step > 0 else step
            self._streak[key] = streak
            alert = self.active.get(key)
            if alert is None and streak >= self.raise_after:
                fault = cast(FaultKind, kind)
                alert = Alert(device_id, fault, SEVERITY[kind], now, found[fault])
                self.active[key] = alert
                events.append(AlertEvent("raised", alert))
            elif alert is not None and streak <= -self.clear_after:
                alert.cleared_at = now
                del self.active[key]
                events.append(AlertEvent("cleared", alert))
            if alert is None and streak <= -self.clear_after:
                self._streak.pop(key, None)  # quiet and nothing raised: forget it
        return events

    def acknowledge(self, device_id: str, kind: str, now: dt.datetime) -> Alert | None:
        alert = self.active.get((device_id, kind))
        if alert is not None and alert.acknowledged_at is None:
            alert.acknowledged_at = now
        return alert
