"""Fuzzing the decoders with hypothesis: whatever arrives from a device or a file, the decoder either
gives values (each within its profile's limits) or says, per field, why it refused — it never raises
anything but its own error type, and no field goes missing without a reason."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import firmware as fw
from drivers.errors import ProfileError
from drivers.line_protocol import Frame, FrameError, decode_frame, encode_frame
from drivers.payload import PayloadError, decode_json
from drivers.profile import load_profile, parse_profile
from drivers.registers import codec_for

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RECEIVED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _place(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            return
        node = nxt
    node[leaf] = value


@st.composite
def mqtt_documents(draw: st.DrawFn, profile_name: str) -> bytes:
    """Documents shaped like the profile's (its paths, sometimes) with values of any type."""
    layout = load_profile(profile_name).mqtt
    assert layout is not None
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))  # not even JSON
    doc: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    for spec in layout.fields:
        if draw(st.booleans()):
            _place(doc, spec.path, draw(json_values | st.floats(-1e6, 1e6)))
    if layout.timestamp_path and draw(st.booleans()):
        _place(doc, layout.timestamp_path, draw(json_values))
    return json.dumps(doc).encode()  # NaN and Infinity included: not JSON, must be refused


def _check_values(values: dict[str, Any], limits: dict[str, tuple[float | None, float | None]]) -> None:
    for field, value in values.items():
        assert isinstance(value, bool | int | float | str), (field, value)
        if isinstance(value, float):
            assert math.isfinite(value), (field, value)
        lo, hi = limits.get(field, (None, None))
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert lo is None or value >= lo, (field, value)
            assert hi is None or value <= hi, (field, value)


@FUZZ
@given(data=st.data(), profile=st.sampled_from(["env_sensor", "wifi_ap"]))
def test_mqtt_payloads_decode_or_are_refused_with_a_reason(data: st.DataObject, profile: str) -> None:
    layout = load_profile(profile).mqtt
    assert layout is not None
    payload = data.draw(mqtt_documents(profile))
    try:
        ts, values, rejected = decode_json(layout, payload, RECEIVED)
    except PayloadError as exc:
        assert exc.args, "a refusal says what is wrong with the message as a whole"  # noqa: PT017
        return
    assert ts.tzinfo is not None
    assert {s.field for s in layout.fields} <= set(values) | set(rejected), "a field vanished"
    assert not set(values) & set(rejected)
    _check_values(values, {s.field: (s.min, s.max) for s in layout.fields})


@FUZZ
@given(data=st.data(), wide=st.booleans())
def test_modbus_registers_decode_within_limits_or_are_refused(data: st.DataObject, wide: bool) -> None:
    """Any register contents, including words a broken gateway reports wider than 16 bits."""
    profile = load_profile("lamp_lcu")
    codec = codec_for(profile)
    top = 0x1FFFF if wide else 0xFFFF
    blocks = [
        data.draw(st.lists(st.integers(0, top), min_size=b.count, max_size=b.count))
        for b in codec.poll_blocks
    ]
    values, status, raw_status, rejected = codec.decode_poll(blocks)
    measured = {
        r.field for r in profile.registers if r.field is not None and not r.bits and r.setpoint is None
    }
    assert measured <= set(values) | set(rejected), "a field vanished"
    _check_values(values, {r.field: (r.min, r.max) for r in profile.registers if r.field})
    assert all(isinstance(v, bool) for v in status.values())
    assert raw_status is None or isinstance(raw_status, int)


@FUZZ
@given(line=st.binary(max_size=300) | st.text(max_size=120).map(lambda t: t.encode("utf-8", "replace")))
def test_serial_lines_parse_or_raise_frame_error(line: bytes) -> None:
    try:
        frame = decode_frame(line)
    except FrameError:
        return
    assert 0 <= frame.address <= 255


@FUZZ
@given(
    address=st.integers(1, 254),
    verb=st.from_regex(r"[A-Z]{2,6}", fullmatch=True),
    args=st.lists(st.from_regex(r"[A-Z]{1,4}=[0-9A-F.-]{1,8}", fullmatch=True), max_size=6),
    direction=st.sampled_from(["request", "reply"]),
)
def test_serial_frames_survive_a_round_trip(address: int, verb: str, args: list[str], direction: str) -> None:
    frame = Frame(direction, address, verb, tuple(args))  # type: ignore[arg-type]
    assert decode_frame(encode_frame(frame)) == frame


@FUZZ
@given(data=st.data())
def test_serial_replies_decode_or_are_refused_per_field(data: st.DataObject) -> None:
    layout = load_profile("legacy_node").line
    assert layout is not None
    keys = [f.key for f in layout.fields]
    pairs = data.draw(
        st.dictionaries(
            st.sampled_from(keys) | st.text(max_size=4), st.text(max_size=10), max_size=len(keys) + 2
        )
    )
    values, _status, _raw, rejected = layout.decode_reply(pairs)
    named = {f.field or f.key for f in layout.fields if f.type != "status"}
    assert named <= set(values) | set(rejected), "a field vanished"
    _check_values(values, {f.field: (f.min, f.max) for f in layout.fields if f.field})


@FUZZ
@given(line=st.binary(max_size=400))
def test_firmware_frames_parse_or_raise_frame_error(line: bytes) -> None:
    with contextlib.suppress(fw.FrameError):
        fw.decode_frame(line)


@FUZZ
@given(text=st.text(max_size=400) | st.sampled_from(['[profile]\nname = "x"\nprotocol = "modbus"\n']))
def test_profile_files_load_or_say_what_is_wrong(text: str) -> None:
    try:
        parse_profile(text, "fuzz.toml")
    except ProfileError as exc:
        assert "fuzz.toml" in str(exc), "the message names the file"  # noqa: PT017
