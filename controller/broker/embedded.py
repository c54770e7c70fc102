"""The embedded MQTT broker (amqtt, in this process) for set-ups without Mosquitto or EMQX.

It speaks MQTT 3.1.1 only and binds loopback by default. It is not open: every client logs in
(the controller with a password made at each start, devices and readers from a Mosquitto-format
password file), each may publish and subscribe only where controller/broker/access.py allows, and
a message over `max_message_bytes` closes its connection before it is read into memory.

Two amqtt behaviours are corrected here, both found by a probe of the running controller:
- a client connecting was sent every retained message matching *any* client's subscriptions
  (MQTT 3.1.1 §3.3.1.3: only its own): a reader of one lamp's state got the devices' status topics;
- a message was read whole before anything could refuse it (100 MB messages: +285 MB RSS).
Production deployments point MQTT links at a real broker instead (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from controller.broker.access import (
    CONTROLLER_USER,
    BrokerRules,
    broker_rules,
    hash_password,
    read_password_file,
    verify_password,
)
from controller.config import EMBEDDED, ControllerSettings, MqttLinkConfig
from drivers.ratelog import RateLimitedLog

log = logging.getLogger(__name__)


@dataclass
class BrokerAccess:
    """What the embedded broker checks: password hashes per user, and the topic rules."""

    users: dict[str, str]  # user → password hash (Mosquitto `$7$` format)
    rules: BrokerRules
    allow_anonymous: bool = False
    refused: int = 0  # logins, publishes and subscriptions refused
    _good: set[tuple[str, bytes]] = field(default_factory=set)  # passwords already checked

    async def login(self, user: str | None, password: str | None) -> bool:
        if self.allow_anonymous:
            return True
        stored = self.users.get(user or "")
        if stored is None or password is None:
            return False
        key = (user or "", hashlib.sha256(password.encode()).digest())
        if key in self._good:
            return True
        # PBKDF2 on purpose takes a while: in a worker thread, so the event loop does not wait.
        if await asyncio.to_thread(verify_password, password, stored):
            self._good.add(key)
            return True
        return False


class EmbeddedBroker:
    """amqtt on host:port; `port=0` picks a free port, reported by `start()`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access: BrokerAccess,
        max_message_bytes: int = 262_144,
        max_connections: int = 10_000,
    ) -> None:
        self.host = host
        self.port = port
        self.access = access
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self._broker: _GuardedBroker | None = None

    async def start(self) -> int:
        if self.port == 0:
            with socket.socket() as s:  # ask the kernel for a free port, then hand it to amqtt
                s.bind((self.host, 0))
                self.port = int(s.getsockname()[1])
        config = {
            "listeners": {
                "default": {
                    "type": "tcp",
                    "bind": f"{self.host}:{self.port}",
                    "max_connections": self.max_connections,
                }
            },
            "plugins": {
                f"{__name__}.PasswordCheck": {"access": self.access},
                f"{__name__}.TopicCheck": {"access": self.access},
            },
        }
        self._broker = _GuardedBroker(config, max_message_bytes=self.max_message_bytes)
        await self._broker.start()
        log.info(
            "embedded MQTT broker on %s:%d (%d users; messages up to %d bytes)",
            self.host,
            self.port,
            len(self.access.users),
            self.max_message_bytes,
        )
        return self.port

    @property
    def oversized(self) -> int:
        """Connections closed for a message over the limit."""
        return self._broker.oversized if self._broker is not None else 0

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None


class MessageTooLarge(Exception):
    """A packet longer than the limit: its connection is closed unread."""


class _CappedReader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Refuses any single read longer than the limit: a packet's body is read in one go (amqtt reads
    a PUBLISH payload with one `read(n)` of its declared length), so this is the packet's size."""

    def __init__(self, inner: ReaderAdapter, limit: int, on_refused: Any) -> None:
        self.inner = inner
        self.limit = limit
        self.on_refused = on_refused

    async def read(self, n: int = -1) -> bytes:
        if n > self.limit:
            self.on_refused(n)
            raise MessageTooLarge(f"a packet of {n} bytes; at most {self.limit}")
        data: bytes = await self.inner.read(n)
        return data

    def feed_eof(self) -> None:
        self.inner.feed_eof()


class _Subscriptions(dict[str, Any]):
    """amqtt 0.12's broadcast loop awaits while it iterates the subscriptions: a client subscribing
    meanwhile changed the dict under it ("dictionary changed size during iteration", seen in the
    `make run` test at Ctrl-C). Iterating a snapshot keeps the loop going; the new subscription
    takes part from the next message."""

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))


class _GuardedBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    def __init__(self, config: dict[str, Any], *, max_message_bytes: int) -> None:
        super().__init__(config)
        self._subscriptions: _Subscriptions = _Subscriptions(getattr(self, "_subscriptions", {}))
        self.max_message_bytes = max_message_bytes
        self.oversized = 0
        self._oversized_log = RateLimitedLog(log, interval_s=60.0)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        def refused(size: int) -> None:
            self.oversized += 1
            peer = writer.get_extra_info("peername")
            self._oversized_log.warning(
                "oversized",
                "MQTT message of %d bytes from %s refused (at most %d)",
                size,
                peer,
                self.max_message_bytes,
            )
            writer.close()

        capped = _CappedReader(StreamReaderAdapter(reader), self.max_message_bytes, refused)
        # MessageTooLarge out of here: it was the CONNECT packet itself, and the connection is closed.
        with contextlib.suppress(MessageTooLarge):
            await self._client_connected(listener_name, capped, StreamWriterAdapter(writer))

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # Only for the client's own subscriptions: amqtt also calls this at connect for every
        # filter any client has subscribed to.
        subscribers = self._subscriptions.get(subscription[0], ())
        if any(s.client_id == session.client_id for s, _ in subscribers):
            await super()._publish_retained_messages_for_subscription(subscription, session)


