"""A private Mosquitto broker for tests: own port on 127.0.0.1, own persistence under a temp dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import free_port
from tests.tls_certs import TlsFiles


class Mosquitto:
    """Start, stop and restart a real Mosquitto (same port and persistence across restarts)."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        nodelay: bool = False,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        max_packet_bytes: int | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        """`users` are added with mosquitto_passwd; or give a `password_file` made elsewhere."""
        exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
        if exe is None:
            raise RuntimeError("mosquitto is required (make test installs the Debian package)")
        self.exe = exe
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.dir}/mosquitto.log",
            "max_queued_messages 100000",
        ]
        if nodelay:
            # request/reply traffic (firmware frames) would otherwise wait ~40 ms per hop (Nagle).
            # Off by default to keep the other tests' timing as it was measured; with it, QoS 1
            # redeliveries after a broker restart (at least once) became more frequent.
            lines.append("set_tcp_nodelay true")
        if tls is not None:  # client certificates required, signed by the test CA
            lines += [
                f"cafile {tls.ca}",
                f"certfile {tls.server_cert}",
                f"keyfile {tls.server_key}",
                "require_certificate true",
            ]
        if os.geteuid() == 0:
            # as root, mosquitto switches to its own user, which cannot read a private temp dir
            lines.append("user root")
        if users:
            pwfile = password_file or self.dir / "passwd"
            if not pwfile.exists():
                pwfile.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password], check=True)
            password_file = pwfile
        if password_file is not None:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if acl_file is not None:
            lines.append(f"acl_file {acl_file}")
        if max_packet_bytes is not None:
            lines.append(f"max_packet_size {max_packet_bytes}")
        lines += extra
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # to a file, not a pipe nobody reads while it runs (a full pipe would stall the broker)
        stderr = self.dir / "stderr.log"
        with stderr.open("ab") as err_file:
            since = err_file.tell()  # a restart appends: its own lines start here
            self._proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stderr=err_file)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = stderr.read_bytes()[since:].decode(errors="replace")
                logfile = self.dir / "mosquitto.log"
                err += logfile.read_text() if logfile.exists() else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()  # mosquitto saves its persistence file on a clean exit
            self._proc.wait(timeout=10)
            self._proc = None
