"""JSON payload decoding for MQTT devices: bad input is refused per reason, valid fields kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from drivers.payload import MqttLayout, PayloadError, TopicTemplate, decode_json
from drivers.profile import load_profile


def mqtt_layout(model: str) -> MqttLayout:
    layout = load_profile(model).mqtt
    assert layout is not None, f"{model} has no MQTT layout"
    return layout


SENSOR = mqtt_layout("env_sensor")
AP = mqtt_layout("wifi_ap")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

GOOD = {
    "ts": 1795000000,
    "pm": {"pm2_5": 35.5, "pm10": 60},
    "climate": {"temperature": 27.25, "humidity": 81},
    "noise_dba": 62.5,
    "lux": 0,
}


def doc(**changes: object) -> bytes:
    body = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        node = body
        *parents, last = path.split("__")
        for p in parents:
            node = node[p]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return json.dumps(body).encode()


def test_a_good_message_decodes_every_field_with_its_unit_name() -> None:
    ts, values, rejected = decode_json(SENSOR, doc(), NOW)
    assert rejected == {}
    assert values == {
        "pm2_5_ugm3": 35.5,
        "pm10_ugm3": 60,
        "air_temperature_c": 27.25,
        "humidity_pct": 81,
        "noise_dba": 62.5,
        "illuminance_lx": 0,
    }
    assert ts == datetime.fromtimestamp(1795000000, UTC)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"pm__pm2_5": "high"}, "pm2_5_ugm3", "not a number: 'high'"),
        ({"pm__pm2_5": "n/a"}, "pm2_5_ugm3", "not a number: 'n/a'"),
        ({"climate__temperature": "5000"}, "air_temperature_c", "value 5000 outside -40.0..70.0"),
        ({"pm__pm2_5": True}, "pm2_5_ugm3", "expected a number, got bool"),
        ({"climate__humidity": 140}, "humidity_pct", "value 140 outside 0.0..100.0"),
        ({"noise_dba": ...}, "noise_dba", "noise_dba: missing"),
        ({"climate": [1, 2]}, "air_temperature_c", "climate.temperature: missing"),
    ],
)
def test_a_bad_field_is_rejected_and_the_others_kept(
    changes: dict[str, object], field: str, reason: str
) -> None:
    _, values, rejected = decode_json(SENSOR, doc(**changes), NOW)
    assert field not in values
    assert reason in rejected[field]
    assert values["illuminance_lx"] == 0  # the valid fields of a partly valid message are kept


def test_nan_and_infinity_are_refused_as_not_json() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        payload = doc().replace(b"62.5", literal.encode())
        with pytest.raises(PayloadError) as err:
            decode_json(SENSOR, payload, NOW)
        assert err.value.reason == "not_json"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (b"{" + b'"pad": "' + b"x" * 5000 + b'"}', "too_large"),
    ],
)
def test_unusable_messages_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        decode_json(SENSOR, payload, NOW)
    assert err.value.reason == reason


def test_bad_timestamp_falls_back_to_receipt_time_and_says_so() -> None:
    ts, values, rejected = decode_json(SENSOR, doc(ts="yesterday"), NOW)
    assert ts == NOW
    assert "receipt time used" in rejected["timestamp"]
    assert len(values) == 6
    ts, *_ = decode_json(SENSOR, doc(ts="2026-11-25T19:00:00+07:00"), NOW)
    assert ts == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_string_fields_and_topic_templates() -> None:
    _, values, _ = decode_json(
        AP,
        b'{"radio": {"clients": 12, "rx_kbps": 800, "tx_kbps": 4200}, "uptime_s": 3600, "fw": "2.1.0"}',
        NOW,
    )
    assert values["firmware_version"] == "2.1.0"
    assert values["clients"] == 12
    topic = AP.telemetry_topic
    assert topic.subscription == "city/wifi/+/stats"
    assert topic.device_key("city/wifi/ap-17/stats") == "ap-17"
    assert topic.device_key("city/wifi/ap-17/other") is None
    assert topic.device_key("city/wifi/a/b/stats") is None


@pytest.mark.parametrize(
    "template", ["city/{device}x/t", "city/#/{device}", "city/a+/{device}", "city/t", "{device}/{device}"]
)
def test_topic_templates_need_one_whole_device_level(template: str) -> None:
    with pytest.raises(ValueError, match=r"must|only whole"):
        TopicTemplate(template=template)


def test_a_topic_may_have_wildcard_levels_as_network_servers_publish() -> None:
    """ChirpStack v4 puts the application's id before the device's EUI: any application matches."""
    topic = TopicTemplate(template="application/+/device/{device}/event/up")
    assert topic.subscription == "application/+/device/+/event/up"
    assert topic.device_key("application/5e2c1f0a/device/24e124538c219374/event/up") == "24e124538c219374"
    assert topic.device_key("application/5e2c1f0a/device/24e124538c219374/event/join") is None


# A community air-quality node (sensor.community's JSON): readings in a list, by value_type, as strings.
VALUES = "sensordatavalues"
COMMUNITY_NODE = MqttLayout.model_validate(
    {
        "telemetry_topic": "airrohr/{device}/data",
        "timestamp_path": "ts",
        "timestamp_zone": "Asia/Ho_Chi_Minh",
        "fields": [
            {"field": "pm10_ugm3", "path": f"{VALUES}[value_type=P1].value", "min": 0, "max": 2000},
            {"field": "pm2_5_ugm3", "path": f"{VALUES}[value_type=P2].value", "min": 0, "max": 1000},
            {"field": "air_temperature_c", "path": f"{VALUES}[value_type=temperature].value", "max": 70},
            {"field": "humidity_pct", "path": f"{VALUES}[value_type=humidity].value", "max": 100},
        ],
    }
)


def community(values: list[tuple[str, str]], ts: object = "2026-11-30 19:00:00") -> bytes:
    listed = [{"value_type": t, "value": v} for t, v in values]
    return json.dumps({"esp8266id": "1234", "ts": ts, VALUES: listed}).encode()


def test_list_items_are_found_by_their_key_in_any_order_and_numbers_may_be_strings() -> None:
    readings = [("P1", "23.40"), ("P2", "11.10"), ("temperature", "26.5"), ("humidity", "81.0")]
    ts, values, rejected = decode_json(COMMUNITY_NODE, community(readings), NOW)
    _, shuffled, _ = decode_json(COMMUNITY_NODE, community(list(reversed(readings))), NOW)
    assert (
        values
        == shuffled
        == {
            "pm10_ugm3": 23.4,
            "pm2_5_ugm3": 11.1,
            "air_temperature_c": 26.5,
            "humidity_pct": 81.0,
        }
    )
    assert rejected == {}
    assert ts == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a zone-less time in the layout's zone


def test_a_value_that_is_no_number_or_out_of_range_is_refused_and_the_rest_kept() -> None:
    readings = [("P1", "n/a"), ("P2", "11.10"), ("temperature", "5000"), ("humidity", "81")]
    _, values, rejected = decode_json(COMMUNITY_NODE, community(readings), NOW)
    assert values == {"pm2_5_ugm3": 11.1, "humidity_pct": 81}
    assert rejected["pm10_ugm3"] == "sensordatavalues[value_type=P1].value: not a number: 'n/a'"
    assert "value 5000 outside" in rejected["air_temperature_c"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1795000000, datetime.fromtimestamp(1795000000, UTC)),
        (1795000000123, datetime.fromtimestamp(1795000000.123, UTC)),
        (1795000000123456, datetime.fromtimestamp(1795000000.123456, UTC)),
        ("1795000000", datetime.fromtimestamp(1795000000, UTC)),
        ("2026-11-30T19:00:00Z", datetime(2026, 11, 30, 19, 0, tzinfo=UTC)),
        ("2026-11-30T19:00:00", datetime(2026, 11, 30, 12, 0, tzinfo=UTC)),
    ],
)
def test_times_in_seconds_milliseconds_microseconds_or_iso(raw: object, expected: datetime) -> None:
    ts, _, rejected = decode_json(COMMUNITY_NODE, community([("P2", "1")], ts=raw), NOW)
    assert "timestamp" not in rejected
    assert ts == expected


def test_a_zone_less_time_without_a_zone_in_the_layout_says_what_to_set() -> None:
    layout = COMMUNITY_NODE.model_copy(update={"timestamp_zone": None})
    ts, values, rejected = decode_json(layout, community([("P2", "1")]), NOW)
    assert ts == NOW
    assert "set timestamp_zone in the profile" in rejected["timestamp"]
    assert values == {"pm2_5_ugm3": 1}


def test_switch_words_json_inside_strings_and_wildcards() -> None:
    plug = MqttLayout.model_validate(
        {
            "telemetry_topic": "tele/{device}/STATE",
            "fields": [
                {"field": "lamp_on", "path": "POWER", "type": "bool"},
                {"field": "power_w", "path": "payload.ENERGY.Power"},  # a JSON document inside a string
                {"field": "voltage_v", "path": "*.ENERGY.Voltage"},  # whichever key holds it
            ],
        }
    )
    inner = json.dumps({"ENERGY": {"Power": 61}})
    body = {"POWER": "ON", "payload": inner, "StatusSNS": {"ENERGY": {"Voltage": "229"}}}
    _, values, rejected = decode_json(plug, json.dumps(body).encode(), NOW)
    assert values == {"lamp_on": True, "power_w": 61, "voltage_v": 229}
    assert rejected == {}
    body["POWER"] = "maybe"
    _, values, rejected = decode_json(plug, json.dumps(body).encode(), NOW)
    assert "expected true/false or ON/OFF" in rejected["lamp_on"]


@pytest.mark.parametrize("path", ["a..b", "items[]", "items[=P1]", "items[x"])
def test_a_path_that_cannot_be_read_is_refused_when_the_profile_loads(path: str) -> None:
    field = {"field": "power_w", "path": path}
    with pytest.raises(ValueError, match=r"path|step|selector"):
        MqttLayout.model_validate({"telemetry_topic": "t/{device}", "fields": [field]})
