"""The processes `lamplighter run` and `lamplighter simulate` start: the controller with its API (and,
in demo mode, an embedded broker and the simulators in a child process), or the simulators alone.

This is the composition root: the one place that puts the controller, the API and the simulators
together.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import typer

from api.app import create_app
from api.server import ApiServer
from controller.config import ControllerSettings
from controller.runtime import Controller
from controller.service import ControllerService
from lamplighter import event_loop
from lamplighter.auth_cli import demo_credentials
from lamplighter.demo_air import backfill_air
from lamplighter.schedule_file import ScheduleFile
from lamplighter.simulate import city_from_config, simulated_ble_backends, simulated_radios

if TYPE_CHECKING:
    from controller.broker.embedded import EmbeddedBrokerRun

log = logging.getLogger("lamplighter")


async def run_controller(
    settings: ControllerSettings, simulate_config: Path | None, plan_file: ScheduleFile | None = None
) -> None:
    stop = _stop_event()
    demo = simulate_config is not None
    embedded: EmbeddedBrokerRun | None = None
    if settings.embedded_broker.enabled:
        from controller.broker.embedded import start_embedded_broker  # amqtt: ~90 ms to import

        embedded = await start_embedded_broker(settings, demo=demo)
    if embedded is not None:
        settings = embedded.settings
    credentials = _device_credentials_file(embedded) if embedded is not None and demo else None
    child = await _spawn_simulators(simulate_config, settings, credentials) if simulate_config else None
    radios = simulated_radios(settings)
    controller = Controller(settings, ble_backends=simulated_ble_backends(settings, radios))
    api = ApiServer(create_app(ControllerService(controller)), settings.api.host, settings.api.port)
    try:
        await controller.start()
        if plan_file is not None and controller.scheduling is not None:
            for kind, key, doc in plan_file.objects():
                await controller.scheduling.put(kind, key, doc)  # type: ignore[arg-type]
            log.info("schedules applied: %d objects", len(plan_file.objects()))
        if simulate_config is not None:
            await backfill_air(controller)
        await _start_server(api, "API")
        if event_loop.resume_collector():
            log.info("garbage collector resumed; start-up's %d objects frozen", gc.get_freeze_count())
        typer.echo(f"Lamplighter on {api.url}  —  dashboard: {api.url}/  API docs: {api.url}/docs")
        if simulate_config is not None:
            key, passwords = await demo_credentials(controller.auth)
            typer.echo(
                "Demo mode (simulated city), fresh credentials for this run:\n"
                f"  API key (admin):  {key}\n"
                f"  dashboard login:  demo / {passwords['demo']}  (admin)\n"
                f"  night operator:   ca-dem / {passwords['ca-dem']}  (operator)\n"
                f"  e.g. curl -H 'X-API-Key: {key}' {api.url}/api/v1/devices"
            )
            if embedded is not None:
                eb = settings.embedded_broker
                for reader, secret in embedded.reader_passwords.items():
                    typer.echo(
                        f"  MQTT (read {settings.outbound.topic_prefix}/#): {reader} / {secret} "
                        f"on {eb.host}:{eb.port}"
                    )
        elif not await controller.auth.has_credentials():
            typer.echo(
                "No API keys or users yet: every route but /healthz answers 401. Make one with\n"
                "  lamplighter auth key create ioc --role viewer -c <config>"
            )
        typer.echo("Press Ctrl-C to stop.")
        await stop.wait()
        log.info("stopping")
    finally:
        with contextlib.suppress(Exception):
            await api.stop()
        await controller.stop()
        if child is not None:
            await _end_child(child)
        if credentials is not None:
            credentials.unlink(missing_ok=True)
        if embedded is not None:
            await embedded.broker.stop()


async def run_simulators(settings: ControllerSettings) -> None:
    # here, not at the top: pymodbus' server side costs `lamplighter run` 0.15 s of every start
    from simulators.control import create_control_app

    stop = _stop_event()
    if settings.embedded_broker.enabled and settings.embedded_broker.port == 0:
        typer.echo(
            "note: the simulated MQTT devices need the controller's embedded broker, whose port is "
            "chosen at start ([embedded_broker] port = 0). Run `lamplighter run --simulate`, or set a "
            "fixed port to run simulators and controller separately.",
            err=True,
        )
    city = city_from_config(settings)
    sim = settings.simulator
    control = ApiServer(create_control_app(city.segments), sim.control_host, sim.control_port)
    try:
        await city.start()
        await _start_server(control, "simulator control API")
        lamps = sum(len(s.lamps) for s in city.segments.segments.values())
        typer.echo(
            f"Simulators: {len(city.gateways)} Modbus TCP gateways, {len(city.buses)} RS-485 buses, "
            f"{lamps} lamp controllers. Control API on {control.url} (faults: {control.url}/docs)"
        )
        sys.stdout.flush()
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await control.stop()
        await city.stop()


def _device_credentials_file(embedded: EmbeddedBrokerRun) -> Path:
    """The simulated devices' fresh MQTT passwords, for the simulator process: a private temporary
    file (0600), removed when the demo stops."""
    fd, name = tempfile.mkstemp(prefix="lamplighter-demo-mqtt-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(embedded.device_passwords, f)
    return Path(name)


async def _spawn_simulators(
    config: Path, settings: ControllerSettings, credentials: Path | None
) -> asyncio.subprocess.Process:
    """Simulators run in their own process so they get their own core, as real hardware would."""
    env = {**os.environ, "LAMPLIGHTER_EMBEDDED_BROKER__PORT": str(settings.embedded_broker.port)}
    if credentials is not None:
        env["LAMPLIGHTER_SIMULATOR__MQTT_CREDENTIALS"] = str(credentials)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lamplighter", "simulate", "-c", str(config), env=env
    )
    url = f"http://{settings.simulator.control_host}:{settings.simulator.control_port}/links"
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if child.returncode is not None:
                raise SystemExit(f"simulators exited with code {child.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=1)).status_code == 200:
                    return child
            await asyncio.sleep(0.1)
    await _end_child(child)
    raise SystemExit("simulators did not start within 30 s")


async def _end_child(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), 10)
        except TimeoutError:
            child.kill()
            await child.wait()


async def _start_server(server: ApiServer, what: str) -> None:
    try:
        await server.start()
    except (SystemExit, OSError) as exc:  # uvicorn exits when it cannot bind
        raise SystemExit(f"cannot start the {what} (is the port in use?): {exc}") from None


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # pymodbus logs every timeout and exception reply at ERROR with frame dumps; the drivers
    # count and report each of those per device, so its own log is only noise here.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for noisy in ("amqtt", "transitions"):  # amqtt logs every client session at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
