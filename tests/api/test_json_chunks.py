"""Long answers are encoded in steps (api/json_chunks.py): the same JSON document a client gets from
pydantic's one-call encoding, aliases and all, whichever list is long."""

from __future__ import annotations

import datetime as dt
import json

from api.json_chunks import model_json
from api.models import TelemetryOut, TelemetryPointOut
from api.schedules import PreviewOut, PreviewPointOut, SunEventOut

T0 = dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.UTC)


def preview(points: int, transitions: int) -> PreviewOut:
    def point(i: int) -> PreviewPointOut:
        return PreviewPointOut(
            at=T0 + dt.timedelta(minutes=i), level=i % 101, cause=f"program “tết” step {i % 3}"
        )

    return PreviewOut(
        group="hanoi/ba-dinh",
        lamps=12,
        start=T0,
        end=T0 + dt.timedelta(days=7),
        points=[point(i) for i in range(points)],
        transitions=[point(i) for i in range(transitions)],
        sun=[SunEventOut(event="sunset", at=T0)],
        energy_kwh=12.5,
        baseline_kwh=20.0,
        saving_pct=None,
        timezone="Asia/Ho_Chi_Minh",
    )


def test_long_lists_in_the_middle_of_a_model_with_aliases_make_the_same_document() -> None:
    model = preview(points=2_345, transitions=1_001)
    encoded = model_json(model, chunk=500)
    document = json.loads(encoded)
    assert document == json.loads(model.model_dump_json(by_alias=True))
    assert document["from"] == "2026-12-07T17:00:00Z"
    assert "start" not in document
    assert len(document["points"]) == 2_345
    assert document["points"][-1]["level"] == 2_344 % 101
    assert "“tết”" in encoded.decode()  # UTF-8 as pydantic writes it, not \u escapes


def test_a_model_with_short_lists_is_encoded_as_pydantic_does() -> None:
    model = preview(points=10, transitions=2)
    assert model_json(model, chunk=500) == model.model_dump_json(by_alias=True).encode()


def test_a_model_that_is_one_long_list() -> None:
    points = [TelemetryPointOut(ts=T0, values={"power_w": float(i)}) for i in range(1_200)]
    model = TelemetryOut(
        device_id="gw1-001", start=T0, end=T0, every_s=None, aggregate=None, fields=["power_w"], points=points
    )
    assert json.loads(model_json(model, chunk=100)) == json.loads(model.model_dump_json(by_alias=True))
