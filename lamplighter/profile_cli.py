"""`lamplighter profile check FILE`: an engineer sees a profile's fields, and what a sample message or
a register dump decodes to, before any device uses it (docs/devices.md)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from drivers.errors import ProfileError
from drivers.fields import FieldValue
from drivers.payload import PayloadError, decode_json
from drivers.profile import DeviceProfile, parse_profile
from drivers.registers import codec_for
from lamplighter.cli_support import TYPER_OPTIONS, fail

profile_app = typer.Typer(help="Device profiles: check one before deploying it.", **TYPER_OPTIONS)


@profile_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="the profile (TOML)", exists=True, dir_okay=False)],
    sample: Annotated[
        Path | None,
        typer.Option("--sample", help="a message the device sends (MQTT profiles): print what it decodes to"),
    ] = None,
    registers: Annotated[
        Path | None,
        typer.Option(
            "--registers",
            help="a register dump (Modbus profiles), TOML: [input] and [holding] tables of "
            "address = [words] (0-based), e.g. `0 = [0x4366, 0x8000]`: print what a poll decodes to",
        ),
    ] = None,
    zone: Annotated[
        str | None, typer.Option("--zone", help="the link's timestamp_zone, for times without an offset")
    ] = None,
) -> None:
    """Validate a profile (errors name the file and line); with --sample or --registers, decode
    what the device sends with it."""
    try:
        profile = parse_profile(file.read_text(encoding="utf-8"), str(file))
    except ProfileError as exc:
        fail(f"invalid profile:\n{exc}")
    head = profile.profile
    typer.echo(f"{file}: OK — {head.name} ({head.kind}, {head.protocol}): {head.model}")
    for name in profile.mapped_fields():
        unit = profile.unit_of(name) or ""
        declared = " (declared)" if name in profile.fields else ""
        typer.echo(f"  {name:24} {unit}{declared}")
    if registers is not None:
        _decode_dump(profile, registers)
    if sample is None:
        return
    if profile.mqtt is None:
        fail(f"--sample decodes messages of MQTT profiles; {head.name} is {head.protocol}", 2)
    try:
        ts, values, rejected = decode_json(profile.mqtt, sample.read_bytes(), datetime.now(UTC), zone)
    except PayloadError as exc:
        fail(f"{sample}: the whole message is refused ({exc.reason}): {exc}")
    typer.echo(f"{sample}: reading at {ts.isoformat()}")
    _print_reading(profile, values, rejected)


def _print_reading(
    profile: DeviceProfile, values: Mapping[str, FieldValue], rejected: Mapping[str, str]
) -> None:
    for name, value in values.items():
        typer.echo(f"  {name:24} {value!r} {profile.unit_of(name) or ''}")
    for name, why in rejected.items():
        typer.echo(f"  {name:24} refused: {why}")
    if rejected:
        raise typer.Exit(1)


def _decode_dump(profile: DeviceProfile, dump: Path) -> None:
    """Decode one poll of a Modbus profile from a register dump, as the poller would."""
    if not profile.registers:
        fail(f"--registers decodes Modbus profiles; {profile.name} is {profile.profile.protocol}", 2)
    try:
        tables = tomllib.loads(dump.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        fail(f"{dump}: not a readable TOML register dump: {exc}")
    words: dict[tuple[str, int], int] = {}
    for table in ("input", "holding"):
        entries = tables.get(table, {})
        if not isinstance(entries, dict):
            fail(f"{dump}: [{table}] must be a table of address = [words]")
        for address, value in entries.items():
            run = value if isinstance(value, list) else [value]
            if not address.isdigit() or not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in run):
                fail(f"{dump}: [{table}] {address} = {value!r}: a 0-based address and 16-bit words")
            for i, word in enumerate(run):
                words[(table, int(address) + i)] = word
    codec = codec_for(profile)
    blocks = []
    missing = []
    for block in codec.poll_blocks:
        span = range(block.start, block.start + block.count)
        measured = {
            a
            for r in profile.registers
            if r.table == block.table
            for a in range(r.address, r.address + r.width)
        }
        missing += [f"{block.table} {a}" for a in span if a in measured and (block.table, a) not in words]
        blocks.append([words.get((block.table, a), 0) for a in span])
    if missing:
        fail(f"{dump}: registers the profile reads are not in the dump: {', '.join(missing[:10])}")
    values, status, _, rejected = codec.decode_poll(blocks)
    typer.echo(f"{dump}: one poll decodes to")
    for flag, on in status.items():
        typer.echo(f"  {flag:24} {'SET' if on else 'clear'}")
    _print_reading(profile, values, rejected)
