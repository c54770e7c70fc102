"""The profile codec: register words ⇄ physical values, read planning, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import ProfileError
from drivers.profile import DeviceProfile, load_profile, parse_profile
from drivers.registers import codec_for, plan_reads

LAMP = load_profile("lamp_lcu")


def _input_image(**overrides: list[int]) -> list[int]:
    words = [0] * 14
    words[0] = 60  # actual level
    words[1] = 1  # relay
    words[2] = 2301  # 230.1 V
    words[3] = 262  # 0.262 A
    words[4] = 600  # 60.0 W
    words[5] = 950  # PF 0.95
    words[6:8] = [0x0001, 0x86A0]  # 100000 Wh, high word first
    words[8] = 0b00011  # lamp failure + driver fault
    words[9] = 0xFF9C  # -10.0 °C as int16
    words[10:12] = [0x0001, 0xE240]  # 123456 → 1234.56 h
    words[12] = 0x0104  # version 1.4
    words[13] = 100
    for key, value in overrides.items():
        idx = int(key[1:])
        words[idx : idx + len(value)] = value
    return words


def test_lamp_profile_reads_all_measurements_in_one_request() -> None:
    assert [(b.table, b.start, b.count) for b in codec_for(LAMP).poll_blocks] == [("input", 0, 14)]
    assert [(b.table, b.start, b.count) for b in codec_for(LAMP).setpoint_blocks] == [("holding", 0, 2)]


def test_decode_scales_signs_word_order_and_status_bits() -> None:
    values, status, raw, rejected = codec_for(LAMP).decode_poll([_input_image()])
    assert rejected == {}
    assert values["dim_level_pct"] == 60
    assert values["lamp_on"] is True
    assert values["voltage_v"] == pytest.approx(230.1)
    assert values["current_a"] == pytest.approx(0.262)
    assert values["power_w"] == pytest.approx(60.0)
    assert values["energy_wh"] == 100_000
    assert values["temperature_c"] == pytest.approx(-10.0)
    assert values["burning_hours_h"] == pytest.approx(1234.56)
    assert values["firmware_version"] == "1.4"
    assert raw == 0b11
    assert status["lamp_failure"]
    assert status["driver_fault"]
    assert not status["relay_fault"]


def test_scaled_values_are_the_decimals_the_registers_mean() -> None:
    """What the API and the telemetry show: 230.1 V, not 230.10000000000002 (scales of 0.1, 0.01 and
    0.001 divide; other scales multiply and round to 6 places: the same floats either way)."""
    codec = codec_for(LAMP)
    for raw in range(1001):
        image = _input_image(w2=[raw * 4], w3=[raw * 20], w5=[raw], w10=[0, raw * 65])
        values, _, _, rejected = codec.decode_poll([image])
        assert rejected == {}
        assert values["voltage_v"] == round(raw * 4 * 0.1, 6) == float(f"{raw * 4 / 10:.1f}")
        assert values["current_a"] == round(raw * 20 * 0.001, 6) == float(f"{raw * 20 / 1000:.3f}")
        assert values["power_factor"] == round(raw * 0.001, 6) == float(f"{raw / 1000:.3f}")
        assert values["burning_hours_h"] == round(raw * 65 * 0.01, 6) == float(f"{raw * 65 / 100:.2f}")


def test_out_of_range_value_is_rejected_and_the_rest_kept() -> None:
    values, _, _, rejected = codec_for(LAMP).decode_poll([_input_image(w2=[9999], w0=[250])])
    assert "voltage_v" not in values
    assert "dim_level_pct" not in values
    assert "supply_voltage (input 2)" in rejected["voltage_v"]
    assert "999.9" in rejected["voltage_v"]
    assert values["power_w"] == pytest.approx(60.0)  # the valid data around it is kept


def test_setpoints_encode_to_one_contiguous_write_and_check_range() -> None:
    assert codec_for(LAMP).encode_setpoints({"dim_level_pct": 40, "lamp_on": True}) == [(0, [40, 1])]
    assert codec_for(LAMP).encode_setpoints({"lamp_on": False}) == [(1, [0])]
    with pytest.raises(ValueError, match=r"outside 0\.0\.\.100\.0"):
        codec_for(LAMP).encode_setpoints({"dim_level_pct": 101})
    with pytest.raises(ValueError, match="no setpoint"):
        codec_for(LAMP).encode_setpoints({"colour": 3})


def test_little_word_order_is_honoured() -> None:
    profile = parse_profile(
        """
