"""Every schedule change is kept with who made it and why; an engineer compares two versions and
restores an earlier one, and the lamps follow; a viewer reads the history but cannot restore."""

from __future__ import annotations

from pathlib import Path

from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import until

EVENING = {"id": "evening", "steps": [{"at": "12:00", "level": 30}]}
CITY = {"id": "city", "default_program": "evening"}


async def test_a_program_change_is_kept_compared_and_undone(tmp_path: Path, registry_url: str) -> None:
    settings = settings_for(tmp_path, registry_url=registry_url)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        lamps = [city.segments.find("gw1", u) for u in range(1, 7)]
        async with api_client(ctl, "engineer") as api:
            assert (await api.put("/api/v1/schedules/evening", json=EVENING)).status_code == 200
            assert (await api.put("/api/v1/calendars/city", json=CITY)).status_code == 200
            rsp = await api.put("/api/v1/groups/hanoi/ba-dinh/calendar", json={"calendar": "city"})
            assert rsp.status_code == 200, rsp.text
            await until(lambda: all(lamp.level_cmd == 30 for lamp in lamps), within_s=5)
            dimmer = {"id": "evening", "steps": [{"at": "12:00", "level": 45}, {"at": "23:00", "level": 40}]}
            rsp = await api.put(
                "/api/v1/schedules/evening", json=dimmer, params={"reason": "festival week: brighter"}
            )
            assert rsp.status_code == 200, rsp.text
            await until(lambda: all(lamp.level_cmd in (40, 45) for lamp in lamps), within_s=5)
            refused = await api.put(
                "/api/v1/schedules/evening", json={"id": "evening", "steps": [{"at": "25:00", "level": 10}]}
            )
            assert refused.status_code == 422  # refused changes leave no version

            page = (
                await api.get("/api/v1/schedule-history", params={"kind": "program", "id": "evening"})
            ).json()
            assert [(v["version"], v["reason"]) for v in page["items"]] == [
                (2, "festival week: brighter"),
                (1, ""),
            ]
            assert {v["actor"] for v in page["items"]} == {page["items"][0]["actor"]}
            assert page["items"][0]["actor"].startswith("key:")
            diff = (
                await api.get(
                    "/api/v1/schedule-history/compare",
                    params={"kind": "program", "id": "evening", "old": 1, "new": 2},
                )
            ).json()
            assert [(c["path"], c["before"]) for c in diff["changes"]] == [
                ("steps[0].level", 30),
                ("steps[1]", None),
            ]
            assert diff["changes"][0]["after"] == 45
            assert diff["changes"][1]["after"]["at"] == "23:00"
            assert diff["changes"][1]["after"]["level"] == 40
            one = (
                await api.get(
                    "/api/v1/schedule-history/version",
                    params={"kind": "program", "id": "evening", "version": 1},
                )
            ).json()
            assert one["doc"]["steps"][0]["level"] == 30

            restored = await api.post(
                "/api/v1/schedule-history/restore",
                json={"kind": "program", "id": "evening", "version": 1, "reason": "festival cancelled"},
            )
            assert restored.status_code == 200, restored.text
            assert restored.json()["version"] == 3
            await until(lambda: all(lamp.level_cmd == 30 for lamp in lamps), within_s=5)
            programs = (await api.get("/api/v1/schedules")).json()
            assert next(p for p in programs if p["id"] == "evening")["steps"][0]["level"] == 30
            missing = await api.post(
                "/api/v1/schedule-history/restore", json={"kind": "program", "id": "evening", "version": 9}
            )
            assert missing.status_code == 404
        async with api_client(ctl, "viewer") as viewer:
            listed = await viewer.get("/api/v1/schedule-history")
            assert listed.status_code == 200
            assert len(listed.json()["items"]) >= 5  # program ×3, calendar, group calendar
            denied = await viewer.post(
                "/api/v1/schedule-history/restore", json={"kind": "program", "id": "evening", "version": 2}
            )
            assert denied.status_code == 403
