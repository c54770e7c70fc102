"""Controller configuration: one TOML file (kept in version control), overridable by environment.

Sites, links and devices are declared here and mirrored into the registry at start; see
docs/configuration.md. Environment variables `LAMPLIGHTER_<SECTION>__<KEY>` override the file
(e.g. `LAMPLIGHTER_API__PORT=9000`). Every error names the file, the line and the key.
"""

from __future__ import annotations

import ipaddress
import tomllib
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from controller.detectors import FAULT_KINDS
from controller.toml_locator import TomlLocator
from drivers.errors import ProfileError
from drivers.profile import DeviceProfile, load_profile

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_GROUP = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


_LINK_KINDS = ("modbus_tcp", "modbus_rtu", "serial_line", "mqtt", "ble", "ble_scan")
#: an MQTT link's host that means "the controller's embedded broker"
EMBEDDED = "embedded"


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

    url: str = Field(default="http://127.0.0.1:8086", description="the server's base URL")
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
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http:// or https:// URL with a host")
        return v.rstrip("/")


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
    those in `password_file`; each may use only its own topics (controller/broker_access.py).
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


class ThresholdOverrides(_Strict):
    """Alert thresholds that differ from the defaults (see docs/alerts.md); unset means inherited."""

    voltage_min_v: float | None = Field(default=None, gt=0)
    voltage_max_v: float | None = Field(default=None, gt=0)
    power_tolerance: float | None = Field(default=None, gt=0, lt=1)
    lamp_failure_ratio: float | None = Field(default=None, gt=0, lt=1)
    standby_w: float | None = Field(default=None, ge=0)
    cycling_toggles: int | None = Field(default=None, ge=2)
    cycling_window_s: float | None = Field(default=None, gt=0)
    missed_polls: int | None = Field(default=None, ge=1)
    stale_after_s: float | None = Field(default=None, gt=0)
    settle_s: float | None = Field(default=None, ge=0)

    def values(self) -> dict[str, float]:
        """The thresholds this sets (not the group it applies to)."""
        fields = ThresholdOverrides.model_fields
        return {k: v for k, v in self.model_dump().items() if v is not None and k in fields}


class GroupThresholds(ThresholdOverrides):
    """`[[alert_thresholds]]`: overrides for one group and everything below it."""

    group: Annotated[str, Field(pattern=_GROUP)]


class AlertSettings(_Strict):
    """Fault detection: debounce, hysteresis, and how often silent devices are checked."""

    enabled: bool = True
    raise_after: int = Field(default=1, ge=1, le=20, description="evaluations in a row that raise")
    clear_after: int = Field(default=3, ge=1, le=100, description="quiet evaluations in a row that clear")
    sweep_interval_s: float = Field(default=1.0, gt=0, le=60, description="staleness checks")
    queue_size: int = Field(default=100_000, ge=100, description="per delivery channel")


class WebhookSettings(_Strict):
    """An HTTP endpoint that receives alert events, signed with HMAC-SHA256 (see docs/alerts.md)."""

    id: Annotated[str, Field(pattern=_ID)]
    url: str
    secret: str = Field(min_length=16, description="shared secret for the X-Lamplighter-Signature header")
    kinds: tuple[str, ...] = Field(default=(), description="fault kinds to send; empty: all")
    min_severity: Literal["warning", "minor", "major", "critical"] = "warning"
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=1000, description="events per POST at most")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{v!r}: {exc}") from None
        return v

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


class Site(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    name: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Asia/Ho_Chi_Minh)") from None
        return v


class _LinkBase(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    site: str
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=5)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_cap_s: float = Field(default=30.0, gt=0)


class ModbusTcpLink(_LinkBase):
    kind: Literal["modbus_tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)


class _SerialLinkBase(_LinkBase):
    port: str = Field(min_length=1, description="serial device path, e.g. /dev/ttyUSB0")
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @field_validator("baudrate")
    @classmethod
    def _standard_baud(cls, v: int) -> int:
        if v not in BAUD_RATES:
            raise ValueError(f"baud rate {v} is not one of {BAUD_RATES}")
        return v


class ModbusRtuLink(_SerialLinkBase):
    kind: Literal["modbus_rtu"]


class SerialLineLinkConfig(_SerialLinkBase):
    """A serial line of legacy lamp nodes speaking the ASCII line protocol."""

    kind: Literal["serial_line"]


class MqttLinkConfig(_LinkBase):
    """A broker connection; devices on it are found by the `key` in their topics."""

    kind: Literal["mqtt"]
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    persistent_session: bool = True
    qos: Literal[0, 1] = 1
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    max_queued_messages: int = Field(default=10_000, ge=10)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="several controllers on one broker: every instance subscribes (client id "
        "suffixed with its [cluster] instance number) and each telemetry message goes to one of "
        "them ($share/<group>/…); availability is seen by all",
    )


