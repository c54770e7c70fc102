"""An engineer previews a drafted program before saving it: the curve with the draft, the energy
against what is planned, and what changes ("23:00 80 % → 40 %"); a draft the API would refuse is
refused with the same message; nothing is saved, nothing running sees it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.api.keys import api_client
from tests.controller.city import running_controller, settings_for

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
NIGHTLY = {"id": "nightly", "steps": [{"at": "18:00", "level": 80}, {"at": "06:00", "level": 0}]}


async def test_a_draft_shows_its_curve_its_energy_and_tonights_changes(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, interval=60.0)
    async with running_controller(settings) as ctl, api_client(ctl, "engineer") as api:
        assert (await api.put("/api/v1/schedules/nightly", json=NIGHTLY)).status_code == 200
        city = {"id": "city", "default_program": "nightly"}
        assert (await api.put("/api/v1/calendars/city", json=city)).status_code == 200
        assert (await api.put("/api/v1/groups/hanoi/calendar", json={"calendar": "city"})).status_code == 200
        noon = dt.datetime.now(HANOI).replace(hour=12, minute=0, second=0, microsecond=0)
        steps = [{"at": "18:00", "level": 80}, {"at": "23:00", "level": 40}, {"at": "06:00", "level": 0}]
        draft = {"id": "nightly", "steps": steps}
        body = {
            "group": "hanoi/hoan-kiem/hang-dao",
            "from": noon.isoformat(),
            "to": (noon + dt.timedelta(hours=24)).isoformat(),
            "program": draft,
        }
        rsp = await api.post("/api/v1/schedules/preview", json=body)
        assert rsp.status_code == 200, rsp.text
        out = rsp.json()
        assert [
            (dt.datetime.fromisoformat(c["at"]).astimezone(HANOI).hour, c["planned"], c["drafted"])
            for c in out["changes"]
        ] == [(23, 80, 40)]
        assert out["energy_kwh"] < out["planned_energy_kwh"]  # dimmer from 23:00: less energy
        assert any(p["level"] == 40 for p in out["points"])
        assert out["timezone"] == "Asia/Ho_Chi_Minh"

        refused_draft = await api.post(
            "/api/v1/schedules/preview",
            json={**body, "program": {"id": "nightly", "steps": [{"at": "23:00", "level": 140}]}},
        )
        refused_save = await api.put(
            "/api/v1/schedules/nightly", json={"id": "nightly", "steps": [{"at": "23:00", "level": 140}]}
        )
        assert refused_draft.status_code == refused_save.status_code == 422
        said = refused_save.json()["error"]["message"]  # the same words, located in the draft's body
        assert refused_draft.json()["error"]["message"] == said.replace("body.", "body.program.")
        stored = (await api.get("/api/v1/schedules")).json()
        assert [(p["id"], [(s["at"], s["level"]) for s in p["steps"]]) for p in stored] == [
            ("nightly", [("18:00", 80), ("06:00", 0)])
        ]  # the draft was not saved
        assert ctl.scheduling is not None
        assert len(ctl.scheduling.programs["nightly"].steps) == 2  # nothing running sees it
    async with running_controller(settings) as ctl, api_client(ctl, "viewer") as viewer:
        assert (await viewer.post("/api/v1/schedules/preview", json=body)).status_code == 403
