"""The `lamplighter` command as a user runs it: separate processes, real ports, Ctrl-C to stop."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from lamplighter.cli_support import API_KEY_ENV, api_headers
from tests.conftest import free_port
from tests.controller.city import write_city

LAMPLIGHTER = [sys.executable, "-m", "lamplighter"]
# what `make run` adds to the lamps: its own ports, the embedded broker, a sensor and an access point
EXTRA = """
[api]
port = {api_port}
[simulator]
control_port = {control_port}
mqtt_interval_s = 0.5
[embedded_broker]
enabled = true
port = 0
[outbound]
enabled = true
host = "embedded"

[[links]]
id = "broker"
site = "hn"
kind = "mqtt"
host = "embedded"

[[devices]]
id = "env-1"
link = "broker"
profile = "env_sensor"
latitude = 21.0
longitude = 105.8

[[devices]]
id = "ap-1"
link = "broker"
profile = "wifi_ap"
latitude = 21.0
longitude = 105.8
"""


def test_check_config_reports_problems_with_exit_code_2(tmp_path: Path) -> None:
    good = write_city(tmp_path)
    ok = subprocess.run([*LAMPLIGHTER, "check-config", "-c", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0
    assert "2 links, 9 devices" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('profile = "lamp_lcu"', 'profile = "lamp_9000"', 1))
    result = subprocess.run([*LAMPLIGHTER, "run", "-c", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr
    assert "device_ranges[0].profile: unknown profile 'lamp_9000'" in result.stderr


def test_run_with_simulators_serves_the_api_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    config = write_city(tmp_path, interval=0.5)
    api_port, control_port = free_port(), free_port()
    config.write_text(config.read_text() + EXTRA.format(api_port=api_port, control_port=control_port))
    proc = subprocess.Popen(
        [*LAMPLIGHTER, "run", "-c", str(config), "--simulate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = _Output(proc)
    try:
        key = output.demo_key()  # demo mode prints a fresh admin key; it must work
        os.environ[API_KEY_ENV] = key  # for _wait_for_ok and the CLI commands that call the API
        base = f"http://127.0.0.1:{api_port}"
        devices = _wait_for_ok(f"{base}/api/v1/devices?state=ok", expect_total=11)
        kinds = {d["id"]: d["kind"] for d in devices["items"]}
        assert kinds["env-1"] == "sensor"
        assert kinds["ap-1"] == "access_point"
        assert list(kinds.values()).count("lamp") == 9
        # the demo's air sensor has its simulated last 12 hours: its district's index shows at once
        air = httpx.get(f"{base}/api/v1/air", timeout=10, headers=api_headers()).json()
        assert air["scheme"] == "vn_aqi"
        (district,) = air["districts"]
        assert district["index"] is not None
        assert district["level"]["colour"].startswith("#")
        # The embedded broker is not open: strangers are refused, the printed reader reads state.
        reader, password, broker = output.mqtt_reader()
        host, port = broker.split(":")
        sub = ["mosquitto_sub", "-h", host, "-p", port, "-t", "lamplighter/#", "-C", "1", "-W", "10"]
        stranger = subprocess.run(sub, capture_output=True, text=True, timeout=30)
        assert stranger.returncode != 0
        assert "not auth" in (stranger.stderr + stranger.stdout).lower()
        ioc = subprocess.run([*sub, "-u", reader, "-P", password], capture_output=True, text=True, timeout=30)
        assert ioc.returncode == 0, ioc.stderr
        assert '"state"' in ioc.stdout
        inject = _inject_fault(control_port, unit=4)
        assert inject.returncode == 0
        assert "faults: lamp_failure" in inject.stdout
        faulty = _wait_for_ok(f"{base}/api/v1/devices?state=fault", expect_total=1)
        assert faulty["items"][0]["id"] == "gw1-004"
        raised = _wait_for_ok(f"{base}/api/v1/alerts?device=gw1-004", expect_total=1)
        assert raised["items"][0]["kind"] == "lampFailure"
        examples = Path(__file__).parents[2] / "examples" / "schedules.toml"
        applied = subprocess.run(
            [*LAMPLIGHTER, "schedules", "apply", str(examples), "--api", base],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert applied.returncode == 0, applied.stderr
        assert "group calendar hanoi/hoan-kiem: applied" in applied.stdout
        listed = subprocess.run(
            [*LAMPLIGHTER, "schedules", "list", "--api", base], capture_output=True, text=True, timeout=30
        )
        assert listed.returncode == 0, listed.stderr
        assert "program nightly" in listed.stdout.splitlines()
        shown = subprocess.run(  # the API's address from the configuration, as `fault` and `auth` do
            [*LAMPLIGHTER, "schedules", "preview", "--group", "hanoi/hoan-kiem", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert shown.returncode == 0, shown.stderr
        assert "hanoi/hoan-kiem: 3 lamps, times in Asia/Ho_Chi_Minh" in shown.stdout
        steps = shown.stdout.splitlines()[1:-1]
        assert steps
        assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d +\d{1,3} %  ", s) for s in steps), steps
        assert "% saved" in shown.stdout
        assert (
            "program nightly" in shown.stdout
            or "program festive" in shown.stdout
            or "lanterns" in shown.stdout
        )
        unknown = _inject_fault(control_port, unit=99)
        assert unknown.returncode == 1
        assert "gw1 has no unit 99" in unknown.stderr
        url = ["--url", f"http://127.0.0.1:{control_port}"]
        cleared = subprocess.run(
            [*LAMPLIGHTER, "fault", "clear", "--link", "gw1", "--unit", "4", *url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert cleared.returncode == 0, cleared.stderr
        _wait_for_ok(f"{base}/api/v1/alerts?device=gw1-004&state=cleared", expect_total=1)
        tripped = subprocess.run(
            [*LAMPLIGHTER, "fault", "inject", "--link", "bus1", "--fault", "no_response", *url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "bus1: no_response on all 3 lamps" in tripped.stdout
        comms = _wait_for_ok(f"{base}/api/v1/alerts?kind=communicationFailure", expect_total=3)
        assert {a["device_id"] for a in comms["items"]} == {"bus1-001", "bus1-002", "bus1-003"}
        # the garbage collector, paused while the program started (lamplighter/__main__.py), runs again
        _wait_for_young_collections(base)
    finally:
        os.environ.pop(API_KEY_ENV, None)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        out = output.text()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0, out
    assert f"Lamplighter on http://127.0.0.1:{api_port}" in out
    assert "dashboard login:  demo / " in out
    assert "night operator:   ca-dem / " in out
    assert "controller stopped" in out
    assert "Traceback" not in out, out[out.find("Traceback") - 3000 : out.find("Traceback") + 3000]
    assert not (tmp_path / "pty" / "bus1").exists()  # the simulators' pty pair is gone too


def _inject_fault(control_port: int, unit: int) -> subprocess.CompletedProcess[str]:
    args = ["fault", "inject", "--link", "gw1", "--unit", str(unit), "--fault", "lamp_failure"]
    url = ["--url", f"http://127.0.0.1:{control_port}"]
    return subprocess.run([*LAMPLIGHTER, *args, *url], capture_output=True, text=True, timeout=30)


class _Output:
    """The process's output, read by a thread so the test can wait for one line with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._lines: queue.Queue[str] = queue.Queue()
        self._seen: list[str] = []
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self._lines.put(line)

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def mqtt_reader(self, timeout: float = 10) -> tuple[str, str, str]:
        """(user, password, host:port) of the MQTT reader demo mode prints."""
        line = self._line_with("MQTT (read", timeout)
        user, _, rest = line.split(": ", 1)[1].partition(" / ")
        password, _, broker = rest.partition(" on ")
        return user, password, broker.strip()

    def demo_key(self, timeout: float = 60) -> str:
        return self._line_with("API key (admin):", timeout).split(":", 1)[1].strip()

    def _line_with(self, marker: str, timeout: float) -> str:
        """The first line (seen already, or to come within `timeout`) that contains `marker`."""
        for line in self._seen:
            if marker in line:
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=1)
            except queue.Empty:
                continue
            self._seen.append(line)
            if marker in line:
                return line
        raise AssertionError(f"no line with {marker!r} printed:\n" + "".join(self._seen))

    def text(self) -> str:
        self._thread.join(timeout=10)
        while not self._lines.empty():
            self._seen.append(self._lines.get_nowait())
        return "".join(self._seen)


