"""The whole configuration: one TOML file (kept in version control), overridable by environment.

Sites, links and devices are declared here and mirrored into the registry at start; see
docs/configuration.md. Environment variables `LAMPLIGHTER_<SECTION>__<KEY>` override the file
(e.g. `LAMPLIGHTER_API__PORT=9000`). Every error names the file, the line and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

from pydantic import PrivateAttr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from controller.air_settings import AirSettings
from controller.config.city import (
    _LINK_KINDS,
    _PROTOCOL_OF_LINK,
    BleLinkConfig,
    DeviceConfig,
    DeviceRange,
    LinkConfig,
    MqttLinkConfig,
    Site,
    _SerialLinkBase,
    device_address,
)
from controller.config.sections import (
    EMBEDDED,
    AlertSettings,
    ApiSettings,
    ClusterSettings,
    ConfigError,
    DatabaseSettings,
    EmbeddedBrokerSettings,
    FirmwareSettings,
    GroupThresholds,
    MapSettings,
    OutboundSettings,
    PollerSettings,
    SimulatorSettings,
    TelemetrySettings,
    WebhookSettings,
)
from controller.config.toml_locator import TomlLocator
from controller.faults import Thresholds
from controller.noise_levels import NoiseLimits
from drivers.errors import ProfileError
from drivers.profile import DeviceProfile, load_profile


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
    map: MapSettings = MapSettings()
    noise: NoiseLimits = NoiseLimits()
    air: AirSettings = AirSettings()
    alert_thresholds: tuple[GroupThresholds, ...] = ()
    webhooks: tuple[WebhookSettings, ...] = ()
    firmware: FirmwareSettings = FirmwareSettings()
    profiles_dir: Path | None = None
    sites: tuple[Site, ...] = ()
    links: tuple[LinkConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    device_ranges: tuple[DeviceRange, ...] = ()
    # all_devices(), kept with the tuples it was made from (a copy with other devices has others)
    _expanded: tuple[tuple[int, int], tuple[DeviceConfig, ...]] | None = PrivateAttr(default=None)

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
        """Devices declared one by one plus those expanded from ranges, in file order.

        Expanded once per (devices, device_ranges): at 50,000 devices one expansion is ~50,000
        validated models, and start-up asked for it three times."""
        key = (id(self.devices), id(self.device_ranges))
        if self._expanded is None or self._expanded[0] != key:
            expanded = [DeviceConfig(**d) for r in self.device_ranges for d in r.expand()]
            self._expanded = (key, (*self.devices, *expanded))
        return list(self._expanded[1])

    def profile(self, name: str) -> DeviceProfile:
        return load_profile(name, self.profiles_dir)

    def link(self, link_id: str) -> LinkConfig:
        return next(link for link in self.links if link.id == link_id)

    def broker_address(self, link: MqttLinkConfig | OutboundSettings) -> tuple[str, int]:
        """Where an MQTT connection goes: its own host and port, or the embedded broker's."""
        if link.host == EMBEDDED:
            return self.embedded_broker.host, self.embedded_broker.port
        return link.host, link.port


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


def _profile_problems(settings: ControllerSettings, name: str, link: LinkConfig) -> Iterator[str]:
    """What is wrong with profile `name` for a device on `link`."""
    try:
        profile = settings.profile(name)
    except ProfileError as exc:
        yield str(exc)
        return
    try:
        Thresholds.model_validate(profile.alerts)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        yield f"profile {name!r} [alerts]: {problems}"
    speaks = profile.profile.protocol
    if speaks != _PROTOCOL_OF_LINK[link.kind]:
        yield f"profile {name!r} speaks {speaks}, link {link.id!r} is {link.kind}"
    elif link.kind == "ble_scan" and (profile.ble is None or profile.ble.advertisement is None):
        yield f"profile {name!r} does not advertise readings (use a ble link)"
    elif link.kind == "ble" and (profile.ble is None or not profile.ble.characteristics):
        yield f"profile {name!r} has no GATT characteristics (use a ble_scan link)"


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
    # a range's devices are unit_ids[0]..unit_ids[1] (DeviceRange.expand): its index by device
    ranges = [
        j for j, r in enumerate(settings.device_ranges) for _ in range(r.unit_ids[0], r.unit_ids[1] + 1)
    ]
    # what a profile says about itself, and whether it speaks a link's kind: once per pair (a city
    # has a few profiles for its 50,000 devices)
    profile_problems: dict[tuple[str, str], list[str]] = {}
    for k, dev in enumerate(settings.all_devices()):
        loc: tuple[str | int, ...] = (
            ("devices", k) if k < n_single else ("device_ranges", ranges[k - n_single])
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
        pair = (dev.profile, dev.link)
        if pair not in profile_problems:
            profile_problems[pair] = list(_profile_problems(settings, dev.profile, link))
        for problem in profile_problems[pair]:
            yield (*loc, "profile"), problem
