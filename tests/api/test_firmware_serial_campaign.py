"""A campaign through the API to legacy nodes on a serial line the controller keeps polling."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.config import load_config
from firmware_bridge.signing import generate_keypair, load_private_key, sign_image
from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller
from tests.waiting import fetched_until, json_of, until


def config(tmp_path: Path) -> Path:
    path = tmp_path / "city.toml"
    path.write_text(f"""
[database]
url = "sqlite+aiosqlite:///{tmp_path}/r.db"
[telemetry]
url = "sqlite+aiosqlite:///{tmp_path}/t.db"
[firmware]
trusted_keys = ["release.pub.pem"]
images_dir = "{tmp_path}/firmware"
chunk_size = 512

[[sites]]
id = "hn"
latitude = 21.0
longitude = 105.8

[[links]]
id = "line1"
site = "hn"
kind = "serial_line"
port = "{tmp_path}/pty/line1"
baudrate = 115200
timeout_s = 0.5
retries = 1

[[device_ranges]]
id_prefix = "node-"
link = "line1"
unit_ids = [1, 3]
profile = "legacy_node"
group = "hanoi/hang-bac"
start = [21.0, 105.8]
end = [21.0, 105.81]
poll_interval_s = 0.3
""")
    return path


async def test_nodes_on_a_polled_line_are_updated_while_polling_goes_on(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "release.pem", tmp_path / "release.pub.pem")
    image = bytes(range(256)) * 40
    signed = sign_image(image, load_private_key(tmp_path / "release.pem"), model="legacy_node", version="1.3")
    settings = load_config(config(tmp_path))
    async with running_city(settings) as city, running_controller(settings) as ctl:
        await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="first polls")
        async with api_client(ctl) as client:
            files: dict[str, bytes | str] = {"image": image, "manifest": signed.model_dump_json()}
            sha = (await client.post("/api/v1/firmware", files=files)).json()["sha256"]
            polls_before = ctl.fleet["node-002"].counters["polls_ok"]
            body = {"id": "nodes-1.3", "image": sha, "group": "hanoi", "current_version": "1.2"}
            created = await client.post("/api/v1/campaigns", json=body)
            assert created.status_code == 201, created.text
            final = await fetched_until(
                lambda: json_of(client.get("/api/v1/campaigns/nodes-1.3")),
                lambda c: c["state"] in ("finished", "stopped"),
                within_s=60,
                what="campaign nodes-1.3 ended",
            )
            polls_during = ctl.fleet["node-002"].counters["polls_ok"] - polls_before
            await asyncio.sleep(1.0)  # the next polls read the new version
            reported = {d: ctl.fleet[d].last_values()["firmware_version"] for d in ctl.fleet.devices}
        nodes = city.segments.lines["line1"]
    assert created.status_code == 201, created.text
    assert final["state"] == "finished", final
    assert final["summary"] == {"UPDATED": 3}
    assert polls_during >= 3  # the lamps were polled between the chunks
    assert {b.version for b in nodes.bootloaders.values()} == {"1.3"}
    assert set(reported.values()) == {"1.3"}
