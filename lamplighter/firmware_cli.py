"""`lamplighter firmware …` — keys, signing, verifying, and pushing an image down a serial cable."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from drivers.base import SerialPort
from drivers.firmware import (
    FirmwareRejected,
    SignedManifest,
    check_image,
    check_manifest,
    parse_signed_manifest,
)
from firmware_bridge.serial_channel import SerialFirmwareChannel
from firmware_bridge.signing import (
    SigningKeyError,
    generate_keypair,
    load_private_key,
    sign_image,
    trusted_keys,
)
from firmware_bridge.transfer import TransferOptions, TransferStatus, transfer
from lamplighter.cli_support import TYPER_OPTIONS, ApiConfigOpt, ApiOpt, ApiTarget, api_target, call, fail
from simulators.bootloader import BootFault, BootloaderModel, SerialBootloaders
from simulators.pty import PtyPair

firmware_app = typer.Typer(help="Signed firmware: keys, signing, checking, pushing.", **TYPER_OPTIONS)
PassEnv = Annotated[
    str | None, typer.Option(help="name of an environment variable holding the key's passphrase")
]
TrustedOpt = Annotated[list[Path], typer.Option("--trusted-key", help="public key(s) to trust (PEM)")]


@firmware_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option(help="directory for the key files")] = Path("keys"),
    name: Annotated[str, typer.Option(help="file name stem")] = "release",
    passphrase_env: PassEnv = None,
) -> None:
    """Make an Ed25519 key pair: NAME.pem (private, mode 0600) and NAME.pub.pem (to distribute)."""
    private, public = out / f"{name}.pem", out / f"{name}.pub.pem"
    try:
        kid = generate_keypair(private, public, _passphrase(passphrase_env))
    except FileExistsError:
        fail(f"{private} exists: refusing to overwrite a private key")
    typer.echo(f"key {kid}: private {private} (0600), public {public}")


@firmware_app.command("sign")
def sign(
    image: Path,
    model: Annotated[str, typer.Option(help="device model (profile name)")],
    version: Annotated[str, typer.Option(help="image version, e.g. 1.5.0")],
    key: Annotated[Path, typer.Option(help="private key (PEM)")],
    min_hw_rev: Annotated[int, typer.Option(help="oldest hardware revision it runs on")] = 0,
    notes: Annotated[str, typer.Option(help="release notes")] = "",
    passphrase_env: PassEnv = None,
    out: Annotated[Path | None, typer.Option(help="manifest file [default: IMAGE.manifest.json]")] = None,
) -> None:
    """Write the signed manifest of an image."""
    try:
        private = load_private_key(key, _passphrase(passphrase_env))
        signed = sign_image(
            image.read_bytes(), private, model=model, version=version, min_hw_rev=min_hw_rev, notes=notes
        )
    except (SigningKeyError, OSError, ValueError) as exc:
        fail(str(exc))
    target = out or image.with_name(image.name + ".manifest.json")
    target.write_text(signed.model_dump_json(indent=2) + "\n", encoding="utf-8")
    m = signed.manifest
    typer.echo(f"{target}: {m.model} {m.version}, {m.size} bytes, sha256 {m.sha256[:16]}…, key {m.key_id}")


@firmware_app.command("verify")
def verify(
    image: Path,
    trusted_key: TrustedOpt,
    manifest: Annotated[Path | None, typer.Option(help="[default: IMAGE.manifest.json]")] = None,
    model: Annotated[str | None, typer.Option(help="the device model it must be for")] = None,
) -> None:
    """Check an image against its manifest and the trusted keys; exit 1 with the reason if it fails."""
    try:
        signed = parse_signed_manifest(
            (manifest or image.with_name(image.name + ".manifest.json")).read_bytes()
        )
        m = check_manifest(signed, trusted_keys(trusted_key), model=model)
        check_image(image.read_bytes(), m)
    except FirmwareRejected as exc:
        fail(f"REFUSED ({exc.reason}): {exc}")
    except (SigningKeyError, OSError) as exc:
        fail(str(exc))
    typer.echo(f"OK: {m.model} {m.version}, {m.size} bytes, signed by key {m.key_id}")


@firmware_app.command("push")
def push(
    image: Path,
    port: Annotated[str, typer.Option(help="serial port, e.g. /dev/ttyUSB0")],
    trusted_key: TrustedOpt,
    manifest: Annotated[Path | None, typer.Option(help="[default: IMAGE.manifest.json]")] = None,
    baud: Annotated[int, typer.Option(help="baud rate")] = 115200,
    address: Annotated[
        int, typer.Option(help="device address on the line (0 on a point-to-point cable)")
    ] = 0,
    chunk_size: Annotated[int, typer.Option(min=16, max=8192)] = 512,
    allow_downgrade: Annotated[
        bool, typer.Option(help="allow an older version than the installed one")
    ] = False,
) -> None:
    """Send an image to one device over a serial line (a technician's cable), with a progress bar."""
    try:
        signed = parse_signed_manifest(
            (manifest or image.with_name(image.name + ".manifest.json")).read_bytes()
        )
        keys = trusted_keys(trusted_key)
        data = image.read_bytes()
    except (FirmwareRejected, SigningKeyError, OSError) as exc:
        fail(str(exc))
    status = asyncio.run(_push(data, signed, keys, port, baud, address, chunk_size, allow_downgrade))
    if status.state != "UPDATED":
        fail(f"FAILED: {status.reason}")
    typer.echo(f"UPDATED: {status.version_before} → {status.version_after} ({status.resent} frames resent)")


async def _push(
    data: bytes,
    signed: SignedManifest,
    keys: dict[str, Ed25519PublicKey],
    port: str,
    baud: int,
    address: int,
    chunk_size: int,
    allow_downgrade: bool,
) -> TransferStatus:
    channel = SerialFirmwareChannel(SerialPort(port=port, baudrate=baud))
    options = TransferOptions(chunk_size=chunk_size, allow_downgrade=allow_downgrade)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns) as bar:
        task = bar.add_task(f"{signed.manifest.version} → {port}", total=len(data))

        def show(s: TransferStatus) -> None:
            bar.update(task, completed=s.offset, description=f"{s.state.lower():11} {s.version}")

        try:
            return await transfer(channel, address, port, data, signed, keys, options, show)
        finally:
            await channel.close()


