"""Legacy serial lamp nodes reach the same reading and command paths as Modbus lamps."""

from __future__ import annotations

from pathlib import Path

from controller.commands import Command
from controller.config import load_config
from simulators.lamp import Fault
from tests.controller.city import running_city, running_controller
from tests.waiting import until


async def test_legacy_nodes_are_polled_commanded_and_their_faults_seen(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(f"""
[database]
url = "sqlite+aiosqlite:///{tmp_path}/r.db"
[telemetry]
url = "sqlite+aiosqlite:///{tmp_path}/t.db"
[poller]
offline_after_failures = 2

[[sites]]
id = "hn"
latitude = 21.0
longitude = 105.8

[[links]]
id = "line1"
site = "hn"
kind = "serial_line"
port = "{tmp_path}/pty/line1"
baudrate = 19200
timeout_s = 0.3
retries = 0

[[device_ranges]]
id_prefix = "node-"
link = "line1"
unit_ids = [1, 3]
profile = "legacy_node"
start = [21.0, 105.8]
end = [21.0, 105.81]
poll_interval_s = 0.2
""")
    settings = load_config(path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        await until(lambda: all(st.state == "ok" for st in ctl.fleet.devices.values()))
        assert ctl.dispatcher is not None
        row = await ctl.dispatcher.execute("node-002", Command(action="set_level", value=55))
        assert row.status == "confirmed"
        assert row.readback == {"dim_level_pct": 55, "lamp_on": True}
        city.segments.find("line1", 3).faults.add(Fault.NO_RESPONSE)
        city.segments.find("line1", 1).faults.add(Fault.CORRUPT_REGISTER)
        await until(lambda: ctl.fleet["node-003"].state == "offline")
        await until(lambda: ctl.fleet["node-001"].counters["decode"] >= 1)
        assert "checksum" in (ctl.fleet["node-001"].last_error or "")
        assert ctl.fleet["node-002"].state == "ok"