[profile]
name = "t"
model = "t"
kind = "lamp"
protocol = "modbus"
word_order = "little"
[[registers]]
name = "energy"
table = "input"
address = 0
type = "uint32"
field = "energy_wh"
""",
        "t.toml",
    )
    values, *_ = codec_for(profile).decode_poll([[0x86A0, 0x0001]])
    assert values["energy_wh"] == 100_000


def test_reads_are_merged_across_small_gaps_and_split_past_the_size_limit() -> None:
    regs = [
        {"name": f"r{a}", "table": "input", "address": a, "type": "uint16", "field": "power_w"}
        for a in (0, 5, 200)
    ]
    from drivers.profile import RegisterSpec

    blocks = plan_reads([RegisterSpec.model_validate(r) for r in regs])
    assert [(b.start, b.count) for b in blocks] == [(0, 6), (200, 1)]


OVERLAP = (
    'field = "voltage_v"\n[[registers]]\nname = "w"\ntable = "input"\n'
    'address = 0\ntype = "uint16"\nfield = "power_w"'
)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('field = "volts"', "bad.toml:7: (top level): Value error, unknown field 'volts' (registers[0])"),
        (
            'field = "power_w"\nscale = "x"',
            "profiles/bad.toml:7: registers[0] (v).scale: Input should be a valid number",
        ),
        (OVERLAP, "profiles/bad.toml: (top level): Value error, input register 0 used by both 'v' and 'w'"),
    ],
)
def test_invalid_profiles_name_file_and_key(snippet: str, message: str) -> None:
    text = f"""
[profile]
name = "bad"
model = "m"
kind = "lamp"
protocol = "modbus"
[[registers]]
name = "v"
table = "input"
address = 0
type = "uint16"
{snippet}
"""
    with pytest.raises(ProfileError) as err:
        parse_profile(text, "profiles/bad.toml")
    assert message in str(err.value)


def test_a_profile_asked_for_in_any_way_is_one_object_and_its_codec_found_without_comparing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the simulators ask `load_profile(name)`, the controller `load_profile(name, profiles_dir)`:
    # two equal objects of one name made every poll's codec lookup compare them field by field
    builtin = load_profile("lamp_lcu")
    assert load_profile("lamp_lcu", None) is builtin
    assert load_profile("lamp_lcu", tmp_path) is builtin  # a profiles_dir without that file
    codec = codec_for(builtin)

    def compared(self: DeviceProfile, other: object) -> bool:
        raise AssertionError("profiles compared field by field")

    monkeypatch.setattr(DeviceProfile, "__eq__", compared)
    copy = builtin.model_copy()  # an equal profile, another object: its own codec
    assert codec_for(copy) is not codec
    assert codec_for(builtin) is codec
    assert codec_for(copy) is codec_for(copy)


def test_unknown_profile_lists_available() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'nope'.*lamp_lcu"):
        load_profile("nope")


def test_words_wider_than_16_bits_are_a_decode_error_not_a_crash() -> None:
    values, _, _, rejected = codec_for(LAMP).decode_poll([_input_image(w6=[0x1FFFF, 0])])
    assert "energy_wh" in rejected
    assert values["voltage_v"] == pytest.approx(230.1)


DOUBLE_MAPPED_JSON = """
[profile]
name = "plug"
model = "a smart plug"
kind = "sensor"
protocol = "mqtt"

[mqtt]
telemetry_topic = "tele/{device}/SENSOR"

[[mqtt.fields]]
field = "power_w"
path = "ENERGY.Power"

[[mqtt.fields]]
field = "voltage_v"
path = "ENERGY.Voltage"

[[mqtt.fields]]
field = "power_w"
path = "ENERGY.ApparentPower"
"""

DOUBLE_MAPPED_REGISTERS = """
[profile]
name = "meter"
model = "a meter"
kind = "lamp"
protocol = "modbus"

[[registers]]
name = "p_total"
table = "input"
address = 52
type = "float32"
field = "power_w"

[[registers]]
name = "p_l1"
table = "input"
address = 12
type = "float32"
field = "power_w"
"""


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (DOUBLE_MAPPED_JSON, "plug.toml:19: mqtt: Value error, field 'power_w' is mapped twice"),
        (DOUBLE_MAPPED_REGISTERS, "meter.toml:15: (top level): Value error, field 'power_w' is mapped twice"),
    ],
)
def test_a_field_mapped_twice_is_an_error_with_file_and_line(text: str, where: str) -> None:
    """Two registers or paths onto one field: the last one would silently win."""
    with pytest.raises(ProfileError) as err:
        parse_profile(text, where.split(":")[0])
    assert where in str(err.value)
