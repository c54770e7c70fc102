"""deploy/: the systemd unit, the container image definition and the compose file for a city, each
checked by its tool's own checker (systemd-analyze verify, hadolint, docker-compose config). No
image is built and no daemon is started here: this machine has no container runtime to run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import ControllerSettings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is missing: `make system-deps` (or `make install`) installs it")
    return found


def verify_unit(unit: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify in a root of its own: the unit's ExecStart is an executable there,
    the targets it names are the system's."""
    (root / "opt/lamplighter/bin").mkdir(parents=True, exist_ok=True)
    program = root / "opt/lamplighter/bin/lamplighter"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for target in SYSTEM_UNITS.glob("*.target"):
        if target.is_file() and not target.is_symlink():
            shutil.copy(target, units)
    placed = root / "etc/systemd/system" / unit.name
    placed.parent.mkdir(parents=True, exist_ok=True)
    placed.write_text(unit.read_text())
    command = [tool("systemd-analyze"), f"--root={root}", "--man=no", "verify", str(placed)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = DEPLOY / "lamplighter@.service"
    checked = verify_unit(unit, tmp_path / "root")
    assert checked.returncode == 0, checked.stderr
    # the checker does check: the same unit without its ExecStart is refused
    broken = tmp_path / "broken" / unit.name
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("ExecStart=", "ExecStartX="))
    assert verify_unit(broken, tmp_path / "root2").returncode != 0


def test_the_container_image_definition_passes_hadolint() -> None:
    linted = subprocess.run(
        [tool("hadolint"), str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [tool("docker-compose"), "-f", str(DEPLOY / "compose.yaml"), "config"]
    return subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **env})


def test_the_compose_file_passes_docker_compose_config_and_names_each_instance_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert compose_config({"POSTGRES_PASSWORD": ""}).returncode != 0  # no database password: refused
    checked = compose_config({"POSTGRES_PASSWORD": "s3cret"})
    assert checked.returncode == 0, checked.stderr
    services: dict[str, Any] = yaml.safe_load(checked.stdout)["services"]
    controllers: dict[str, dict[str, str]] = {
        name: s["environment"]
        for name, s in services.items()
        if "LAMPLIGHTER_CLUSTER__INSTANCES" in s.get("environment", {})
    }
    numbered = [
        e["LAMPLIGHTER_CLUSTER__INSTANCE"]
        for e in controllers.values()
        if "LAMPLIGHTER_CLUSTER__INSTANCE" in e
    ]
    numbers = sorted(int(n) for n in numbered)
    assert numbers == list(range(len(numbers)))
    assert {int(e["LAMPLIGHTER_CLUSTER__INSTANCES"]) for e in controllers.values()} == {len(numbers)}
    standbys = [n for n, e in controllers.items() if e.get("LAMPLIGHTER_CLUSTER__STANDBY") == "true"]
    assert standbys == ["standby"]
    # the settings the compose file gives are real ones: an instance built from them has them
    for key, value in controllers["lamplighter-1"].items():
        monkeypatch.setenv(key, value)
    settings = ControllerSettings()
    assert settings.cluster.instance == 1
    assert settings.cluster.instances == 3
    assert settings.telemetry.backend == "influxdb"
    assert settings.database.url.startswith("postgresql+asyncpg://lamplighter:s3cret@postgres:5432/")