def _wait_for_young_collections(base: str, timeout: float = 30) -> None:
    pattern = re.compile(r'^lamplighter_gc_pause_seconds_count\{generation="0"\} (\S+)$', re.M)
    deadline = time.monotonic() + timeout
    seen = "no answer"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            seen = httpx.get(f"{base}/metrics", timeout=2, headers=api_headers()).text
            found = pattern.search(seen)
            if found and float(found[1]) > 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"no young collection in {timeout} s after start: {pattern.findall(seen)}")


def _wait_for_ok(url: str, expect_total: int, timeout: float = 30) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    body: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        try:
            body = httpx.get(url, timeout=2, headers=api_headers()).json()
            if body.get("total") == expect_total:
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never reached total={expect_total}: {body}")


def test_a_bad_schedule_file_is_refused_at_start(tmp_path: Path) -> None:
    config = write_city(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[programs]]\nid = "p"\nsteps = [{ at = "25:00", level = 50 }]\n')
    result = subprocess.run(
        [*LAMPLIGHTER, "run", "-c", str(config), "--schedules", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid schedule file" in result.stderr
    assert "programs.0.steps.0.at" in result.stderr


def test_a_command_that_cannot_reach_the_api_says_where_it_looked(tmp_path: Path) -> None:
    """Nothing listens on the configured port: the error names the address and where it came from."""
    config = write_city(tmp_path)
    port = free_port()
    config.write_text(config.read_text() + f"\n[api]\nport = {port}\n")
    down = subprocess.run(
        [*LAMPLIGHTER, "schedules", "preview", "--group", "hanoi", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 1
    assert f"cannot reach the controller's API at http://127.0.0.1:{port} ([api] of {config})" in down.stderr
    helped = subprocess.run(
        [*LAMPLIGHTER, "auth", "key", "create", "--help"], capture_output=True, text=True, timeout=30
    )
    assert "configuration file (its [database])" in helped.stdout  # not eaten as markup
