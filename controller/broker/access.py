"""Who may do what on an MQTT broker of ours: one rule book for the embedded broker and for Mosquitto.

Derived from the configuration, never written by hand:
- **the controller** (its MQTT links, the outbound state publisher, the firmware link): every topic;
- **each MQTT device**, user name = its key (the `{device}` of its topics): publishes only its own
  telemetry and availability topics and its firmware replies (`<fw prefix>/<key>/up`), subscribes
  only to its firmware frames (`<fw prefix>/<key>/down`);
- **readers** (the IOC): subscribe to the outbound topics (`<prefix>/#`) and publish nothing.

The embedded broker enforces these rules itself (controller/broker.py); `lamplighter broker acl`
prints them as a Mosquitto `acl_file`, tested against the real Mosquitto. Passwords live in a
Mosquitto `password_file` (PBKDF2-SHA512, `$7$`), made by `mosquitto_passwd` or `lamplighter broker
passwd`, and read by both brokers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller.config import EMBEDDED, ControllerSettings, MqttLinkConfig

#: the controller's own user on the embedded broker when its links name none (made at each start)
CONTROLLER_USER = "lamplighter"
#: PBKDF2 rounds for hashes we write. Mosquitto's own default is 101; every check costs the broker
#: this much CPU (the embedded broker checks in a worker thread, and remembers a good password).
PBKDF2_ROUNDS = 20_000


@dataclass(frozen=True)
class TopicRules:
    """Topic filters a user may publish to and subscribe to (`+` and `#` as in MQTT)."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()


@dataclass(frozen=True)
class BrokerRules:
    users: Mapping[str, TopicRules] = field(default_factory=dict)

    def may_publish(self, user: str | None, topic: str) -> bool:
        rules = self.users.get(user or "")
        return rules is not None and any(_matches(topic, allowed) for allowed in rules.publish)

    def may_subscribe(self, user: str | None, topic_filter: str) -> bool:
        """A filter is allowed when every topic it could match is allowed: it must be as narrow as
        an allowed one (`#` and `+` in it count only where the allowed filter has them too)."""
        rules = self.users.get(user or "")
        if rules is None:
            return False
        if topic_filter.startswith("$share/"):  # shared subscriptions: the topic filter after the group
            topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
        return any(_narrower(topic_filter, allowed) for allowed in rules.subscribe)


def broker_rules(
    settings: ControllerSettings, *, links: Iterable[str] | None = None, controller_users: Iterable[str] = ()
) -> BrokerRules:
    """The rules for the broker that `links` (default: those on the embedded broker) connect to."""
    wanted = (
        set(links)
        if links is not None
        else {
            link.id for link in settings.links if isinstance(link, MqttLinkConfig) and link.host == EMBEDDED
        }
    )
    users: dict[str, TopicRules] = {}
    fw = settings.firmware.topic_prefix.rstrip("/")
    controllers = set(controller_users)
    for link in settings.links:
        if isinstance(link, MqttLinkConfig) and link.id in wanted and link.username:
            controllers.add(link.username)
    for extra in (settings.outbound.username, settings.firmware.mqtt_username):
        if extra:
            controllers.add(extra)
    for device in settings.all_devices():
        if device.link not in wanted:
            continue
        layout = settings.profile(device.profile).mqtt
        if layout is None:
            continue
        key = device.key or device.id
        publish = [t.for_device(key) for t in (layout.telemetry_topic, layout.availability_topic) if t]
        users[key] = TopicRules(publish=(*publish, f"{fw}/{key}/up"), subscribe=(f"{fw}/{key}/down",))
    outbound = settings.outbound.topic_prefix.rstrip("/")
    for reader in settings.embedded_broker.readers:
        users[reader] = TopicRules(subscribe=(f"{outbound}/#",))
    for user in controllers:
        users[user] = TopicRules(publish=("#",), subscribe=("#",))
    return BrokerRules(users)


def mosquitto_acl(rules: BrokerRules) -> str:
    """The rules as a Mosquitto `acl_file` (deny by default: a user gets only what is listed)."""
    lines = ["# Made by `lamplighter broker acl` from the configuration; do not edit by hand.", ""]
    for user in sorted(rules.users):
        r = rules.users[user]
        lines.append(f"user {user}")
        both = [t for t in r.publish if t in r.subscribe]
        lines += [f"topic readwrite {t}" for t in both]
        lines += [f"topic write {t}" for t in r.publish if t not in both]
        lines += [f"topic read {t}" for t in r.subscribe if t not in both]
        if "#" in r.subscribe:
            lines.append("topic read $share/#")  # shared subscriptions ([[links]] shared_group)
        lines.append("")
    return "\n".join(lines)


# -- passwords (Mosquitto's password_file) ------------------------------------------------------------


class PasswordFileError(ValueError):
    """A password file that cannot be used; the message names the file and line."""


def read_password_file(path: Path) -> dict[str, str]:
    """user → hash from a Mosquitto password file (`user:$7$…` lines, `#` comments)."""
    users: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PasswordFileError(f"{path}: cannot read: {exc.strerror}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, digest = line.partition(":")
        if not sep or not user or not digest.startswith(("$6$", "$7$")):
            raise PasswordFileError(
                f"{path}:{number}: expected user:$7$… (mosquitto_passwd or `lamplighter broker passwd`)"
            )
        users[user] = digest
    return users


def hash_password(password: str, *, rounds: int = PBKDF2_ROUNDS) -> str:
    """`$7$<rounds>$<salt>$<hash>`: PBKDF2-HMAC-SHA512, as `mosquitto_passwd` writes it."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"$7${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Check against `$7$` (PBKDF2-SHA512) or `$6$` (SHA-512 of password and salt) hashes."""
    try:
        parts = stored.split("$")
        if parts[1] == "7":
            rounds, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
        elif parts[1] == "6":
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except (IndexError, ValueError):
        return False
    return hmac.compare_digest(got, digest)


def set_password(path: Path, user: str, password: str) -> None:
    """Add or replace `user` in a password file, written privately (0600) and atomically."""
    if ":" in user or not user.strip() or user != user.strip():
        raise PasswordFileError(f"user name {user!r}: no colon, no surrounding spaces")
    users = read_password_file(path) if path.exists() else {}
    users[user] = hash_password(password)
    text = "".join(f"{u}:{h}\n" for u, h in users.items())
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temp, path)


# -- topic filters ------------------------------------------------------------------------------------


def _matches(topic: str, topic_filter: str) -> bool:
    """MQTT matching of a topic name against a filter (topics starting with $ need an explicit $)."""
    if topic.startswith("$") and not topic_filter.startswith("$"):
        return False
    parts, pattern = topic.split("/"), topic_filter.split("/")
    for i, level in enumerate(pattern):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(parts) == len(pattern)


def _narrower(requested: str, allowed: str) -> bool:
    """Every topic `requested` can match is matched by `allowed`."""
    req, alw = requested.split("/"), allowed.split("/")
    for i, level in enumerate(alw):
        if level == "#":
            return not (requested.startswith("$") and not allowed.startswith("$"))
        if i >= len(req):
            return False
        if level == "+":
            if req[i] == "#":
                return False
            continue
        if req[i] != level:
            return False
    return len(req) == len(alw)
