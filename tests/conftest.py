"""Shared fixtures: free loopback ports and small simulated cities on real sockets."""

from __future__ import annotations

import logging
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """n different ports free on 127.0.0.1 right now (held together while chosen, so distinct)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session", autouse=True)
def _socat_present() -> None:
    if shutil.which("socat") is None:
        pytest.fail("socat is required (make test installs it)")


@pytest.fixture(params=["sqlite", "postgresql"])
async def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The registry database a test runs on: the SQLite default, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/registry.db"
        return
    from tests.postgres import fresh_database

    async with fresh_database() as url:
        yield url


@pytest.fixture
def pty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pty"
    d.mkdir()
    return d


@pytest.fixture
def mosquitto(tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.mosquitto import Mosquitto

    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()
