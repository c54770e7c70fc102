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
        ({"pm__pm2_5": "high"}, "pm2_5_ugm3", "expected a number, got str"),
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


@pytest.mark.parametrize("template", ["city/{device}x/t", "city/+/{device}", "city/t", "{device}/{device}"])
def test_topic_templates_need_one_whole_device_level(template: str) -> None:
    with pytest.raises(ValueError, match="must"):
        TopicTemplate(template=template)