class _AccessPlugin:
    """What both plugins share: the access object handed over in their config, a refusal log."""

    @dataclass
    class Config:
        access: Any = None

    def __init__(self, context: Any) -> None:
        super().__init__(context)  # type: ignore[call-arg]  # the amqtt base class takes the context
        self.access: BrokerAccess = context.config.access
        self._refusals = RateLimitedLog(log, interval_s=60.0)


class PasswordCheck(_AccessPlugin, BaseAuthPlugin):  # type: ignore[misc]
    """amqtt plugin: the user name and password of every CONNECT."""

    async def authenticate(self, *, session: Session) -> bool:
        if await self.access.login(session.username, session.password):
            return True
        self.access.refused += 1
        self._refusals.warning(
            "login", "MQTT login refused: user %r from %s", session.username, session.remote_address
        )
        return False


class TopicCheck(_AccessPlugin, BaseTopicPlugin):  # type: ignore[misc]
    """amqtt plugin: every PUBLISH and SUBSCRIBE against the user's topic rules."""

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if self.access.allow_anonymous or action == Action.RECEIVE:
            return True  # a subscription was checked when it was made
        user = session.username if session is not None else None
        rules = self.access.rules
        if not topic:
            return False
        ok = rules.may_publish(user, topic) if action == Action.PUBLISH else rules.may_subscribe(user, topic)
        if not ok:
            self.access.refused += 1
            what = "publish to" if action == Action.PUBLISH else "subscribe to"
            self._refusals.warning((user, action), "MQTT: %r may not %s %r", user, what, topic)
        return ok


@dataclass(frozen=True)
class EmbeddedBrokerRun:
    """A started embedded broker and what the rest of the process needs to use it."""

    broker: EmbeddedBroker
    #: the settings with the broker's real port, and the controller's login on every connection
    #: to it (links, outbound publisher, firmware)
    settings: ControllerSettings
    #: demo mode: device key → password for the simulated devices, reader → password to print
    device_passwords: dict[str, str]
    reader_passwords: dict[str, str]


async def start_embedded_broker(settings: ControllerSettings, *, demo: bool = False) -> EmbeddedBrokerRun:
    """Start the broker the config asks for. Users come from its password file; the controller's
    own login is made now (never stored); in demo mode each simulated device and the reader `ioc`
    get fresh passwords too."""
    cfg = settings.embedded_broker
    users = read_password_file(cfg.password_file) if cfg.password_file is not None else {}
    controller_password = secrets.token_urlsafe(24)
    users[CONTROLLER_USER] = hash_password(controller_password)
    devices: dict[str, str] = {}
    readers: dict[str, str] = {}
    if demo:
        rules = broker_rules(settings)
        devices = {user: secrets.token_urlsafe(16) for user, r in rules.users.items() if r.publish}
        readers = {"ioc": secrets.token_urlsafe(16)}
        settings = settings.model_copy(
            update={"embedded_broker": cfg.model_copy(update={"readers": (*cfg.readers, "ioc")})}
        )
        for user, password in {**devices, **readers}.items():
            users[user] = await asyncio.to_thread(hash_password, password)
    rules = broker_rules(settings, controller_users=[CONTROLLER_USER])
    unknown = sorted(u for u, r in rules.users.items() if r.publish != ("#",) and u not in users)
    if unknown and not cfg.allow_anonymous:
        log.warning(
            "embedded broker: %d devices or readers have no password in %s and cannot connect: %s%s",
            len(unknown),
            cfg.password_file or "([embedded_broker] password_file is not set)",
            ", ".join(unknown[:5]),
            " …" if len(unknown) > 5 else "",
        )
    access = BrokerAccess(users, rules, allow_anonymous=cfg.allow_anonymous)
    broker = EmbeddedBroker(
        cfg.host,
        cfg.port,
        access=access,
        max_message_bytes=cfg.max_message_bytes,
        max_connections=cfg.max_connections,
    )
    port = await broker.start()
    return EmbeddedBrokerRun(broker, _logged_in(settings, port, controller_password), devices, readers)


def _logged_in(settings: ControllerSettings, port: int, password: str) -> ControllerSettings:
    """The settings with the broker's port, and the controller's login on connections to it that
    name no user of their own."""
    login = {"username": CONTROLLER_USER, "password": password}
    links = tuple(
        link.model_copy(update=login)
        if isinstance(link, MqttLinkConfig) and link.host == EMBEDDED and not link.username
        else link
        for link in settings.links
    )
    out, fw = settings.outbound, settings.firmware
    if out.host == EMBEDDED and not out.username:
        out = out.model_copy(update=login)
    if fw.mqtt_host == EMBEDDED and not fw.mqtt_username:
        fw = fw.model_copy(update={"mqtt_username": CONTROLLER_USER, "mqtt_password": password})
    broker = settings.embedded_broker.model_copy(update={"port": port})
    return settings.model_copy(
        update={"links": links, "outbound": out, "firmware": fw, "embedded_broker": broker}
    )
