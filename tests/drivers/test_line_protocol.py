"""The legacy line protocol codec: frames, checksums, replies decoded by profile."""

from __future__ import annotations

import pytest

from drivers.line_protocol import Frame, FrameError, checksum, decode_frame, encode_frame
from drivers.profile import load_profile

LAYOUT = load_profile("legacy_node").line
assert LAYOUT is not None


def test_frames_round_trip_with_an_xor_checksum() -> None:
    wire = encode_frame(Frame("request", 7, "SET", ("LVL=40", "ON=1")))
    assert wire == b">07 SET LVL=40 ON=1*" + checksum("07 SET LVL=40 ON=1").encode() + b"\r\n"
    assert decode_frame(wire) == Frame("request", 7, "SET", ("LVL=40", "ON=1"))
    assert decode_frame(wire).pairs == {"LVL": "40", "ON": "1"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b">07 READ*00\r\n", "checksum 00 does not match"),
        (b"07 READ*35\r\n", "not a frame"),
        (b">07 read*35\r\n", "not a frame"),
        (b">07 READ\r\n", "not a frame"),
        (b">\xff READ*35\r\n", "not ASCII"),
        (b">07 READ " + b"X" * 300 + b"*35\r\n", "longer than 256"),
    ],
)
def test_bad_lines_are_refused_with_the_reason(line: bytes, problem: str) -> None:
    with pytest.raises(FrameError, match=problem):
        decode_frame(line)


def test_reply_decodes_by_profile_keeping_valid_fields() -> None:
    assert LAYOUT is not None
    pairs = {
        "LVL": "60",
        "ON": "1",
        "V": "999",
        "I": "abc",
        "P": "60.5",
        "E": "1234",
        "T": "41.5",
        "H": "12.25",
        "ST": "11",
        "FW": "1.2",
    }
    values, status, raw, rejected = LAYOUT.decode_reply(pairs)
    assert values["dim_level_pct"] == 60
    assert values["lamp_on"] is True
    assert values["power_w"] == 60.5
    assert values["firmware_version"] == "1.2"
    assert raw == 0x11
    assert status["lamp_failure"] is True
    assert status["voltage_sag"] is True
    assert "outside 0.0..400.0" in rejected["voltage_v"]
    assert "not a number" in rejected["current_a"]
    _, _, _, missing = LAYOUT.decode_reply({"LVL": "1"})
    assert missing["voltage_v"] == "V: missing"


def test_setpoints_encode_and_check_range() -> None:
    assert LAYOUT is not None
    assert LAYOUT.encode_setpoints({"dim_level_pct": 40, "lamp_on": True}) == ("LVL=40", "ON=1")
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        LAYOUT.encode_setpoints({"dim_level_pct": 120})
    assert LAYOUT.decode_setpoints({"LVL": "40", "ON": "0"}) == {"dim_level_pct": 40, "lamp_on": False}


def test_the_examples_in_the_protocol_document_are_valid_frames() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "serial-protocol.md").read_text(encoding="utf-8")
    examples = [
        ln for ln in text.splitlines() if ln[:1] in "<>" and "*" in ln and not ln.startswith("<start>")
    ]
    assert len(examples) == 4
    for example in examples:
        decode_frame(example.encode())  # raises if the checksum in the document is wrong
