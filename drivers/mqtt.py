"""MQTT driver on aiomqtt: one supervised connection per broker, devices mapped by their profiles.

aiomqtt does not reconnect by design, so the link wraps each connection in a loop with capped,
jittered backoff and subscribes again after every reconnect. With `persistent_session` (the
default) the client keeps a fixed identifier, asks for no clean start and subscribes at QoS 1, so
the broker keeps messages for it while it is away — a broker or controller restart loses nothing.
The inbound queue is bounded; when it is full, messages are shed and counted, not queued forever.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.backoff import Backoff
from drivers.base import (
    AvailabilitySink,
    DeviceRef,
    LinkStats,
    ListeningDriver,
    Reading,
    ReadingSink,
    RejectionSink,
)
from drivers.options import MqttBroker
from drivers.payload import MqttLayout, PayloadError, TopicTemplate, decode_json
from drivers.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

#: messages handled between two turns given to the rest of the event loop
YIELD_EVERY = 100


@dataclass(slots=True)
class MqttStats(LinkStats):
    """LinkStats plus what a message link counts."""

    messages: int = 0
    shed: int = 0
    #: (device id or "(unknown)", reason) → count
    rejections: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Route:
    """One subscribed topic template and what arrives on it."""

    template: TopicTemplate
    layout: MqttLayout
    availability: bool


class MqttLink(ListeningDriver):
    """A broker connection carrying the telemetry and availability of many devices."""

    stats: MqttStats

    def __init__(self, link_id: str, broker: MqttBroker, devices: Sequence[DeviceRef]) -> None:
        self.link_id = link_id
        self.broker = broker
        self.stats = MqttStats()
        self._by_key: dict[str, DeviceRef] = {str(d.address): d for d in devices}
        self._routes: list[_Route] = []
        seen: set[str] = set()
        for dev in devices:
            layout = dev.profile.mqtt
            if layout is None:
                raise ValueError(f"{dev.device_id}: profile {dev.profile.name} has no MQTT layout")
            for template, availability in (
                (layout.telemetry_topic, False),
                (layout.availability_topic, True),
            ):
                if template is not None and template.template not in seen:
                    seen.add(template.template)
                    self._routes.append(_Route(template, layout, availability))
        self._rejections_log = RateLimitedLog(log, interval_s=60.0)

    @property
    def subscriptions(self) -> list[str]:
        group = self.broker.shared_group
        return [
            f"$share/{group}/{r.template.subscription}"
            if group and not r.availability
            else r.template.subscription
            for r in self._routes
        ]

    async def run(
        self, on_reading: ReadingSink, on_availability: AvailabilitySink, on_rejected: RejectionSink
    ) -> None:
        backoff = Backoff(base_s=self.broker.backoff_base_s, cap_s=self.broker.backoff_cap_s)
        taken = 0
        while True:
            try:
                async with self._client() as client:
                    for topic in self.subscriptions:
                        await client.subscribe(topic, qos=self.broker.qos)
                    self.stats.went_up()
                    backoff.reset()
                    log.info("link %s subscribed to %s", self.link_id, ", ".join(self.subscriptions))
                    async for message in client.messages:
                        await self._handle(message, on_reading, on_availability, on_rejected)
                        taken += 1
                        if taken % YIELD_EVERY == 0:
                            # A backlog (after the loop was busy, a reconnect's queued messages)
                            # comes without a pause: the rest of the loop gets a turn between.
                            await asyncio.sleep(0)
            except aiomqtt.MqttError as exc:
                self.stats.went_down()
                self.stats.connect_failures += 1
                self.stats.last_error = _describe(
                    exc, tls=bool(self.broker.tls_ca_file or self.broker.tls_cert_file)
                )
                delay = backoff.next_delay()
                self.stats.next_attempt_in_s = delay
                log.warning("link %s: %s; reconnecting in %.1f s", self.link_id, self.stats.last_error, delay)
                await asyncio.sleep(delay)
            finally:
                self.stats.went_down()

    async def _handle(
        self,
        message: aiomqtt.Message,
        on_reading: ReadingSink,
        on_availability: AvailabilitySink,
        on_rejected: RejectionSink,
    ) -> None:
        topic = message.topic.value
        self.stats.messages += 1
        for route in self._routes:
            key = route.template.device_key(topic)
            if key is None:
                continue
            device = self._by_key.get(key)
            if device is None:
                self._reject("(unknown)", "unknown_device", f"topic {topic}: no configured device {key!r}")
                return
            # models may share a topic (Tasmota's tele/<topic>/SENSOR): the device's own layout decodes
            layout = device.profile.mqtt
            assert layout is not None  # checked in __init__
            if (
                layout.availability_topic if route.availability else layout.telemetry_topic
            ) != route.template:
                continue
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            if route.availability:
                text = payload.decode("utf-8", "replace").strip()
                if text in (layout.payload_online, layout.payload_offline):
                    on_availability(device.device_id, text == layout.payload_online)
                else:
                    self._reject(device.device_id, "bad_availability", f"{topic}: {text[:40]!r}")
                    on_rejected(device.device_id, "bad_availability", f"{topic}: {text[:40]!r}")
                return
            try:
                ts, values, rejected = decode_json(
                    layout, payload, datetime.now(UTC), self.broker.timestamp_zone
                )
            except PayloadError as exc:
                self._reject(device.device_id, exc.reason, f"{topic}: {exc}")
                on_rejected(device.device_id, exc.reason, f"{topic}: {exc}")
                return
            await on_reading(Reading(device.device_id, ts, values, rejected=rejected))
            return
        self._reject("(unknown)", "unknown_topic", f"no route for topic {topic}")

    def _reject(self, device_id: str, reason: str, detail: str) -> None:
        self.stats.rejections[(device_id, reason)] += 1
        self._rejections_log.warning(
            (device_id, reason), "link %s: rejected message: %s", self.link_id, detail
        )

    def _client(self) -> aiomqtt.Client:
        b = self.broker
        tls: aiomqtt.TLSParameters | None = None
        if b.tls_ca_file or b.tls_cert_file:
            tls = aiomqtt.TLSParameters(
                ca_certs=b.tls_ca_file,
                certfile=b.tls_cert_file,
                keyfile=b.tls_key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        v5 = b.protocol == "5"
        kwargs: dict[str, Any] = {}
        if b.persistent_session:
            # a persistent session needs a stable identity, and no clean start
            kwargs["identifier"] = b.client_id or f"lamplighter-{self.link_id}"
            if v5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 7 * 24 * 3600
                kwargs["properties"] = props
                kwargs["clean_start"] = False
            else:
                kwargs["clean_session"] = False
        elif b.client_id:
            kwargs["identifier"] = b.client_id
        return aiomqtt.Client(
            b.host,
            b.port,
            username=b.username,
            password=b.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            keepalive=b.keepalive_s,
            tls_params=tls,
            queue_type=_shedding_queue(self.stats),
            max_queued_incoming_messages=b.max_queued_messages,
            timeout=b.connect_timeout_s,
            **kwargs,
        )


def _shedding_queue(stats: MqttStats) -> type[asyncio.Queue[aiomqtt.Message]]:
    class SheddingQueue(asyncio.Queue[aiomqtt.Message]):
        """Full means shed: count the message and drop it (aiomqtt would log every one)."""

        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.full():
                stats.shed += 1
                return
            super().put_nowait(item)

    return SheddingQueue


def _describe(exc: aiomqtt.MqttError, *, tls: bool = False) -> str:
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        text = str(exc)
        if "ot authori" in text or "credentials" in text.lower():
            return f"broker refused the connection: {text} (check username and password)"
        return f"broker refused the connection: {text}"
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return f"TLS failure: {text} (check tls_ca_file, tls_cert_file and tls_key_file)"
    if tls and ("timed out" in text or "lost" in text.lower()):
        # TLS 1.3 brokers refuse a missing or unknown client certificate after the handshake:
        # the client only sees the connection end, or no answer to CONNECT
        return f"TLS: the broker did not accept the session ({text}); check tls_cert_file and tls_key_file"
    return text
