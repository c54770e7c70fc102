"""What the controller publishes for the IOC and other systems over MQTT.

`lamplighter/<site>/<device>/state` (retained, QoS 1): the device's live state, published at most
once per `state_interval_s` per device and only when something changed since the last message —
so a change is out within one interval, and a quiet city sends nothing.
`lamplighter/<site>/<device>/alert` (QoS 1, not retained): every alert event, raised, acknowledged
or cleared, as soon as it happens (the current set is `GET /api/v1/alerts`).
`lamplighter/<site>/events`: controller events (`controller_started`).
Payload shapes are the pydantic models below; their JSON Schemas are in docs/mqtt.md (printed by
`python -m controller.outbound`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import aiomqtt
from pydantic import BaseModel, Field, TypeAdapter

from controller.alerts.messages import AlertGroupMessage, AlertMessage, AnyAlertMessage
from controller.device import Device
from controller.fleet import DeviceStatus, Fleet
from controller.metrics import ControllerMetrics
from controller.vocabulary import DeviceKind
from drivers.backoff import Backoff

log = logging.getLogger(__name__)


class DeviceStateMessage(BaseModel):
    """Retained on `lamplighter/<site>/<device>/state`."""

    device_id: str
    site: str
    group: str
    kind: DeviceKind
    state: Literal["unknown", "ok", "fault", "offline"]
    last_seen: datetime | None = Field(description="time of the last reading, UTC")
    values: dict[str, float | int | bool | str] = Field(description="last reading, unit-named fields")
    status: dict[str, bool] = Field(description="status flags of the last reading")
    last_error: str | None
    published_at: datetime


class ControllerEvent(BaseModel):
    """On `lamplighter/<site>/events`."""

    event: Literal["controller_started"]
    site: str
    at: datetime
    devices: int


class StatePublisher:
    """Publishes changed device states (and controller events) to one broker, reconnecting as needed."""

    def __init__(
        self,
        fleet: Fleet,
        devices: dict[str, Device],
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        topic_prefix: str = "lamplighter",
        state_interval_s: float = 1.0,
        alert_queue_size: int = 100_000,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.fleet = fleet
        self.devices = devices
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.prefix = topic_prefix.rstrip("/")
        self.interval_s = state_interval_s
        self.published = 0
        self.connected = False
        self._sent: dict[str, tuple[Any, ...]] = {}
        self.metrics = metrics
        self.alerts: asyncio.Queue[AnyAlertMessage] = asyncio.Queue(alert_queue_size)
        self.alerts_published = 0
        self.alerts_dropped = 0
        self._unsent: AnyAlertMessage | None = None  # taken from the queue, not yet acknowledged

    def offer(self, messages: Sequence[AnyAlertMessage]) -> None:
        """The alert channel: queue without waiting; past the bound, drop and count (the API keeps all)."""
        for msg in messages:
            try:
                self.alerts.put_nowait(msg)
            except asyncio.QueueFull:
                self.alerts_dropped += 1
                if self.metrics is not None:
                    self.metrics.alert_deliveries.labels("mqtt", "dropped").inc()

    async def delivered(self) -> None:
        """Until every alert offered so far has been acknowledged by the broker (a stop waits, bounded)."""
        await self.alerts.join()

    def count_undelivered(self) -> None:
        """After the publisher has stopped: the alerts the broker never had, counted and said (the
        API and the other channels have them; MQTT has no dead letters)."""
        left = self.alerts.qsize() + (self._unsent is not None)
        if left:
            self.alerts_dropped += left
            if self.metrics is not None:
                self.metrics.alert_deliveries.labels("mqtt", "dropped").inc(left)
            log.warning("outbound MQTT: %d alert messages not published before the stop", left)

    def alert_topic(self, msg: AnyAlertMessage) -> str:
        """A device's alert on its own topic; a root-cause group on the site's events."""
        if isinstance(msg, AlertMessage):
            return f"{self.prefix}/{msg.site}/{msg.device_id}/alert"
        return f"{self.prefix}/{msg.site}/events"

    def state_topic(self, row: Device) -> str:
        return f"{self.prefix}/{row.site_id}/{row.id}/state"

    async def run(self) -> None:
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    username=self.username,
                    password=self.password,
                    identifier=None,
                    timeout=10,
                ) as client:
                    self.connected = True
                    backoff.reset()
                    await self._started(client)
                    while True:
                        await self._publish_changes(client)
                        await self._publish_alerts(client, self.interval_s)
            except aiomqtt.MqttError as exc:
                self.connected = False
                delay = backoff.next_delay()
                log.warning(
                    "outbound MQTT %s:%d: %s; reconnecting in %.1f s", self.host, self.port, exc, delay
                )
                await asyncio.sleep(delay)
            finally:
                self.connected = False

    async def _publish_changes(self, client: aiomqtt.Client) -> None:
        now = datetime.now(UTC)
        # a copy: the devices this instance serves change while it awaits (a shard taken over)
        for device_id, row in list(self.devices.items()):
            st = self.fleet.devices.get(device_id)
            if st is None:
                continue
            fingerprint = (st.state, st.last_seen, st.last_error)
            if self._sent.get(device_id) == fingerprint:
                continue
            message = state_message(row, st, now)
            await client.publish(self.state_topic(row), message.model_dump_json(), qos=1, retain=True)
            self._sent[device_id] = fingerprint
            self.published += 1

    async def _publish_alerts(self, client: aiomqtt.Client, wait_s: float) -> None:
        """Publish alert events as they come, for up to `wait_s` (then device states get their turn)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            msg = self._unsent
            if msg is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    msg = await asyncio.wait_for(self.alerts.get(), remaining)
                except TimeoutError:
                    return
                self._unsent = msg  # kept until the broker has it, so a reconnect does not lose it
            await client.publish(self.alert_topic(msg), msg.model_dump_json(), qos=1)
            self._unsent = None
            self.alerts.task_done()
            self.alerts_published += 1
            if self.metrics is not None:
                self.metrics.alert_deliveries.labels("mqtt", "sent").inc()

    async def _started(self, client: aiomqtt.Client) -> None:
        sites = {row.site_id for row in self.devices.values()}
        for site in sorted(sites):
            count = sum(r.site_id == site for r in self.devices.values())
            payload = ControllerEvent(
                event="controller_started", site=site, at=datetime.now(UTC), devices=count
            )
            await client.publish(f"{self.prefix}/{site}/events", payload.model_dump_json(), qos=1)


def state_message(row: Device, st: DeviceStatus, now: datetime) -> DeviceStateMessage:
    doc = st.last_reading_doc() or {}
    return DeviceStateMessage(
        device_id=row.id,
        site=row.site_id,
        group=row.group_path,
        kind=row.kind,
        state=st.state,
        last_seen=st.last_seen,
        values=doc.get("values", {}),
        status=doc.get("status", {}),
        last_error=st.last_error,
        published_at=now,
    )


def json_schemas() -> dict[str, Any]:
    """JSON Schemas of every outbound payload, for docs/mqtt.md."""
    return {
        "lamplighter/<site>/<device>/state": DeviceStateMessage.model_json_schema(),
        "lamplighter/<site>/<device>/alert": AlertMessage.model_json_schema(),
        # the controller's own events, and root-cause alert groups (docs/alerts.md)
        "lamplighter/<site>/events": TypeAdapter(ControllerEvent | AlertGroupMessage).json_schema(),
    }


if __name__ == "__main__":
    print(json.dumps(json_schemas(), indent=2))
