"""`/metrics` passes Prometheus's own linter and says what each series means, once.

Before: `lamplighter_task_restarts` (a count) was a gauge; one gauge `lamplighter_telemetry_points`
mixed counts that only grow with a current level; every counter had a `_created` twin.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.config import load_config
from tests.api.keys import api_client
from tests.controller.city import influx_telemetry, running_city, running_controller, with_influx, write_city
from tests.tsdb import InfluxDB1
from tests.waiting import until


async def _promtool(text: str) -> tuple[int, str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is required (make test installs Debian's prometheus package)")
    proc = await asyncio.create_subprocess_exec(
        exe, "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate(text.encode())
    return proc.returncode or 0, out.decode()


async def test_metrics_pass_promtool_and_keep_counters_and_levels_apart(tmp_path: Path) -> None:
    influx = InfluxDB1(tmp_path / "influx")
    influx.start()
    try:
        path = write_city(tmp_path)
        path.write_text(with_influx(path.read_text(), influx_telemetry(influx.url, tmp_path / "buffer")))
        settings = load_config(path)
        async with (
            running_city(settings),
            running_controller(settings) as ctl,
            api_client(ctl, "viewer") as api,
        ):
            await until(lambda: ctl.metrics.readings_stored._value.get() > 20, within_s=15)
            text = (await api.get("/metrics")).text
    finally:
        influx.stop()
    code, lint = await _promtool(text)
    assert code == 0, lint
    assert lint.strip() == "", lint
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert not [n for n in text.splitlines() if "_created" in n]
    assert families["lamplighter_task_restarts"].type == "counter"
    assert families["lamplighter_telemetry_points_written"].type == "counter"
    assert families["lamplighter_telemetry_points_buffered"].type == "gauge"
    written = families["lamplighter_telemetry_points_written"].samples[0]
    assert written.name == "lamplighter_telemetry_points_written_total"
    assert written.value > 0
    for family in families.values():  # a counter's series all end in _total
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
