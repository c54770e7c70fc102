"""Live state of every device, kept in memory and flushed to the registry periodically.

Readings and poll failures update it; the API reads it. A device is `offline` after N
consecutive failed polls, `fault` while its last reading carries a status flag, `ok` otherwise,
and `unknown` until it has been polled once.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.db import json_value
from controller.registry import SavedState
from controller.vocabulary import DeviceState
from drivers.base import Reading
from drivers.errors import DriverError

log = logging.getLogger(__name__)

DEVICE_STATES: tuple[DeviceState, ...] = ("unknown", "ok", "fault", "offline")
#: per-device counters: successful polls, and failures by the driver error's kind.
#: lamp_on changes kept per device: enough for any sensible cycling threshold
SWITCHES_KEPT = 32
COUNTER_NAMES = ("polls_ok", "timeout", "exception", "decode", "unreachable", "driver_error", "rejected")


@dataclass(slots=True)
class DeviceStatus:
    device_id: str
    state: DeviceState = "unknown"
    last_seen: datetime | None = None
    #: the last Reading, or its stored document after a restart (see `last_reading_doc`): read as
    #: its JSON text (`SavedState`) and decoded the first time someone asks for it
    last_reading: Reading | dict[str, Any] | str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    lamp_on: bool | None = None  # as last reported
    #: recent lamp_on changes (time, new state), for the cycling-lamp detector; made on first change
    switches: deque[tuple[datetime, bool]] | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    #: when the device (or its last will) said it went offline
    offline_since: datetime | None = None
    #: when it last said it was back after such an outage: a device reports at its own pace after
    #: that, so its silence is counted from then, not from its last report before the outage
    back_online_at: datetime | None = None

    def last_reading_doc(self) -> dict[str, Any] | None:
        """The last reading as a JSON-ready document (built only when someone asks)."""
        last = self.last_reading
        if isinstance(last, Reading):
            return reading_document(last)
        return self._saved_doc() if isinstance(last, str) else last

    def last_values(self) -> Mapping[str, Any]:
        """The last reading's values only: what a map needs, without building the whole document."""
        last = self.last_reading
        if isinstance(last, Reading):
            return last.values
        doc = self._saved_doc() if isinstance(last, str) else last
        values: Mapping[str, Any] = doc.get("values", {}) if doc is not None else {}
        return values

    def _saved_doc(self) -> dict[str, Any] | None:
        """The saved document, decoded once (kept decoded); one that is not a JSON object is
        dropped with a warning, not raised at whoever asked (the API, a map, a flush)."""
        assert isinstance(self.last_reading, str)
        doc: dict[str, Any] | None = None
        try:
            decoded = json_value(self.last_reading)
        except ValueError as exc:
            decoded = exc
        if isinstance(decoded, dict):
            doc = decoded
        else:
            log.warning(
                "%s: its saved last reading is not a JSON object (%s); dropped", self.device_id, decoded
            )
        self.last_reading = doc
        return doc


