"""`lamplighter profile check`: a profile's fields, what a sample message decodes to, or where the
profile is wrong — before any device uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.api.test_declared_fields import PROFILE

LAMPLIGHTER = [sys.executable, "-m", "lamplighter"]


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAMPLIGHTER, "profile", "check", *map(str, args)], capture_output=True, text=True, timeout=60
    )


def test_a_profile_and_a_sample_message_are_shown_as_the_controller_will_read_them(tmp_path: Path) -> None:
    profile = tmp_path / "community_air_node.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    sample = tmp_path / "message.json"
    values = [("P1", "23.40"), ("P2", "n/a"), ("P0", "5.1"), ("humidity", "81"), ("signal", "-71")]
    listed = [{"value_type": t, "value": v} for t, v in values]
    sample.write_text(json.dumps({"ts": "2026-11-30 19:00:00", "sensordatavalues": listed}), encoding="utf-8")
    shown = check(profile, "--sample", sample)
    assert shown.returncode == 1, shown.stderr  # one value refused: says so, and how
    out = shown.stdout
    assert "OK — community_air_node (sensor, mqtt)" in out
    assert "wifi_signal_dbm          dBm (declared)" in out
    assert "reading at 2026-11-30T12:00:00+00:00" in out  # local time, in the profile's zone
    assert "pm10_ugm3                23.4 µg/m³" in out
    assert "pm2_5_ugm3               refused: " in out
    assert "sensordatavalues[value_type=P2].value: not a number: 'n/a'" in out


def test_a_wrong_profile_says_file_line_and_what(tmp_path: Path) -> None:
    profile = tmp_path / "plug.toml"
    profile.write_text(PROFILE + '\n[[mqtt.fields]]\nfield = "pm1_ugm3"\npath = "x"\n', encoding="utf-8")
    shown = check(profile)
    assert shown.returncode == 1
    assert f"{profile}:" in shown.stderr
    assert "field 'pm1_ugm3' is mapped twice" in shown.stderr


def test_a_register_dump_is_decoded_as_one_poll_would_be(tmp_path: Path) -> None:
    """The SDM630 example doubles as a dump: [input] address = [words], as the meter's document lays
    them out. Energy comes out in Wh (the meter counts kWh); float32 values as a float32 holds them."""
    profile = Path("drivers/profiles/eastron_sdm630.toml")
    shown = check(profile, "--registers", Path("tests/devices/examples/eastron_sdm630.toml"))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "one poll decodes to" in shown.stdout
    assert "voltage_l2_v             231.2 V" in shown.stdout
    assert "energy_wh                1234560.0 Wh" in shown.stdout
    short = tmp_path / "short.toml"
    short.write_text("[input]\n0 = [0x4366, 0x8000]\n", encoding="utf-8")
    missing = check(profile, "--registers", short)
    assert missing.returncode == 1
    assert "registers the profile reads are not in the dump: input 2, input 3" in missing.stderr
    wrong = check(Path("drivers/profiles/env_sensor.toml"), "--registers", short)
    assert wrong.returncode == 2
    assert "--registers decodes Modbus profiles; env_sensor is mqtt" in wrong.stderr
