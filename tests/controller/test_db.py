"""The registry database: its file private to its owner (it holds the token secret and password
hashes), and what earlier versions wrote into it still read."""

from __future__ import annotations

import logging
import math
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from controller.config import load_config
from controller.db import create_engine
from controller.fleet import Fleet
from controller.registry import Registry
from tests.controller.city import running_controller, settings_for
from tests.waiting import until


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _database_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.db*"))


async def test_database_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_controller(settings) as ctl:
        await ctl.auth.token_secret()
        made = _database_files(tmp_path)
        assert {p.name for p in made} >= {"registry.db", "registry.db-wal", "telemetry.db"}
        assert {p.name: _mode(p) for p in made} == {p.name: 0o600 for p in made}

    # A file left world-readable by an earlier version is made private at the next start.
    (tmp_path / "registry.db").chmod(0o644)
    async with running_controller(settings):
        assert _mode(tmp_path / "registry.db") == 0o600


OLD_STATE_WITH_NAN = """
INSERT INTO device_state (device_id, state, last_seen, last_reading, counters, updated_at)
VALUES ('lamp-1', 'ok', NULL, '{"values": {"power_w": NaN, "voltage_v": 231.5}}', '{"polls_ok": 3}',
        '2026-12-01 00:00:00')
"""


async def test_a_state_saved_by_an_earlier_version_with_nan_in_it_still_loads(tmp_path: Path) -> None:
    """JSON columns are read with orjson now, which refuses the NaN that json used to write: such a
    row is read with json instead of stopping the start."""
    registry = Registry(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"))
    try:
        await registry.create_schema()
        async with registry.engine.begin() as conn:
            await conn.execute(text(OLD_STATE_WITH_NAN))
        fleet = Fleet(["lamp-1"])
        fleet.restore(await registry.load_states())
        doc = fleet["lamp-1"].last_reading_doc()
        assert doc is not None
        assert math.isnan(doc["values"]["power_w"])
        assert doc["values"]["voltage_v"] == 231.5
        assert fleet["lamp-1"].counters["polls_ok"] == 3
    finally:
        await registry.engine.dispose()


async def test_a_saved_reading_that_is_not_json_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved readings are decoded when first asked for (not at the start): a broken one is then
    dropped and said, not raised at the API or the map; the rest of the state is kept."""
    registry = Registry(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"))
    try:
        await registry.create_schema()
        async with registry.engine.begin() as conn:
            await conn.execute(text(OLD_STATE_WITH_NAN.replace('"voltage_v": 231.5}}', '"voltage_v": 23')))
        fleet = Fleet(["lamp-1"])
        fleet.restore(await registry.load_states())
        with caplog.at_level(logging.WARNING, logger="controller.fleet"):
            assert fleet["lamp-1"].last_values() == {}
            assert fleet["lamp-1"].last_reading_doc() is None
        assert [r.getMessage()[:49] for r in caplog.records] == [
            "lamp-1: its saved last reading is not a JSON obje"
        ]  # once: dropped, not decoded again
        assert fleet["lamp-1"].state == "ok"
        assert fleet["lamp-1"].counters["polls_ok"] == 3
    finally:
        await registry.engine.dispose()


async def test_a_device_saved_before_its_first_reading_comes_back_without_a_warning(
    tmp_path: Path, registry_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A device that never answered is saved with no reading (JSON null in the column): after a
    restart it has none, silently — a city's silent devices used to log a warning each at the first
    flush or map that asked (50,000 at a shutdown)."""
    settings = settings_for(tmp_path, registry_url=registry_url)
    async with running_controller(settings) as ctl:  # no simulators: no lamp answers
        await until(lambda: ctl.fleet["gw1-001"].counters["unreachable"] > 0, what="a failed poll")
    async with running_controller(settings) as ctl:
        lamp = ctl.fleet["gw1-001"]
        assert lamp.counters["unreachable"] > 0  # its saved state came back
        with caplog.at_level(logging.WARNING, logger="controller.fleet"):
            assert lamp.last_reading_doc() is None
            assert lamp.last_values() == {}
            assert ctl.fleet.rows(["gw1-001"])[0]["last_reading"] is None
        assert caplog.records == []


async def test_a_start_takes_the_devices_the_registry_holds(tmp_path: Path, registry_url: str) -> None:
    """The mirror of the config hands the start its devices instead of reading them back: they are
    the rows the registry then holds, value for value and type for type, in the order it reads them
    — after a first mirror, after an unchanged one, and after a change that removed devices."""
    city = load_config(Path(__file__).parents[2] / "examples" / "city.toml")
    settings = city.model_copy(update={"database": city.database.model_copy(update={"url": registry_url})})
    registry = Registry(create_engine(registry_url))
    try:
        await registry.create_schema()
        fewer = settings.model_copy(update={"device_ranges": ()})
        in_ranges = len(settings.all_devices()) - len(fewer.all_devices())
        assert in_ranges > 0
        for config, removed in ((settings, 0), (settings, 0), (fewer, in_ranges)):
            devices, gone = await registry.mirror_config(config)
            held = await registry.devices()
            assert gone == removed
            assert len(devices) == len(config.all_devices())
            assert [repr(d) for d in devices] == [repr(d) for d in held]
    finally:
        await registry.engine.dispose()
