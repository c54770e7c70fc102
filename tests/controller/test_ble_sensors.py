"""BLE sensors on a simulated radio reach the same reading path and API as the other devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_config
from controller.runtime import Controller
from lamplighter.simulate import simulated_radios
from simulators.ble_radio import BleFault
from tests.waiting import until

CONFIG = """
[database]
url = "sqlite+aiosqlite:///{tmp}/r.db"
[telemetry]
url = "sqlite+aiosqlite:///{tmp}/t.db"
[poller]
offline_after_failures = 2

[[sites]]
id = "hn"
timezone = "Asia/Ho_Chi_Minh"
latitude = 21.0
longitude = 105.8

[[links]]
id = "radio"
site = "hn"
kind = "ble"
radio = "simulated"
backoff_base_s = 0.1
backoff_cap_s = 0.2

[[devices]]
id = "ble-park"
link = "radio"
{key}
profile = "ble_env_sensor"
latitude = 21.0
longitude = 105.8
poll_interval_s = 0.2
"""


async def test_ble_sensors_are_read_and_out_of_range_goes_offline(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, key='key = "C4:7C:8D:6A:01:02"'))
    settings = load_config(path)
    radios = simulated_radios(settings)
    ctl = Controller(settings, ble_backends={k: r.backend for k, r in radios.items()})
    await ctl.start()
    try:
        await until(lambda: ctl.fleet["ble-park"].state == "ok")
        doc = ctl.fleet["ble-park"].last_reading_doc() or {}
        assert 990 < doc["values"]["pressure_hpa"] < 1030
        assert ctl.devices["ble-park"].address == "C4:7C:8D:6A:01:02"
        radios["radio"].set_fault("C4:7C:8D:6A:01:02", BleFault.OUT_OF_RANGE, True)
        await until(lambda: ctl.fleet["ble-park"].state == "offline")
        assert "not in range" in (ctl.fleet["ble-park"].last_error or "")
    finally:
        await ctl.stop()


def test_a_ble_device_needs_its_mac_address(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, key=""))
    with pytest.raises(
        ConfigError, match=r"devices\[0\]\.key: a device on BLE link 'radio' needs key = its MAC"
    ):
        load_config(path)


def test_advertising_and_gatt_profiles_need_the_matching_link(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    text = CONFIG.format(tmp=tmp_path, key='key = "C4:7C:8D:6A:01:02"')
    path.write_text(text.replace('profile = "ble_env_sensor"', 'profile = "ble_adv_sensor"'))
    with pytest.raises(
        ConfigError, match="'ble_adv_sensor' has no GATT characteristics \\(use a ble_scan link\\)"
    ):
        load_config(path)
    path.write_text(text.replace('kind = "ble"', 'kind = "ble_scan"'))
    with pytest.raises(
        ConfigError, match="'ble_env_sensor' does not advertise readings \\(use a ble link\\)"
    ):
        load_config(path)
