"""The configuration's sections other than the city itself: API, cluster, databases, broker, alerts,
firmware (docs/configuration.md lists every key). Each section is a frozen pydantic model that
refuses unknown keys.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.faults import FAULT_KINDS, Thresholds

#: an MQTT link's host that means "the controller's embedded broker"
EMBEDDED = "embedded"
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_GROUP = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"


def _http_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{v!r} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"{v!r}: {exc}") from None
    return v


#: an http(s) URL with a host (and a valid port, if it names one)
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class ConfigError(ValueError):
    """The configuration file is invalid; the message lists every problem with file:line: key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Strict):
    """`[api]`: where the API listens and how it guards itself (docs/api.md, "Access")."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    token_ttl_s: int = Field(default=900, ge=60, le=86400, description="life of a login token")
    cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to call the API; empty = none"
    )
    rate_limit_per_s: float = Field(
        default=50.0, ge=0, description="requests per second per credential (or per address); 0 = off"
    )
    rate_limit_burst: int = Field(default=200, ge=1)
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger bodies get 413 (firmware uploads have their own cap)"
    )
    lockout_after: int = Field(default=5, ge=1, description="failed logins before a wait is imposed")
    lockout_s: float = Field(default=30.0, gt=0, description="first wait; doubles per further failure")
    lockout_max_s: float = Field(default=900.0, gt=0)
    max_event_streams: int = Field(default=200, ge=1, description="live event streams open at once")
    max_event_streams_per_client: int = Field(default=5, ge=1, description="… per API key or user")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-For is believed; "
        "empty (the default) believes no one, so a client cannot choose its own address",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network like 10.0.0.0/8") from None
        return proxies

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                raise ValueError(f"{origin!r} is not an origin like https://ioc.example.city")
        return origins


class ClusterSettings(_Strict):
    """`[cluster]`: several controller instances serving one city (docs/deployment.md).

    Each instance owns a shard of the links: `links` names them, or else instance `instance` of
    `instances` owns the links whose id hashes (CRC-32) to it. Every instance uses the same config
    file and database; each polls, commands, schedules and watches only the devices of its links,
    and its API answers for the whole city (other instances' device states come from the database).
    """

    instance: int = Field(default=0, ge=0, description="this instance's number, 0-based")
    instances: int = Field(default=1, ge=1, le=1000)
    links: tuple[str, ...] | None = Field(default=None, description="the links this instance owns")
    takeover: bool | None = Field(
        default=None,
        description="hold each instance's links as a lease in PostgreSQL and take over a dead "
        "instance's links automatically; default: on with several instances or a standby (on "
        "PostgreSQL). One instance with a standby: set it true on the instance too",
    )
    lease_s: float = Field(
        default=6.0,
        ge=1.0,
        le=300.0,
        description="lease length: a dead instance's links are served again within about "
        "lease_s plus the time to start serving them; a holder cut off from the database "
        "stops commanding within lease_s",
    )
    standby: bool = Field(
        default=False, description="serve no links of its own: take over those of instances that die"
    )

    @model_validator(mode="after")
    def _instance_in_range(self) -> ClusterSettings:
        if self.instance >= self.instances:
            raise ValueError(
                f"instance {self.instance} of {self.instances}: numbers run 0..{self.instances - 1}"
            )
        return self


class DatabaseSettings(_Strict):
    url: str = "sqlite+aiosqlite:///./var/lamplighter.db"


class InfluxSettings(_Strict):
    """`[telemetry.influxdb]`: where readings go when `backend = "influxdb"` (docs/telemetry.md)."""

    url: HttpUrl = Field(default="http://127.0.0.1:8086", description="the server's base URL")
    write_endpoint: Literal["v2", "v1"] = Field(
        default="v2", description="v2: /api/v2/write (InfluxDB 2.x, 3.x, 1.8+); v1: /write (InfluxDB 1.x)"
    )
    database: str = Field(default="lamplighter", min_length=1, description="v1 database; v2 bucket")
    retention_policy: str | None = None
    org: str = Field(default="-", description="v2 organisation (InfluxDB 1.8 and 3.x ignore it)")
    token: str | None = Field(default=None, description="v2 API token; also sent on /query")
    username: str | None = None
    password: str | None = None
    measurement: str = Field(default="lamplighter", pattern=r"^[A-Za-z0-9_.-]+$")
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="points per HTTP write")
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    gzip: bool = True
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_cap_s: float = Field(default=30.0, gt=0)
    buffer_dir: str = Field(default="./var/influx-buffer", description="points kept while it is down")
    buffer_max_mb: float = Field(default=512, gt=0, description="past this, the oldest points are dropped")

    @field_validator("url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        return v.rstrip("/")  # paths are appended to it


class TelemetrySettings(_Strict):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    url: str = Field(default="sqlite+aiosqlite:///./var/telemetry.db", description="sqlite backend")
    influxdb: InfluxSettings = InfluxSettings()


class PollerSettings(_Strict):
    queue_size: int = Field(default=10_000, ge=10)
    batch_size: int = Field(default=1_000, ge=1)
    ingest_linger_s: float = Field(default=0.1, ge=0, le=5)
    offline_after_failures: int = Field(default=3, ge=1)
    state_flush_interval_s: float = Field(default=15.0, gt=0)


class SimulatorSettings(_Strict):
    control_host: str = "127.0.0.1"
    control_port: int = Field(default=8099, ge=1, le=65535)
    seed: int = 1
    mqtt_interval_s: float = Field(default=10.0, gt=0, description="how often simulated MQTT devices publish")
    mqtt_credentials: Path | None = Field(
        default=None,
        description="a JSON file {device key: password} the simulated MQTT devices log in with "
        "(`lamplighter run --simulate` makes one for each run)",
    )


class EmbeddedBrokerSettings(_Strict):
    """An MQTT broker inside the controller process (amqtt), for set-ups without Mosquitto/EMQX.

    MQTT links with `host = "embedded"` use it. `port = 0` picks a free port at start. Every
    client logs in: the controller with a password made at each start, devices and readers with
    those in `password_file`; each may use only its own topics (controller/broker/access.py).
    """

    enabled: bool = False
    host: str = Field(default="127.0.0.1", description="loopback unless devices on the network must reach it")
    port: int = Field(default=0, ge=0, le=65535)
    password_file: Path | None = Field(
        default=None,
        description="Mosquitto-format users and password hashes of devices and readers "
        "(mosquitto_passwd, or `lamplighter broker passwd`); the user name of a device is its key",
    )
    readers: tuple[str, ...] = Field(
        default=(), description="users that may read the outbound topics (the IOC), nothing else"
    )
    allow_anonymous: bool = Field(
        default=False, description="let anyone connect and use any topic (a lab only; docs/deployment.md)"
    )
    max_message_bytes: int = Field(
        default=262_144, ge=1024, le=268_435_455, description="larger messages close the connection"
    )
    max_connections: int = Field(default=10_000, ge=1, description="clients connected at once")


class OutboundSettings(_Strict):
    """Publishing device state for the IOC: `<topic_prefix>/<site>/<device>/state`, retained."""

    enabled: bool = False
    host: str = Field(default="127.0.0.1", description='a broker host, or "embedded"')
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    topic_prefix: str = Field(default="lamplighter", pattern=r"^[^+#]+$")
    state_interval_s: float = Field(default=1.0, gt=0, le=60)


class GroupThresholds(Thresholds):
    """`[[alert_thresholds]]`: thresholds for one group and everything below it; only the ones
    set here count (the others are inherited)."""

    group: Annotated[str, Field(pattern=_GROUP)]

    def overrides(self) -> dict[str, float]:
        return {k: v for k, v in super().overrides().items() if k != "group"}


class AlertSettings(_Strict):
    """Fault detection: debounce, hysteresis, and how often silent devices are checked."""

    enabled: bool = True
    raise_after: int = Field(default=1, ge=1, le=20, description="evaluations in a row that raise")
    clear_after: int = Field(default=3, ge=1, le=100, description="quiet evaluations in a row that clear")
    sweep_interval_s: float = Field(default=1.0, gt=0, le=60, description="staleness checks")
    queue_size: int = Field(default=100_000, ge=100, description="per delivery channel")
    stop_delivery_s: float = Field(
        default=5.0, ge=0, le=120, description="at a stop, the time left to deliver what is queued"
    )
    language: Literal["both", "vi", "en"] = Field(
        default="both", description="the language(s) of the alert texts sent over MQTT and webhooks"
    )
    group_min_devices: int = Field(
        default=3, ge=2, le=10_000, description="devices of one link failing alike make one root-cause alert"
    )
    group_window_s: float = Field(
        default=300.0, gt=0, le=86_400, description="… when each was raised within this of the one before"
    )


class MapSettings(_Strict):
    """`[map]`: the dashboard's base map (docs/dashboard.md). With neither set (the demo, the tests),
    the map shows the streets drawn from the configured devices and groups, and needs no network."""

    style_url: HttpUrl | None = Field(
        default=None, description="a MapLibre style JSON, e.g. the city's own tile server's"
    )
    raster_tiles: str | None = Field(
        default=None, description="an XYZ raster tile URL template with {z}, {x} and {y}"
    )
    attribution: str = Field(default="", max_length=300, description="shown on the map for the tiles")

    @field_validator("raster_tiles")
    @classmethod
    def _template(cls, url: str | None) -> str | None:
        if url is None:
            return url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL")
        if not all(f"{{{k}}}" in url for k in "zxy"):
            raise ValueError(f"{url!r} lacks {{z}}, {{x}} or {{y}}")
        return url

    def origins(self) -> list[str]:
        """Where the browser fetches the base map from (the page's security policy allows them)."""
        urls = [str(self.style_url)] if self.style_url else []
        urls += [self.raster_tiles] if self.raster_tiles else []
        return sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls})


class WebhookSettings(_Strict):
    """An HTTP endpoint that receives alert events, signed with HMAC-SHA256 (see docs/alerts.md)."""

    id: Annotated[str, Field(pattern=_ID)]
    url: HttpUrl
    secret: str = Field(min_length=16, description="shared secret for the X-Lamplighter-Signature header")
    kinds: tuple[str, ...] = Field(default=(), description="fault kinds to send; empty: all")
    min_severity: Literal["warning", "minor", "major", "critical"] = "warning"
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=1000, description="events per POST at most")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        return v


class FirmwareSettings(_Strict):
    """Signed firmware (docs/firmware.md): which keys to trust, where images live, how frames travel."""

    trusted_keys: tuple[Path, ...] = Field(
        default=(), description="public keys (PEM) images must be signed with"
    )
    images_dir: Path = Path("./var/firmware")
    mqtt_host: str = Field(default="embedded", description='broker for MQTT devices\' frames, or "embedded"')
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    topic_prefix: str = Field(default="lamplighter/fw", pattern=r"^[^+#]+$")
    chunk_size: int = Field(default=4096, ge=16, le=8192)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_image_mb: float = Field(default=32, gt=0, le=1024)