def _passphrase(env: str | None) -> bytes | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        fail(f"environment variable {env} is not set")
    return value.encode()


# -- through a running controller's API ----------------------------------------------------------


@firmware_app.command("upload")
def upload(
    image: Path,
    manifest: Annotated[Path | None, typer.Option(help="[default: IMAGE.manifest.json]")] = None,
    config: ApiConfigOpt = None,
    api: ApiOpt = None,
) -> None:
    """Upload a signed image to the controller (it checks it before keeping it)."""
    manifest = manifest or image.with_name(image.name + ".manifest.json")
    files = {"image": image.read_bytes(), "manifest": manifest.read_bytes()}
    body = call(api_target(api, config), "POST", "/api/v1/firmware", files=files, timeout=120)
    m = body["manifest"]
    typer.echo(f"accepted: {m['model']} {m['version']} sha256 {body['sha256']}")


@firmware_app.command("campaign")
def campaign(
    action: Annotated[str, typer.Argument(help="start | status | pause | resume | cancel | retry")],
    campaign_id: Annotated[str, typer.Argument(help="campaign id")],
    image: Annotated[str | None, typer.Option(help="start: sha256 of an uploaded image")] = None,
    group: Annotated[str | None, typer.Option(help="start: target this group")] = None,
    waves: Annotated[str, typer.Option(help="start: cumulative %, e.g. 1,10,100")] = "1,10,100",
    error_threshold: Annotated[float, typer.Option(help="start: stop above this % failed in a wave")] = 10,
    success_threshold: Annotated[float, typer.Option(help="start: pause below this % updated")] = 95,
    approval: Annotated[bool, typer.Option(help="start: wait for approval between waves")] = False,
    follow: Annotated[bool, typer.Option(help="show progress bars until it ends")] = True,
    config: ApiConfigOpt = None,
    api: ApiOpt = None,
) -> None:
    """Start, watch and steer a rollout campaign on a running controller."""
    target = api_target(api, config)
    if action == "start":
        if image is None:
            fail("start needs --image SHA256")
        body = {
            "id": campaign_id,
            "image": image,
            "group": group,
            "waves": [float(w) for w in waves.split(",")],
            "error_threshold_pct": error_threshold,
            "success_threshold_pct": success_threshold,
            "approval": approval,
        }
        call(target, "POST", "/api/v1/campaigns", json=body)
    elif action in ("pause", "resume", "cancel", "retry"):
        call(target, "POST", f"/api/v1/campaigns/{campaign_id}/{action}")
    elif action != "status":
        fail(f"unknown action {action!r}: start, status, pause, resume, cancel or retry")
    state = call(target, "GET", f"/api/v1/campaigns/{campaign_id}")
    if follow and action in ("start", "resume", "retry", "status"):
        state = asyncio.run(_follow(target, campaign_id, state))
    typer.echo(f"{state['id']}: {state['state']}{' — ' + state['reason'] if state['reason'] else ''}")
    typer.echo(f"  {state['summary']}")
    if state["state"] in ("stopped", "cancelled"):
        raise typer.Exit(1)


