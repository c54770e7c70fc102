"""`lamplighter firmware` as a release engineer and a technician use it (real processes, a pty cable)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

from drivers.firmware import key_id
from firmware_bridge.signing import load_public_key
from simulators.bootloader import BootloaderModel, SerialBootloaders
from simulators.pty import PtyPair
from tests.firmware_bridge.conftest import image_of
from tests.waiting import until

LAMPLIGHTER = [sys.executable, "-m", "lamplighter", "firmware"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAMPLIGHTER, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_keygen_sign_verify_and_a_tampered_image(tmp_path: Path) -> None:
    made = cli(
        "keygen", "--out", str(tmp_path / "keys"), "--passphrase-env", "FW_PASS", env={"FW_PASS": "hunter22"}
    )
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((tmp_path / "keys" / "release.pem").stat().st_mode) == 0o600
    again = cli("keygen", "--out", str(tmp_path / "keys"))
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
    image = tmp_path / "node-1.3.0.bin"
    image.write_bytes(image_of(5000))
    key = str(tmp_path / "keys" / "release.pem")
    no_pass = cli("sign", str(image), "--model", "legacy_node", "--version", "1.3.0", "--key", key)
    assert no_pass.returncode == 1
    assert "encrypted: give its passphrase" in no_pass.stderr
    signed = cli(
        "sign", str(image), "--model", "legacy_node", "--version", "1.3.0", "--key", key,
        "--passphrase-env", "FW_PASS", "--notes", "fixes the dimming curve", env={"FW_PASS": "hunter22"},
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert (tmp_path / "node-1.3.0.bin.manifest.json").exists()
    pub = str(tmp_path / "keys" / "release.pub.pem")
    ok = cli("verify", str(image), "--trusted-key", pub, "--model", "legacy_node")
    assert ok.returncode == 0, ok.stderr
    assert "OK: legacy_node 1.3.0, 5000 bytes" in ok.stdout
    data = bytearray(image.read_bytes())
    data[42] ^= 1
    image.write_bytes(bytes(data))
    bad = cli("verify", str(image), "--trusted-key", pub)
    assert bad.returncode == 1
    assert "REFUSED (hash_mismatch)" in bad.stderr


async def test_a_technician_pushes_an_image_down_a_serial_cable(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert cli("keygen", "--out", str(keys)).returncode == 0
    public = load_public_key(keys / "release.pub.pem")
    image = tmp_path / "fw.bin"
    image.write_bytes(image_of(20_000))
    assert (
        cli(
            "sign",
            str(image),
            "--model",
            "legacy_node",
            "--version",
            "2.0.0",
            "--key",
            str(keys / "release.pem"),
        ).returncode
        == 0
    )
    pty = PtyPair(tmp_path / "ttyUSB0")
    await pty.start()
    device = BootloaderModel(
        address=0, model="legacy_node", trusted={key_id(public): public}, version="1.2.0"
    )
    sim = SerialBootloaders(str(pty.device_end), [device], baudrate=115200)
    await sim.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            *LAMPLIGHTER, "push", str(image), "--port", str(pty.controller_end),
            "--trusted-key", str(keys / "release.pub.pem"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await sim.stop()
        await pty.stop()
    assert proc.returncode == 0, err.decode()
    assert "UPDATED: 1.2.0 → 2.0.0" in out.decode()
    assert device.version == "2.0.0"


async def test_a_technician_tries_push_against_the_simulated_bootloader_command(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert cli("keygen", "--out", str(keys)).returncode == 0
    image = tmp_path / "fw.bin"
    image.write_bytes(image_of(3000))
    signed = cli(
        "sign", str(image), "--model", "legacy_node", "--version", "1.1.0", "--key", str(keys / "release.pem")
    )
    assert signed.returncode == 0
    port = tmp_path / "ttySIM"
    pub = keys / "release.pub.pem"
    sim = await asyncio.create_subprocess_exec(
        *LAMPLIGHTER, "simulate-bootloader", "--port", str(port), "--trusted-key", str(pub),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await until(port.exists, what="the bootloader's port")
        push = await asyncio.create_subprocess_exec(
            *LAMPLIGHTER, "push", str(image), "--port", str(port), "--trusted-key", str(pub),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(push.communicate(), 60)
    finally:
        sim.send_signal(2)
        sim_out, _ = await asyncio.wait_for(sim.communicate(), 20)
    assert push.returncode == 0, err.decode()
    assert "UPDATED: 1.0.0 → 1.1.0" in out.decode()
    assert "stopped: now running 1.1.0 (slot B)" in sim_out.decode()
    assert not port.exists()
