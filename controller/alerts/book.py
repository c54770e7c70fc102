"""Alerts: raised once, cleared once — debounce on the way up, hysteresis on the way down. Pure.

An alert's key is (device, kind). It is raised when its detector has fired `raise_after` evaluations
in a row, and cleared when it has been quiet `clear_after` evaluations in a row, so a value that
flaps around a threshold yields one alert, not a storm. Changes come back as events for delivery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from controller.faults import FaultKind

Severity = Literal["critical", "major", "minor", "warning"]
SEVERITY: dict[FaultKind, Severity] = {
    "lampFailure": "major",
    "dayBurning": "minor",
    "cyclingLamp": "minor",
    "lampPowerTooHigh": "minor",
    "lampPowerTooLow": "minor",
    "supplyVoltageTooHigh": "major",
    "supplyVoltageTooLow": "major",
    "relayFault": "major",
    "driverFault": "major",
    "overTemperature": "major",
    "communicationFailure": "major",
    "sensorStale": "warning",
    "sensorOutOfRange": "warning",
    "accessPointOffline": "major",
    "airQuality": "major",
}
SEVERITY_RANK: dict[Severity, int] = {"warning": 0, "minor": 1, "major": 2, "critical": 3}


@dataclass
class Alert:
    device_id: str
    kind: FaultKind
    severity: Severity
    raised_at: dt.datetime
    evidence: str
    #: the reading that tripped it (a JSON-ready document), when a reading did
    reading: dict[str, Any] | None = None
    id: int | None = None  # given when stored
    site: str = ""
    group: str = ""
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    cleared_at: dt.datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.device_id, self.kind

    @property
    def active(self) -> bool:
        return self.cleared_at is None


@dataclass(frozen=True)
class AlertEvent:
    change: Literal["raised", "cleared", "acknowledged"]
    alert: Alert


@dataclass
class AlertBook:
    raise_after: int = 1
    clear_after: int = 3
    active: dict[tuple[str, str], Alert] = field(default_factory=dict)
    _streak: dict[tuple[str, str], int] = field(default_factory=dict)  # + firing in a row, − quiet in a row
    _kinds_of: dict[str, set[str]] = field(default_factory=dict)  # device → kinds with a streak

    def evaluate(
        self,
        device_id: str,
        found: Mapping[FaultKind, str],
        now: dt.datetime,
        reading: dict[str, Any] | None = None,
        unjudged: Collection[str] = (),
    ) -> list[AlertEvent]:
        """Feed one evaluation of a device (every fault present now); return what changed.

        `unjudged`: kinds the detectors could not judge this time (no reading to judge them by):
        they neither raise nor count as quiet, so an open alert of that kind waits for evidence."""
        tracked = self._kinds_of.get(device_id)
        if not found and not tracked:
            return []  # the common case: a healthy device with nothing pending
        events: list[AlertEvent] = []
        tracked = self._kinds_of.setdefault(device_id, set())
        for kind in sorted(set(found) | tracked):
            if kind in unjudged and kind not in found:
                continue
            key = (device_id, kind)
            streak = self._streak.get(key, 0)
            step = 1 if kind in found else -1  # a run continues, or a new run starts
            streak = streak + step if streak * step > 0 else step
            self._streak[key] = streak
            tracked.add(kind)
            alert = self.active.get(key)
            if alert is None and streak >= self.raise_after:
                fault: FaultKind = kind  # type: ignore[assignment]
                alert = Alert(device_id, fault, SEVERITY[fault], now, found[fault], reading)
                self.active[key] = alert
                events.append(AlertEvent("raised", alert))
            elif alert is not None and streak <= -self.clear_after:
                alert.cleared_at = now
                del self.active[key]
                events.append(AlertEvent("cleared", alert))
                alert = None
            if alert is None and streak <= -self.clear_after:
                self._streak.pop(key, None)  # quiet and nothing raised: forget it
                tracked.discard(kind)
        if not tracked:
            self._kinds_of.pop(device_id, None)
        return events

    def pending(self, device_id: str) -> bool:
        """Whether the device has an alert open or a streak under way."""
        return device_id in self._kinds_of

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Active alerts from the store after a restart: they stay until quiet `clear_after` times."""
        for alert in alerts:
            self.active[alert.key] = alert
            self._streak[alert.key] = self.raise_after
            self._kinds_of.setdefault(alert.device_id, set()).add(alert.kind)

    def acknowledge(self, device_id: str, kind: str, now: dt.datetime, by: str | None = None) -> Alert | None:
        alert = self.active.get((device_id, kind))
        if alert is not None and alert.acknowledged_at is None:
            alert.acknowledged_at = now
            alert.acknowledged_by = by
        return alert
