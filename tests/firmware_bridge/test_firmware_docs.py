"""docs/firmware.md: every example frame decodes, with a correct CRC."""

from __future__ import annotations

from pathlib import Path

from drivers.firmware import decode_frame


def test_every_example_frame_in_the_docs_is_valid() -> None:
    text = (Path(__file__).parents[2] / "docs" / "firmware.md").read_text(encoding="utf-8")
    frames = [line for line in text.splitlines() if line.startswith("07 ")]
    assert len(frames) >= 14
    for line in frames:
        frame = decode_frame((line + "\n").encode())
        assert frame.address == 7
