"""The registry database file is private to its owner: it holds the token secret and password hashes."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.controller.city import running_controller, settings_for


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