class Fleet:
    """In-memory state of all devices (single event loop: no locking needed)."""

    def __init__(self, device_ids: Iterable[str], *, offline_after_failures: int = 3) -> None:
        self.offline_after = offline_after_failures
        self.devices: dict[str, DeviceStatus] = {d: DeviceStatus(d) for d in device_ids}
        self._dirty: set[str] = set()
        #: devices whose state changed since the alert service last looked (see `take_touched`)
        self._touched: set[str] = set()
        #: devices whose state, switch or level changed since the last announcement to the other
        #: instances (see `take_news`): a few per second, where `_dirty` is every reading
        self._news: set[str] = set()

    def __getitem__(self, device_id: str) -> DeviceStatus:
        return self.devices[device_id]

    def __contains__(self, device_id: object) -> bool:
        return device_id in self.devices

    def record_reading(self, reading: Reading) -> None:
        st = self.devices.get(reading.device_id)
        if st is None:
            return
        st.counters["polls_ok"] += 1
        st.consecutive_failures = 0
        st.last_seen = reading.ts
        previous = st.last_reading
        if isinstance(previous, str):  # the first reading since a start: the saved one decoded
            previous = st._saved_doc()
        st.last_reading = reading
        before = st.state
        if reading.rejected:
            st.counters["decode"] += len(reading.rejected)
        # A reading queued before the device's last will (the will is taken at once, readings go
        # through the ingest queue) does not bring it back online.
        if st.offline_since is None or reading.ts > st.offline_since:
            st.offline_since = None
            st.last_error = "; ".join(reading.rejected.values()) if reading.rejected else None
            st.state = "fault" if any(reading.status.values()) else "ok"
        if st.state != before or level_changed(previous, reading):
            self._news.add(st.device_id)
        lamp_on = reading.values.get("lamp_on")
        if isinstance(lamp_on, bool):
            if st.lamp_on is not None and lamp_on != st.lamp_on:
                if st.switches is None:
                    st.switches = deque(maxlen=SWITCHES_KEPT)
                st.switches.append((reading.ts, lamp_on))
            st.lamp_on = lamp_on
        self._dirty.add(st.device_id)
        self._touched.add(st.device_id)

    def record_failure(self, device_id: str, error: DriverError) -> None:
        st = self.devices.get(device_id)
        if st is None:
            return
        kind = error.kind if error.kind in st.counters else "driver_error"
        st.counters[kind] += 1
        st.consecutive_failures += 1
        st.last_error = str(error)
        if st.consecutive_failures >= self.offline_after and st.state != "offline":
            st.state = "offline"
            self._news.add(device_id)
        self._dirty.add(device_id)
        self._touched.add(device_id)

    def set_availability(self, device_id: str, online: bool) -> None:
        """A device that reports by itself said it is online, or its last will said it is not."""
        st = self.devices.get(device_id)
        if st is None:
            return
        self._news.add(device_id)
        if online:
            if st.offline_since is not None or st.state == "offline":
                st.back_online_at = datetime.now(UTC)
            st.offline_since = None
            if st.state == "offline":
                st.state = "unknown" if st.last_reading is None else "ok"
                st.last_error = None
        else:
            st.state = "offline"
            st.offline_since = datetime.now(UTC)
            st.last_error = "offline: last will or offline message from the device"
        self._dirty.add(device_id)
        self._touched.add(device_id)

    def record_rejection(self, device_id: str, reason: str, detail: str) -> None:
        """A message from the device could not be used at all (not JSON, too large, …)."""
        st = self.devices.get(device_id)
        if st is None:
            return
        st.counters["rejected"] += 1
        st.last_error = f"rejected message ({reason}): {detail}"
        self._dirty.add(device_id)

    def counts_by_state(self) -> dict[str, int]:
        counts = Counter(st.state for st in self.devices.values())
        return {s: counts.get(s, 0) for s in DEVICE_STATES}

    def take_news(self) -> list[str]:
        """Devices whose state, switch or level changed since the last call (to announce)."""
        news, self._news = self._news, set()
        return [d for d in news if d in self.devices]

    def take_touched(self) -> set[str]:
        """Devices with a new reading, failure or availability change since the last call."""
        touched, self._touched = self._touched, set()
        return touched

    # -- persistence ---------------------------------------------------------------------------
    def take_dirty_rows(self) -> list[dict[str, Any]]:
        """State rows (plain dicts, cheap to build for 10,000s of devices) changed since last call."""
        return self.rows(self.take_dirty_ids())

    def take_dirty_ids(self) -> list[str]:
        """Devices whose state changed since the last call (build their rows with `rows`)."""
        ids = [d for d in self._dirty if d in self.devices]
        self._dirty.clear()
        return ids

    def rows(self, device_ids: Iterable[str]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [self._row(self.devices[d], now) for d in device_ids]

    def mark_dirty(self, device_ids: Iterable[str]) -> None:
        """Save these states again at the next flush (the last one did not reach the database)."""
        self._dirty.update(device_ids)

    def restore(self, rows: Iterable[SavedState]) -> None:
        """Bring back the last known state after a restart (state is re-derived on next poll)."""
        for row in rows:
            st = self.devices.get(row.device_id)
            if st is None:
                continue
            st.state = row.state if row.state in DEVICE_STATES else "unknown"
            st.last_seen = row.last_seen
            st.last_reading = _saved_reading(row.last_reading_json)
            st.last_error = row.last_error
            st.counters.update({k: int(v) for k, v in row.counters.items() if k in st.counters})

    def merge_newer(self, rows: Iterable[SavedState]) -> None:
        """Take another instance's state of a device whose readings are spread over instances (an
        MQTT shared group) where it saw a later reading; the device counts as touched, so this
        instance's detectors look at it."""
        for row in rows:
            st = self.devices.get(row.device_id)
            seen = row.last_seen
            if st is None or seen is None or (st.last_seen is not None and seen <= st.last_seen):
                continue
            if st.state != "offline":  # availability reaches every instance directly
                st.state = row.state if row.state in DEVICE_STATES else "unknown"
            st.last_seen = seen
            st.last_reading = _saved_reading(row.last_reading_json)
            st.last_error = row.last_error
            self._touched.add(st.device_id)

    @staticmethod
    def _row(st: DeviceStatus, now: datetime) -> dict[str, Any]:
        return {
            "device_id": st.device_id,
            "state": st.state,
            "last_seen": st.last_seen,
            "last_reading": st.last_reading_doc(),
            "last_error": st.last_error,
            "counters": dict(st.counters),
            "updated_at": now,
        }


def _saved_reading(text: str | None) -> str | None:
    """A saved last reading's JSON text; None for a device saved before its first reading (the
    column holds JSON null then, not SQL NULL)."""
    return None if text is None or text == "null" else text


def reading_document(reading: Reading) -> dict[str, Any]:
    """A reading as a JSON-ready document (what the API shows as `last_reading`)."""
    return {
        "ts": reading.ts.isoformat(),
        "values": dict(reading.values),
        "status": dict(reading.status),
        "raw_status": reading.raw_status,
        "rejected": dict(reading.rejected),
    }


def level_changed(previous: Reading | dict[str, Any] | None, reading: Reading) -> bool:
    """Did the lamp's switch or dimming level change from the previous reading?"""
    if previous is None:
        return True
    # The reading values whose change other instances hear of at once (the rest at the state flush).
    # Spelled out, not a generator over the names: this runs at every reading.
    before = previous.values if isinstance(previous, Reading) else previous.get("values", {})
    now = reading.values
    switched = before.get("lamp_on") != now.get("lamp_on")
    return switched or before.get("dim_level_pct") != now.get("dim_level_pct")
