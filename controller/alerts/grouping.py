"""Root causes: when a link (gateway, bus, cabinet, feeder) fails, its devices' alerts are one event.

Pure. Open alerts of one kind on one link that were raised in a burst — each within `window` of the
one before — make one group once the burst holds `min_devices` devices: "gw-lethaito: 52 devices
unreachable" instead of 52 rows. An alert of that kind raised well before the burst (a lamp that
failed an hour earlier) is not part of it and stays on its own. Group ids are stable while the
group lasts: the link, the kind and the first member's alert id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from controller.alerts.book import SEVERITY_RANK, Alert, Severity
from controller.faults import FaultKind


@dataclass(frozen=True)
class AlertGroup:
    id: str
    link: str
    kind: FaultKind
    severity: Severity
    site: str
    alerts: tuple[Alert, ...]
    devices_on_link: int

    @property
    def raised_at(self) -> dt.datetime:
        return self.alerts[0].raised_at

    @property
    def last_raised_at(self) -> dt.datetime:
        return self.alerts[-1].raised_at

    @property
    def state(self) -> Literal["active", "acknowledged", "cleared"]:
        if all(a.cleared_at is not None for a in self.alerts):
            return "cleared"
        if all(a.acknowledged_at is not None or a.cleared_at is not None for a in self.alerts):
            return "acknowledged"
        return "active"


@dataclass(frozen=True)
class Grouping:
    min_devices: int = 3
    window: dt.timedelta = dt.timedelta(minutes=5)

    def split(
        self, alerts: Iterable[Alert], link_of: Mapping[str, str], devices_on_link: Mapping[str, int]
    ) -> tuple[list[AlertGroup], list[Alert]]:
        """The groups, and the alerts in none of them (in the order given)."""
        given = list(alerts)
        by_cause: dict[tuple[str, str], list[Alert]] = defaultdict(list)
        for alert in given:
            link = link_of.get(alert.device_id)
            if link is not None:
                by_cause[(link, alert.kind)].append(alert)
        groups: list[AlertGroup] = []
        grouped: set[int] = set()
        for (link, _), members in by_cause.items():
            if len(members) < self.min_devices:
                continue
            for burst in self._bursts(sorted(members, key=lambda a: (a.raised_at, a.id or 0))):
                if len({a.device_id for a in burst}) >= self.min_devices:
                    groups.append(_group(link, burst, devices_on_link.get(link, len(burst))))
                    grouped.update(id(a) for a in burst)
        return groups, [a for a in given if id(a) not in grouped]

    def _bursts(self, members: Sequence[Alert]) -> Iterable[list[Alert]]:
        burst = [members[0]]
        for alert in members[1:]:
            if alert.raised_at - burst[-1].raised_at > self.window:
                yield burst
                burst = []
            burst.append(alert)
        yield burst


def _group(link: str, burst: list[Alert], on_link: int) -> AlertGroup:
    first = burst[0]
    worst = max((a.severity for a in burst), key=SEVERITY_RANK.__getitem__)
    return AlertGroup(
        id=f"{link}:{first.kind}:{first.id or 0}",
        link=link,
        kind=first.kind,
        severity=worst,
        site=first.site,
        alerts=tuple(burst),
        devices_on_link=on_link,
    )


def severity_then_newest(entry: AlertGroup | Alert) -> tuple[int, float]:
    """Sort key: the most severe first, then the newest."""
    at = entry.last_raised_at if isinstance(entry, AlertGroup) else entry.raised_at
    return -SEVERITY_RANK[entry.severity], -at.timestamp()


GroupChange = Literal["group_raised", "group_updated", "group_cleared"]


@dataclass
class RootCauses:
    """Which groups the open alerts form now, and how that changed since the last look: what the
    delivery channels are told."""

    grouping: Grouping
    link_of: Mapping[str, str]
    devices_on_link: Mapping[str, int]

    def __post_init__(self) -> None:
        self.groups: dict[str, AlertGroup] = {}
        self._member_of: dict[int, str] = {}  # alert id → group id

    def member_of(self, alert: Alert) -> str | None:
        return self._member_of.get(alert.id or 0)

    def update(self, open_alerts: Iterable[Alert]) -> list[tuple[GroupChange, AlertGroup]]:
        groups, _ = self.grouping.split(open_alerts, self.link_of, self.devices_on_link)
        groups = [self._same_id(g) for g in groups]
        now = {g.id: g for g in groups}
        changes: list[tuple[GroupChange, AlertGroup]] = []
        for gid, old in self.groups.items():
            if gid not in now:
                changes.append(("group_cleared", old))
        for gid, g in now.items():
            before = self.groups.get(gid)
            if before is None:
                changes.append(("group_raised", g))
            elif {a.id for a in before.alerts} != {a.id for a in g.alerts} or before.state != g.state:
                changes.append(("group_updated", g))
        cleared_members = {a.id or 0: gid for gid, g in self.groups.items() for a in g.alerts}
        self.groups = now
        # members of a group that just ended keep its id for their own "cleared" message
        self._member_of = cleared_members | {a.id or 0: g.id for g in groups for a in g.alerts}
        return changes

    def _same_id(self, group: AlertGroup) -> AlertGroup:
        """A group that goes on after its first member cleared keeps the id it was announced by."""
        members = {a.id for a in group.alerts}
        for before in self.groups.values():
            same_cause = (before.link, before.kind) == (group.link, group.kind)
            if same_cause and members & {a.id for a in before.alerts}:
                return dataclasses.replace(group, id=before.id)
        return group