class BleLinkConfig(_LinkBase):
    """A Bluetooth LE radio; devices on it are found by their MAC address (`key`).

    `ble` connects to each sensor and reads its GATT characteristics; `ble_scan` listens to the
    readings sensors broadcast in advertisements.
    """

    kind: Literal["ble", "ble_scan"]
    min_interval_s: float = Field(
        default=10.0, gt=0, description="ble_scan: at most one reading per device per"
    )
    adapter: str | None = Field(default=None, description='e.g. "hci0"; default: the system default')
    radio: Literal["system", "simulated"] = Field(
        default="system", description="simulated: sensors served by simulators.ble_radio in-process"
    )


LinkConfig = Annotated[
    ModbusTcpLink | ModbusRtuLink | SerialLineLinkConfig | MqttLinkConfig | BleLinkConfig,
    Field(discriminator="kind"),
]
_PROTOCOL_OF_LINK = {
    "modbus_tcp": "modbus",
    "modbus_rtu": "modbus",
    "serial_line": "line",
    "mqtt": "mqtt",
    "ble": "ble",
    "ble_scan": "ble",
}


class DeviceConfig(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    link: str
    unit_id: int | None = Field(default=None, ge=1, le=247, description="Modbus devices")
    key: Annotated[str | None, Field(pattern=r"^[^/+#]{1,64}$", description="MQTT devices")] = None
    profile: str
    group: Annotated[str, Field(pattern=_GROUP)] = "ungrouped"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    rated_power_w: float | None = Field(default=None, gt=0, le=5000)
    poll_interval_s: float = Field(default=10.0, ge=0)


class DeviceRange(_Strict):
    """Many similar devices on one link: ids `<id_prefix><unit id:03>`, poles evenly spaced."""

    id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,56}$")]
    link: str
    unit_ids: tuple[int, int] = Field(description="first and last unit id, inclusive")
    profile: str
    group: Annotated[str, Field(pattern=_GROUP)] = "ungrouped"
    start: tuple[float, float] = Field(description="latitude, longitude of the first device")
    end: tuple[float, float] = Field(description="latitude, longitude of the last device")
    rated_power_w: float | None = Field(default=None, gt=0, le=5000)
    poll_interval_s: float = Field(default=10.0, ge=0)

    @field_validator("unit_ids")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1] <= 247:
            raise ValueError("unit_ids must be [first, last] with 1 <= first <= last <= 247")
        return v

    def expand(self) -> Iterator[dict[str, Any]]:
        first, last = self.unit_ids
        span = max(1, last - first)
        for unit in range(first, last + 1):
            f = (unit - first) / span
            yield {
                "id": f"{self.id_prefix}{unit:03d}",
                "link": self.link,
                "unit_id": unit,
                "profile": self.profile,
                "group": self.group,
                "latitude": round(self.start[0] + f * (self.end[0] - self.start[0]), 7),
                "longitude": round(self.start[1] + f * (self.end[1] - self.start[1]), 7),
                "rated_power_w": self.rated_power_w,
                "poll_interval_s": self.poll_interval_s,
            }


