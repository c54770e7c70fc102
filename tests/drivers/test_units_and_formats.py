"""What a profile may say about units and payload shapes: a device's own unit converted into its
field's (pint), plain-text payloads, SenML-style lists at the top, a zone given by the link."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from drivers.errors import ProfileError
from drivers.payload import PayloadError, decode_json
from drivers.profile import parse_profile
from drivers.registers import codec_for

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)

METER = """
[profile]
name = "meter"
model = "a meter counting kWh, its board temperature in °F"
kind = "meter"
protocol = "modbus"

[fields.board_temperature_c]
unit = "Cel"

[[registers]]
name = "energy"
table = "input"
address = 0
type = "uint32"
field = "energy_wh"
scale = 0.01
unit = "kWh"

[[registers]]
name = "current"
table = "input"
address = 2
type = "uint16"
field = "current_a"
unit = "mA"

[[registers]]
name = "board_temperature"
table = "input"
address = 3
type = "int16"
field = "board_temperature_c"
unit = "degF"
"""


def test_registers_in_the_devices_units_are_stored_in_the_fields_units() -> None:
    codec = codec_for(parse_profile(METER, "meter.toml"))
    # 1234.56 kWh as hundredths in a uint32, 523 mA, 98.6 °F rounded by the device to 99
    values, _, _, rejected = codec.decode_poll([[0x0001, 0xE240, 523, 99]])
    assert rejected == {}
    assert values["energy_wh"] == pytest.approx(1_234_560)
    assert values["current_a"] == pytest.approx(0.523)
    assert values["board_temperature_c"] == pytest.approx((99 - 32) * 5 / 9)
    # the simulators write through the same conversion, backwards: 37 °C is 98.6 °F, 99 in the register
    board = codec.profile.registers[2]
    assert codec.encode_measurement(board, 37.0) == [99]


@pytest.mark.parametrize(
    ("unit", "field", "message"),
    [
        (
            "V",
            "energy_wh",
            "registers[0] (energy_wh): cannot convert 'V' to 'Wh': they measure different things",
        ),
        ("blorps", "energy_wh", "registers[0] (energy_wh): unknown unit 'blorps' or 'Wh'"),
        ("kWh", "lamp_on", "registers[0] (lamp_on): cannot convert 'kWh' to 'bool': only the same unit fits"),
    ],
)
def test_a_unit_that_cannot_become_the_fields_is_an_error_with_file_and_line(
    unit: str, field: str, message: str
) -> None:
    text = METER.replace('field = "energy_wh"', f'field = "{field}"').replace(
        'unit = "kWh"', f'unit = "{unit}"'
    )
    with pytest.raises(ProfileError) as err:
        parse_profile(text, "meter.toml")
    assert f"meter.toml:{text.splitlines().index('[[registers]]') + 1}: " in str(err.value)
    assert message in str(err.value)


SWITCH = """
[profile]
name = "relay"
model = "a relay publishing its state as plain text (Tasmota stat/<topic>/POWER)"
kind = "device"
protocol = "mqtt"

[fields.relay_on]
unit = "bool"

[mqtt]
telemetry_topic = "stat/{device}/POWER"
format = "text"

[[mqtt.fields]]
field = "relay_on"
type = "bool"
"""


def test_a_plain_text_payload_is_one_value() -> None:
    layout = parse_profile(SWITCH, "relay.toml").mqtt
    assert layout is not None
    assert decode_json(layout, b"ON\n", NOW) == (NOW, {"relay_on": True}, {})
    assert decode_json(layout, b"OFF", NOW)[1] == {"relay_on": False}
    _, values, rejected = decode_json(layout, b"TOGGLE", NOW)
    assert values == {}
    assert rejected == {"relay_on": "payload: expected true/false or ON/OFF, got str 'TOGGLE'"}
    with pytest.raises(PayloadError, match="not UTF-8"):
        decode_json(layout, b"\xff\xfe", NOW)


def test_a_text_layout_is_one_field_without_a_path() -> None:
    with pytest.raises(ProfileError, match="a text payload is one value"):
        parse_profile(SWITCH.replace('type = "bool"', 'type = "bool"\npath = "state"'), "relay.toml")


SENML = """
[profile]
name = "senml_meter"
model = "a meter publishing SenML (RFC 8428) JSON"
kind = "meter"
protocol = "mqtt"

[mqtt]
telemetry_topic = "senml/{device}"
timestamp_path = "[0].bt"

[[mqtt.fields]]
field = "voltage_v"
path = "[n=voltage].v"

[[mqtt.fields]]
field = "energy_wh"
path = "[n=energy].v"
unit = "kWh"
"""


def test_a_senml_pack_is_read_by_record_name() -> None:
    layout = parse_profile(SENML, "senml.toml").mqtt
    assert layout is not None
    pack = [
        {"bn": "urn:dev:mac:0024befffe804ff1:", "bt": 1.7644896e9, "n": "energy", "u": "kWh", "v": 12.5},
        {"n": "voltage", "u": "V", "v": 229.7},
    ]
    ts, values, rejected = decode_json(layout, json.dumps(pack).encode(), NOW)
    assert values == {"voltage_v": 229.7, "energy_wh": 12_500}
    assert ts == dt.datetime.fromtimestamp(1.7644896e9, dt.UTC)
    assert rejected == {}


def test_a_zone_less_time_is_read_in_the_links_zone_when_the_profile_names_none() -> None:
    text = SENML.replace('timestamp_path = "[0].bt"', 'timestamp_path = "[0].time"')
    layout = parse_profile(text, "senml.toml").mqtt
    assert layout is not None
    pack = json.dumps([{"n": "voltage", "v": 230, "time": "2026-11-30T19:00:00"}]).encode()
    assert decode_json(layout, pack, NOW, "Asia/Ho_Chi_Minh")[0] == dt.datetime(
        2026, 11, 30, 12, tzinfo=dt.UTC
    )
    ts, _, rejected = decode_json(layout, pack, NOW)
    assert ts == NOW  # receipt time, and said why
    assert "set timestamp_zone in the profile or link" in rejected["timestamp"]
