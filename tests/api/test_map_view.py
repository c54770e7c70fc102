"""The map of a viewport: each device when zoomed in, clusters with their counts when zoomed out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api import map_view
from simulators.lamp import Fault
from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import fetched_until, until

#: around gw1's street (21.03, 105.81–105.83), not bus1's (21.033–21.036, 105.850–105.851)
GW1_STREET = "105.805,21.025,105.835,21.035"
CITY = "105.7,20.9,105.9,21.1"


async def test_zoomed_in_each_device_of_the_viewport_zoomed_out_clusters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings) as city, running_controller(settings) as ctl, api_client(ctl) as api:
        await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="first polls")
        city.segments.find("gw1", 2).faults.add(Fault.LAMP_FAILURE)

        async def view(bbox: str, zoom: int) -> dict[str, Any]:
            answer = await api.get("/api/v1/map/view", params={"bbox": bbox, "zoom": zoom})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("application/geo+json")
            body: dict[str, Any] = answer.json()
            return body

        street = await fetched_until(
            lambda: view(GW1_STREET, 17),
            lambda b: any(f["properties"]["state"] == "fault" for f in b["features"]),
            within_s=10,
            what="the lamp out drawn",
        )
        assert street["mode"] == "points"
        assert sorted(f["id"] for f in street["features"]) == [f"gw1-{u:03d}" for u in range(1, 7)]
        out = next(f for f in street["features"] if f["id"] == "gw1-002")
        assert out["properties"]["kind"] == "lamp"
        assert out["geometry"]["coordinates"][1] == pytest.approx(21.03)

        # A viewport with more devices than the map draws one by one: clusters, each counted.
        monkeypatch.setattr(map_view, "MAX_POINTS", 3)
        whole = await view(CITY, 12)
        assert whole["mode"] == "clusters"
        clusters = [f["properties"] for f in whole["features"]]
        assert all(c["cluster"] for c in clusters)
        assert sum(c["count"] for c in clusters) == len(ctl.devices) == 9
        assert sum(c["states"].get("fault", 0) for c in clusters) == 1
        assert 2 <= len(clusters) < 9  # the two streets ~4 km apart are in different cells
        country = await view(CITY, 5)  # cells of ~300 km: the whole city in one
        assert [f["properties"]["count"] for f in country["features"]] == [9]
        lon, lat = country["features"][0]["geometry"]["coordinates"]
        assert 105.81 < lon < 105.851
        assert 21.03 < lat < 21.036
        assert (await view(CITY, 16))["mode"] == "points"  # a street's zoom: points whatever the count

        bad_ones: list[dict[str, str | int]] = [
            {"bbox": "105.9,21,105.8,21.1", "zoom": 12},  # west east of east
            {"bbox": CITY, "zoom": 23},
            {"zoom": 12},  # no viewport: not the whole city by accident
        ]
        for bad in bad_ones:
            refused = await api.get("/api/v1/map/view", params=bad)
            assert refused.status_code == 422
            assert "error" in refused.json()