class ControllerSettings(BaseSettings):
    """The whole configuration. Build it with `load_config(path)`."""

    model_config = SettingsConfigDict(
        env_prefix="LAMPLIGHTER_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    api: ApiSettings = ApiSettings()
    cluster: ClusterSettings = ClusterSettings()
    database: DatabaseSettings = DatabaseSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    poller: PollerSettings = PollerSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    embedded_broker: EmbeddedBrokerSettings = EmbeddedBrokerSettings()
    outbound: OutboundSettings = OutboundSettings()
    alerts: AlertSettings = AlertSettings()
    alert_thresholds: tuple[GroupThresholds, ...] = ()
    webhooks: tuple[WebhookSettings, ...] = ()
    firmware: FirmwareSettings = FirmwareSettings()
    profiles_dir: Path | None = None
    sites: tuple[Site, ...] = ()
    links: tuple[LinkConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    device_ranges: tuple[DeviceRange, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file: operators change a port without editing it.
        return (env_settings, init_settings)

    # -- derived views -----------------------------------------------------------------------
    def all_devices(self) -> list[DeviceConfig]:
        """Devices declared one by one plus those expanded from ranges, in file order."""
        expanded = [DeviceConfig(**d) for r in self.device_ranges for d in r.expand()]
        return [*self.devices, *expanded]

    def profile(self, name: str) -> DeviceProfile:
        return load_profile(name, self.profiles_dir)

    def owned_links(self) -> frozenset[str]:
        """The links this instance polls and commands (all of them unless `[cluster]` says otherwise)."""
        cluster = self.cluster
        if cluster.links is not None:
            return frozenset(cluster.links)
        return frozenset(
            link.id
            for link in self.links
            if zlib.crc32(link.id.encode()) % cluster.instances == cluster.instance
        )

    def ingest_links(self) -> frozenset[str]:
        """The links this instance takes readings from: its own, plus every MQTT link with a
        `shared_group`, whose telemetry the broker spreads over all the instances in the group.
        The instance that owns such a link (`owned_links`) still alone watches and commands its
        devices."""
        return self.owned_links() | self.shared_links()

    def shared_links(self) -> frozenset[str]:
        """MQTT links with a `shared_group`: every instance takes in a share of their telemetry."""
        return frozenset(x.id for x in self.links if isinstance(x, MqttLinkConfig) and x.shared_group)

    def link(self, link_id: str) -> LinkConfig:
        return next(link for link in self.links if link.id == link_id)

    def broker_address(self, link: MqttLinkConfig | OutboundSettings) -> tuple[str, int]:
        """Where an MQTT connection goes: its own host and port, or the embedded broker's."""
        if link.host == EMBEDDED:
            return self.embedded_broker.host, self.embedded_broker.port
        return link.host, link.port


def device_address(device: DeviceConfig, link: LinkConfig) -> int | str:
    """How a device is addressed on its link: Modbus unit id, or the key in its MQTT topics."""
    if isinstance(link, MqttLinkConfig | BleLinkConfig):
        return device.key or device.id
    assert device.unit_id is not None  # checked by load_config
    return device.unit_id


def load_config(path: str | Path) -> ControllerSettings:
    """Read, validate and cross-check a configuration file; raise ConfigError naming each problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    locator = TomlLocator(path, text, ignore=_LINK_KINDS)
    if isinstance(data.get("profiles_dir"), str):
        data["profiles_dir"] = str((path.parent / data["profiles_dir"]).resolve())
    broker = data.get("embedded_broker")
    if isinstance(broker, dict) and isinstance(broker.get("password_file"), str):
        broker["password_file"] = str((path.parent / broker["password_file"]).resolve())
    firmware = data.get("firmware")
    if isinstance(firmware, dict) and isinstance(firmware.get("trusted_keys"), list):
        firmware["trusted_keys"] = [str((path.parent / k).resolve()) for k in firmware["trusted_keys"]]
    try:
        settings = ControllerSettings(**data)
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(locator.describe(e["loc"], e["msg"], e.get("input")) for e in exc.errors())
        ) from exc
    problems = list(_cross_check(settings))
    if (
        settings.outbound.enabled
        and settings.outbound.host == EMBEDDED
        and not settings.embedded_broker.enabled
    ):
        problems.append((("outbound", "host"), "host 'embedded' needs [embedded_broker] enabled = true"))
    if problems:
        raise ConfigError("\n".join(locator.describe(loc, msg) for loc, msg in problems))
    return settings


def _cross_check(settings: ControllerSettings) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """References between sections, and uniqueness, which pydantic cannot see field by field."""
    declared_links = {link.id for link in settings.links}
    for i, link_id in enumerate(settings.cluster.links or ()):
        if link_id not in declared_links:
            yield ("cluster", "links", i), f"unknown link {link_id!r}; declared: {sorted(declared_links)}"
    site_ids: set[str] = set()
    for i, site in enumerate(settings.sites):
        if site.id in site_ids:
            yield ("sites", i, "id"), f"duplicate site id {site.id!r}"
        site_ids.add(site.id)
    links: dict[str, LinkConfig] = {}
    endpoints: dict[str, str] = {}
    for i, link in enumerate(settings.links):
        if link.id in links:
            yield ("links", i, "id"), f"duplicate link id {link.id!r}"
        if link.site not in site_ids:
            yield ("links", i, "site"), f"unknown site {link.site!r}; declared: {sorted(site_ids)}"
        if (
            isinstance(link, MqttLinkConfig)
            and link.host == EMBEDDED
            and not settings.embedded_broker.enabled
        ):
            yield ("links", i, "host"), "host 'embedded' needs [embedded_broker] enabled = true"
        if isinstance(link, BleLinkConfig):
            where = f"{link.kind}:{link.adapter or 'default'}"
        else:
            where = link.port if isinstance(link, _SerialLinkBase) else f"{link.host}:{link.port}"
        if where in endpoints:
            yield ("links", i, "port"), f"{where} is already used by link {endpoints[where]!r}"
        endpoints.setdefault(where, link.id)
        links[link.id] = link
    hook_ids: set[str] = set()
    for i, hook in enumerate(settings.webhooks):
        if hook.id in hook_ids:
            yield ("webhooks", i, "id"), f"duplicate webhook id {hook.id!r}"
        hook_ids.add(hook.id)
    seen_ids: dict[str, str] = {}
    units: dict[tuple[str, int | str], str] = {}
    n_single = len(settings.devices)
    ranges = [(j, r) for j, r in enumerate(settings.device_ranges) for _ in r.expand()]
    for k, dev in enumerate(settings.all_devices()):
        loc: tuple[str | int, ...] = (
            ("devices", k) if k < n_single else ("device_ranges", ranges[k - n_single][0])
        )
        if dev.id in seen_ids:
            yield (*loc, "id"), f"duplicate device id {dev.id!r}"
        seen_ids[dev.id] = dev.id
        dev_link = links.get(dev.link)
        if dev_link is None:
            yield (*loc, "link"), f"unknown link {dev.link!r}; declared: {sorted(links)}"
            continue
        link = dev_link
        if isinstance(link, BleLinkConfig) and dev.key is None:
            yield (*loc, "key"), f"a device on BLE link {dev.link!r} needs key = its MAC address"
            continue
        if isinstance(link, MqttLinkConfig | BleLinkConfig):
            if dev.unit_id is not None:
                yield (
                    (*loc, "unit_id"),
                    f"unit_id is for Modbus and serial devices; {dev.link!r} is {link.kind}: use key",
                )
        elif dev.unit_id is None:
            yield (*loc, "unit_id"), f"a device on {link.kind} link {dev.link!r} needs a unit_id"
            continue
        address = device_address(dev, link)
        what = "key" if isinstance(link, MqttLinkConfig) else "unit id"
        if (dev.link, address) in units:
            yield (
                (*loc, "key" if what == "key" else "unit_id"),
                f"{what} {address} is already used on link {dev.link!r} by {units[(dev.link, address)]!r}",
            )
        units.setdefault((dev.link, address), dev.id)
        try:
            profile = settings.profile(dev.profile)
        except ProfileError as exc:
            yield (*loc, "profile"), str(exc)
            continue
        try:
            ThresholdOverrides.model_validate(profile.alerts)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            yield (*loc, "profile"), f"profile {dev.profile!r} [alerts]: {problems}"
        speaks = profile.profile.protocol
        if speaks != _PROTOCOL_OF_LINK[link.kind]:
            problem = f"profile {dev.profile!r} speaks {speaks}, link {dev.link!r} is {link.kind}"
            yield (*loc, "profile"), problem
        elif link.kind == "ble_scan" and (profile.ble is None or profile.ble.advertisement is None):
            yield (*loc, "profile"), f"profile {dev.profile!r} does not advertise readings (use a ble link)"
        elif link.kind == "ble" and (profile.ble is None or not profile.ble.characteristics):
            yield (
                (*loc, "profile"),
                f"profile {dev.profile!r} has no GATT characteristics (use a ble_scan link)",
            )
