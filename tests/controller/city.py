"""A small city for controller and API tests: one TCP gateway and one RS-485 bus, real sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from controller.config import ControllerSettings, load_config
from controller.runtime import Controller
from lamplighter.simulate import city_from_config
from simulators.city import SimulatedCity
from tests.conftest import free_port


def write_city(
    tmp_path: Path,
    *,
    gw_lamps: int = 6,
    bus_lamps: int = 3,
    interval: float = 0.2,
    latitude: float = 21.0,
    longitude: float = 105.8,
    extra: str = "",
    gw_port: int = 0,
) -> Path:
    """`extra`: more TOML appended to the file (alert thresholds, webhooks, outbound …);
    `gw_port`: gw1's port when the caller chose ports for its own links too (else a free one)."""
    text = f"""
[database]
url = "sqlite+aiosqlite:///{tmp_path}/registry.db"
[telemetry]
url = "sqlite+aiosqlite:///{tmp_path}/telemetry.db"
[poller]
offline_after_failures = 2
state_flush_interval_s = 0.2

[[sites]]
id = "hn"
latitude = {latitude}
longitude = {longitude}

[[links]]
id = "gw1"
site = "hn"
kind = "modbus_tcp"
host = "127.0.0.1"
port = {gw_port or free_port()}
timeout_s = 0.3
retries = 0

[[links]]
id = "bus1"
site = "hn"
kind = "modbus_rtu"
port = "{tmp_path}/pty/bus1"
baudrate = 19200
timeout_s = 0.3
retries = 0

[[device_ranges]]
id_prefix = "gw1-"
link = "gw1"
unit_ids = [1, {gw_lamps}]
profile = "lamp_lcu"
group = "hanoi/ba-dinh/kim-ma"
rated_power_w = 100
start = [21.03, 105.81]
end = [21.03, 105.83]
poll_interval_s = {interval}

[[device_ranges]]
id_prefix = "bus1-"
link = "bus1"
unit_ids = [1, {bus_lamps}]
profile = "lamp_lcu"
group = "hanoi/hoan-kiem/hang-dao"
rated_power_w = 60
start = [21.033, 105.851]
end = [21.036, 105.850]
poll_interval_s = {interval}
{extra}
"""
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


@asynccontextmanager
async def running_city(settings: ControllerSettings) -> AsyncIterator[SimulatedCity]:
    city = city_from_config(settings)
    await city.start()
    try:
        yield city
    finally:
        await city.stop()


@asynccontextmanager
async def running_controller(settings: ControllerSettings) -> AsyncIterator[Controller]:
    ctl = Controller(settings)
    await ctl.start()
    try:
        yield ctl
    finally:
        await ctl.stop()


def settings_for(tmp_path: Path, *, registry_url: str | None = None, **kw: float | str) -> ControllerSettings:
    """`registry_url`: another registry database than the SQLite file under tmp_path (PostgreSQL)."""
    settings = load_config(write_city(tmp_path, **kw))  # type: ignore[arg-type]
    if registry_url is not None:
        database = settings.database.model_copy(update={"url": registry_url})
        settings = settings.model_copy(update={"database": database})
    return settings


def write_mqtt_city(
    tmp_path: Path, broker_port: int, devices: Iterable[tuple[str, str, str]], *, extra: str = ""
) -> Path:
    """A city of MQTT devices on one broker: `devices` are (device id, topic key, profile), all in
    group hanoi/hoan-kiem; `extra` is TOML for the sections before the sites (alerts, firmware …)."""
    entries = "".join(
        f"""
[[devices]]
id = "{device_id}"
link = "broker"
key = "{key}"
profile = "{profile}"
group = "hanoi/hoan-kiem"
latitude = 21.0287
longitude = 105.8524
"""
        for device_id, key, profile in devices
    )
    path = tmp_path / "city.toml"
    path.write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{tmp_path}/registry.db"
[telemetry]
url = "sqlite+aiosqlite:///{tmp_path}/telemetry.db"
[poller]
ingest_linger_s = 0.05
{extra}

[[sites]]
id = "hn"
latitude = 21.0
longitude = 105.8

[[links]]
id = "broker"
site = "hn"
kind = "mqtt"
host = "127.0.0.1"
port = {broker_port}
backoff_base_s = 0.1
backoff_cap_s = 0.5
{entries}
""",
        encoding="utf-8",
    )
    return path


def with_influx(text: str, extra: str) -> str:
    """The city config with its [telemetry] section replaced by an InfluxDB one."""
    lines = text.splitlines()
    i = lines.index("[telemetry]")
    return "\n".join([*lines[:i], *extra.strip().splitlines(), *lines[i + 2 :]]) + "\n"


def influx_telemetry(url: str, buffer_dir: Path, **options: str | float) -> str:
    """A `[telemetry]` section sending to InfluxDB 1.x database `city`, for `with_influx`."""
    lines = [
        "[telemetry]",
        'backend = "influxdb"',
        "[telemetry.influxdb]",
        f'url = "{url}"',
        'write_endpoint = "v1"',
        'database = "city"',
        f'buffer_dir = "{buffer_dir}"',
        *(f"{key} = {json.dumps(value)}" for key, value in options.items()),
    ]
    return "\n".join(lines) + "\n"
