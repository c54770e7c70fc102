"""Shared benchmark helpers: generate a city config of N lamps, run its simulators in a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import httpx

from controller.config import ControllerSettings

UNITS_PER_GATEWAY = 200


def free_port_block(n: int) -> int:
    """A base port such that base..base+n-1 are free on 127.0.0.1 right now."""
    for base in range(20000, 60000, 997):
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def write_city(
    path: Path,
    lamps: int,
    *,
    interval_s: float,
    data_dir: Path,
    per_gateway: int = UNITS_PER_GATEWAY,
    site: tuple[float, float] = (21.0, 105.8),
    extra: str = "",
    streets: bool = False,
) -> tuple[int, int]:
    """Write a config of `lamps` lamps behind Modbus TCP gateways; return (gateways, base port).

    `site`: latitude, longitude; `extra`: more TOML (alerts, outbound, webhooks …); `streets`: each
    gateway's lamps along their own street of a city grid (else all along one line)."""
    gateways = -(-lamps // per_gateway)
    base = free_port_block(gateways + 2)
    parts = [
        f"[api]\nport = {base + gateways}\n[simulator]\ncontrol_port = {base + gateways + 1}\n",
        f'[database]\nurl = "sqlite+aiosqlite:///{data_dir}/registry.db"\n',
        f'[telemetry]\nurl = "sqlite+aiosqlite:///{data_dir}/telemetry.db"\n',
        "[poller]\nqueue_size = 20000\n",
        f'[[sites]]\nid = "bench"\nlatitude = {site[0]}\nlongitude = {site[1]}\n',
        extra,
    ]
    left = lamps
    for g in range(gateways):
        units = min(per_gateway, left)
        left -= units
        parts.append(
            f'[[links]]\nid = "gw{g:03d}"\nsite = "bench"\nkind = "modbus_tcp"\nhost = "127.0.0.1"\n'
            f"port = {base + g}\ntimeout_s = 2.0\nretries = 0\n"
        )
        parts.append(
            f'[[device_ranges]]\nid_prefix = "gw{g:03d}-"\nlink = "gw{g:03d}"\nunit_ids = [1, {units}]\n'
            f'profile = "lamp_lcu"\ngroup = "bench/g{g:03d}"\n{_street(g) if streets else _ONE_LINE}'
            f"poll_interval_s = {interval_s}\n"
        )
    path.write_text("\n".join(parts), encoding="utf-8")
    return gateways, base


_ONE_LINE = "start = [21.0, 105.8]\nend = [21.01, 105.81]\n"


def _street(g: int) -> str:
    """Gateway g's street: 20 streets per row, rows 330 m apart, each street ~370 m long."""
    lat = 21.0 + (g // 20) * 0.003
    lon = 105.78 + (g % 20) * 0.004
    return f"start = [{lat:.4f}, {lon:.4f}]\nend = [{lat + 0.0004:.4f}, {lon + 0.0035:.4f}]\n"


@contextlib.contextmanager
def simulators(config: Path, control_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run `lamplighter simulate` for the config in its own process (its own core)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lamplighter", "simulate", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{control_port}/links", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"simulators exited with {proc.returncode}")
            time.sleep(0.2)
        else:
            raise RuntimeError("simulators did not start")
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def percentiles(samples: Sequence[float]) -> str:
    if len(samples) < 2:
        return "n/a"
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49] * 1e3:.2f} ms, p99 {q[98] * 1e3:.2f} ms"


def api_only(settings: ControllerSettings) -> ControllerSettings:
    """The settings for measuring the API itself: one client may ask as fast as it likes (the
    per-credential rate limit off), and fault detection off (made-up readings, every lamp lit,
    would raise a dayBurning storm whenever a bench runs in Hanoi's daytime)."""
    return settings.model_copy(
        update={
            "api": settings.api.model_copy(update={"rate_limit_per_s": 0}),
            "alerts": settings.alerts.model_copy(update={"enabled": False}),
        }
    )


def without_function_23(config: Path) -> None:
    """Make the config's controller use lamp_lcu without `write_read_registers` (a command written,
    then read back: two exchanges), from a profiles directory beside it; the simulators keep theirs."""
    (config.parent / "profiles").mkdir()
    text = resources.files("drivers.profiles").joinpath("lamp_lcu.toml").read_text()
    plain = text.replace("write_read_registers = true", "write_read_registers = false")
    assert plain != text
    (config.parent / "profiles" / "lamp_lcu.toml").write_text(plain)
    config.write_text('profiles_dir = "profiles"\n' + config.read_text())