async def _follow(api: ApiTarget, campaign_id: str, state: dict[str, Any]) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns) as bar:
        tasks = [bar.add_task(f"wave {w['index'] + 1}", total=w["devices"]) for w in state["waves"]]
        while True:
            for task, wave in zip(tasks, state["waves"], strict=True):
                done = sum(n for k, n in wave["counts"].items() if k in ("UPDATED", "FAILED"))
                failed = wave["counts"].get("FAILED", 0)
                bar.update(task, completed=done, description=f"wave {wave['index'] + 1} ({failed} failed)")
            if state["state"] not in ("running", "created"):
                return state
            await asyncio.sleep(0.5)
            state = await asyncio.to_thread(call, api, "GET", f"/api/v1/campaigns/{campaign_id}")


@firmware_app.command("simulate-bootloader")
def simulate_bootloader(
    port: Annotated[Path, typer.Option(help="serial port path to create (the controller's end)")],
    trusted_key: TrustedOpt,
    model: Annotated[str, typer.Option(help="the device model it reports")] = "legacy_node",
    version: Annotated[str, typer.Option(help="the version it runs now")] = "1.0.0",
    address: Annotated[int, typer.Option(help="its address on the line")] = 0,
    baud: Annotated[int, typer.Option(help="baud rate (wire time is simulated)")] = 115200,
    fault: Annotated[list[BootFault] | None, typer.Option(help="crc_errors, silent, boot_fail")] = None,
) -> None:
    """A simulated bootloader on a pseudo-terminal, for trying `firmware push` without hardware."""
    try:
        keys = trusted_keys(trusted_key)
    except SigningKeyError as exc:
        fail(str(exc))
    device = BootloaderModel(
        address=address, model=model, trusted=keys, version=version, faults=set(fault or ())
    )
    asyncio.run(_serve_bootloader(port, device, baud))


async def _serve_bootloader(port: Path, device: BootloaderModel, baud: int) -> None:
    pty = PtyPair(port)
    await pty.start()
    sim = SerialBootloaders(str(pty.device_end), [device], baudrate=baud)
    await sim.start()
    typer.echo(
        f"bootloader {device.model} {device.version} on {port} (address {device.address:02X}); Ctrl-C stops"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()
        await pty.stop()
        typer.echo(f"stopped: now running {device.version} (slot {device.active})")
