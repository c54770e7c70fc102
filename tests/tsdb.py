"""Private time-series servers for tests: Debian's InfluxDB 1.x and VictoriaMetrics on loopback.

Each gets its own port on 127.0.0.1 and its data under a temp dir; `stop()` and `start()` keep the
data (an outage, then the server back). `make test` installs both Debian packages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


class _Server:
    exe_name = ""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which(self.exe_name)
        if exe is None:
            raise RuntimeError(f"{self.exe_name} is required (make test installs its Debian package)")
        self.exe = exe
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        # the child keeps its own copy of the descriptor: ours is closed at once
        with (self.dir / "server.log").open("ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.exe_name} exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            try:
                if self.ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.exe_name} did not start on {self.url}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


class InfluxDB1(_Server):
    """InfluxDB 1.x (`influxd`): `/write` and InfluxQL `/query`; with `auth`, an admin user."""

    exe_name = "influxd"

    def __init__(self, workdir: Path, *, auth: tuple[str, str] | None = None) -> None:
        super().__init__(workdir)
        self.auth = auth
        rpc = free_port()
        self.conf = self.dir / "influxdb.conf"
        self.conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{self.dir}/meta"
[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if auth else "false"}
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""",
            encoding="utf-8",
        )
        self._admin_made = False

    def command(self) -> list[str]:
        return [self.exe, "-config", str(self.conf)]

    def ready(self) -> bool:
        if httpx.get(f"{self.url}/ping", timeout=1).status_code != 204:
            return False
        if self.auth and not self._admin_made:  # the first user may be created without credentials
            user, password = self.auth
            q = f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
            httpx.post(f"{self.url}/query", params={"q": q}, timeout=5).raise_for_status()
            self._admin_made = True
        return True

    def query(self, q: str, db: str) -> list[list[object]]:
        """Rows of the first series of an InfluxQL query (as the admin, if auth is on)."""
        params = {"q": q, "db": db, "epoch": "ms"}
        if self.auth:
            params |= {"u": self.auth[0], "p": self.auth[1]}
        body = httpx.get(f"{self.url}/query", params=params, timeout=10).json()
        series = body["results"][0].get("series", [])
        return [row for s in series for row in s["values"]]


class VictoriaMetrics(_Server):
    """VictoriaMetrics: accepts InfluxDB line protocol on `/api/v2/write`; read back via `/api/v1/export`."""

    exe_name = "victoria-metrics"

    def command(self) -> list[str]:
        return [
            self.exe,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.dir}/data",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ]

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/health", timeout=1).status_code == 200

    def export(self, match: str) -> list[dict[str, object]]:
        """Every series matching a selector, as VictoriaMetrics' JSON lines export (new rows become
        searchable about a second after they are written)."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=10)
        text = httpx.get(f"{self.url}/api/v1/export", params={"match[]": match}, timeout=10).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]
