"""Configuration: valid files load; invalid ones fail at start naming file, line, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_config

HEAD = """
[[sites]]
id = "s1"
latitude = 21.0
longitude = 105.8

[[links]]
id = "gw"
site = "s1"
kind = "modbus_tcp"
host = "127.0.0.1"
port = 1502
"""

DEVICE = """
[[devices]]
id = "{id}"
link = "{link}"
unit_id = {unit}
profile = "{profile}"
latitude = 21.0
longitude = 105.8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def device(id: str = "a", link: str = "gw", unit: int = 1, profile: str = "lamp_lcu") -> str:
    return DEVICE.format(id=id, link=link, unit=unit, profile=profile)


def test_example_city_is_valid_and_large_enough() -> None:
    settings = load_config(Path(__file__).parents[2] / "examples" / "city.toml")
    devices = settings.all_devices()
    tcp = [link for link in settings.links if link.kind == "modbus_tcp"]
    rtu = [link for link in settings.links if link.kind == "modbus_rtu"]
    assert len(tcp) == 4
    assert len(rtu) == 1
    assert sum(d.link in {lk.id for lk in tcp} for d in devices) >= 200
    assert sum(d.link == rtu[0].id for d in devices) == 16


def test_device_range_expands_ids_and_positions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """
[[device_ranges]]
id_prefix = "st-"
link = "gw"
unit_ids = [1, 3]
profile = "lamp_lcu"
group = "city/street"
start = [21.0, 105.0]
end = [21.2, 105.2]
""",
    )
    devs = load_config(path).all_devices()
    assert [d.id for d in devs] == ["st-001", "st-002", "st-003"]
    assert devs[1].latitude == pytest.approx(21.1)
    assert devs[1].group == "city/street"


@pytest.mark.parametrize(
    ("ends", "expected"),
    [
        (
            "start = [91.0, 105.0]\nend = [21.2, 105.2]",
            "device_ranges[0].start[0]: Input should be less than or equal to 90",
        ),
        (
            "start = [21.0, 105.0]\nend = [21.2, 181.0]",
            "device_ranges[0].end[1]: Input should be less than or equal to 180",
        ),
    ],
)
def test_a_range_whose_poles_lie_off_the_globe_is_located(tmp_path: Path, ends: str, expected: str) -> None:
    """Its devices' positions are checked at the range (a traceback of DeviceConfig before)."""
    path = write(
        tmp_path,
        HEAD
        + '\n[[device_ranges]]\nid_prefix = "st-"\nlink = "gw"\nunit_ids = [1, 3]\nprofile = "lamp_lcu"\n'
        + ends,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        (device(profile="lamp_xx"), 18, "devices[0].profile: unknown profile 'lamp_xx'"),
        (
            device() + device(id="b", unit=1),
            25,
            "devices[1].unit_id: unit id 1 is already used on link 'gw' by 'a'",
        ),
        (device(link="gw9"), 16, "devices[0].link: unknown link 'gw9'"),
        (device(unit=300), 17, "devices[0].unit_id: Input should be less than or equal to 247"),
        (device() + device(id="a", unit=2), 23, "devices[1].id: duplicate device id 'a'"),
    ],
)
def test_invalid_device_config_is_located(tmp_path: Path, body: str, line: int, expected: str) -> None:
    path = write(tmp_path, HEAD + body)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{line}: {expected}" in str(err.value)


def test_bad_port_and_bad_baud_rate_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD.replace("port = 1502", "port = 70000")
        + """
[[links]]
id = "bus"
site = "s1"
kind = "modbus_rtu"
port = "/dev/ttyUSB0"
baudrate = 9601
""",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert f"{path}:12: links[0].port: Input should be less than or equal to 65535 (got 70000)" in text
    assert f"{path}:19: links[1].baudrate: Value error, baud rate 9601 is not one of" in text


def test_unknown_key_and_bad_toml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"city.toml:12: links\[0\].prot: Extra inputs are not permitted"):
        load_config(write(tmp_path, HEAD.replace("port = 1502", "prot = 1502")))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[[sites]\nid="))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMPLIGHTER_API__PORT", "9123")
    assert load_config(write(tmp_path, HEAD + device())).api.port == 9123


MQTT_LINK = """
[[links]]
id = "broker"
site = "s1"
kind = "mqtt"
host = "127.0.0.1"
port = 18830
"""

MQTT_DEVICE = """
[[devices]]
id = "{id}"
link = "{link}"
{extra}
profile = "{profile}"
latitude = 21.0
longitude = 105.8
"""


def mqtt_device(id: str = "env-1", link: str = "broker", extra: str = "", profile: str = "env_sensor") -> str:
    return MQTT_DEVICE.format(id=id, link=link, extra=extra, profile=profile)


def test_mqtt_devices_are_addressed_by_key_defaulting_to_their_id(tmp_path: Path) -> None:
    from controller.config import device_address

    settings = load_config(
        write(
            tmp_path,
            HEAD + MQTT_LINK + mqtt_device() + mqtt_device("ap-1", extra='key = "ap1"', profile="wifi_ap"),
        )
    )
    addresses = [device_address(d, settings.link(d.link)) for d in settings.all_devices()]
    assert addresses == ["env-1", "ap1"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            mqtt_device(extra="unit_id = 3"),
            "devices[0].unit_id: unit_id is for Modbus and serial devices; 'broker' is mqtt: use key",
        ),
        (
            mqtt_device(profile="lamp_lcu"),
            "devices[0].profile: profile 'lamp_lcu' speaks modbus, link 'broker' is mqtt",
        ),
        (
            device(profile="env_sensor"),
            "devices[0].profile: profile 'env_sensor' speaks mqtt, link 'gw' is modbus_tcp",
        ),
        (
            mqtt_device() + mqtt_device("env-2", extra='key = "env-1"'),
            "devices[1].key: key env-1 is already used on link 'broker' by 'env-1'",
        ),
        (mqtt_device(extra='key = "a/b"'), "devices[0].key: String should match pattern"),
        (
            DEVICE.replace("unit_id = {unit}\n", "").format(id="x", link="gw", profile="lamp_lcu"),
            "devices[0].unit_id: a device on modbus_tcp link 'gw' needs a unit_id",
        ),
    ],
)
def test_invalid_mqtt_device_config_is_located(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, HEAD + MQTT_LINK + body)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)
    assert f"{path}:" in str(err.value)


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD.replace('id = "s1"', 'id = "s1"\ntimezone = "Asia/Hanoi_City"') + device())
    with pytest.raises(
        ConfigError, match=r"sites\[0\]\.timezone: Value error, unknown time zone 'Asia/Hanoi_City'"
    ):
        load_config(path)


def test_a_links_unknown_time_zone_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """A city's Tasmota devices write local time without an offset: the link names the zone."""
    plug = mqtt_device("plug-1", extra='key = "plug-1"', profile="tasmota_energy_plug")
    path = write(tmp_path, HEAD + MQTT_LINK + 'timestamp_zone = "Asia/Saigon_Old"\n' + plug)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "unknown time zone 'Asia/Saigon_Old'" in str(err.value)
    assert f"{path}:" in str(err.value)
    fine = write(tmp_path, HEAD + MQTT_LINK + 'timestamp_zone = "Asia/Ho_Chi_Minh"\n' + plug)
    broker = load_config(fine).link("broker")
    assert getattr(broker, "timestamp_zone", None) == "Asia/Ho_Chi_Minh"
