"""`lamplighter` — the command line: run the controller, run simulators, check a config, inject faults.

This module is the composition root: it is the one place that puts the controller, the API and
the simulators together in a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from controller.broker import EmbeddedBrokerRun, start_embedded_broker
from controller.config import ConfigError, ControllerSettings, load_config
from controller.service import ControllerService
from lamplighter.auth_cli import api_headers, auth_app, demo_credentials, refused_hint
from lamplighter.broker_cli import broker_app
from lamplighter.firmware_cli import firmware_app
from lamplighter.schedule_file import ScheduleFile, load_schedule_file
from simulators.lamp import Fault
from simulators.mqtt_devices import MqttFault

app = typer.Typer(help="Lamplighter: street-lighting and city IoT controller.", no_args_is_help=True)
fault_app = typer.Typer(help="Inject and clear faults in running simulators.", no_args_is_help=True)
app.add_typer(fault_app, name="fault")
schedules_app = typer.Typer(
    help="Programs, calendars and group calendars, through the API.", no_args_is_help=True
)
app.add_typer(schedules_app, name="schedules")
app.add_typer(firmware_app, name="firmware")
app.add_typer(auth_app, name="auth")
app.add_typer(broker_app, name="broker")
ApiOpt = Annotated[str, typer.Option(help="the controller's API")]

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="configuration file (TOML)")]
OptionalConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="take the control API address from this config")
]
UrlOpt = Annotated[
    str | None, typer.Option(help="simulator control API [default: from the config, else :8099]")
]
log = logging.getLogger("lamplighter")


@app.command()
def run(
    config: ConfigOpt,
    simulate: Annotated[bool, typer.Option(help="also start the simulators for this config")] = False,
    schedules: Annotated[Path | None, typer.Option(help="apply this schedule file at start")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the controller and its API (optionally with the simulated city)."""
    settings = _load(config)
    plan_file = _load_schedules(schedules) if schedules else None
    _configure_logging(verbose)
    asyncio.run(_run_controller(settings, config if simulate else None, plan_file))


@app.command("simulate")
def simulate_cmd(
    config: ConfigOpt,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run only the simulators for the links and devices of a config, plus their control API."""
    settings = _load(config)
    _configure_logging(verbose)
    asyncio.run(_run_simulators(settings))


@app.command("check-config")
def check_config(config: ConfigOpt) -> None:
    """Validate a configuration file and summarise it."""
    settings = _load(config)
    devices = settings.all_devices()
    typer.echo(
        f"{config}: OK — {len(settings.sites)} sites, {len(settings.links)} links, {len(devices)} devices"
    )


@fault_app.command("inject")
def fault_inject(
    link: Annotated[str, typer.Option(help="simulated link (gateway or bus) id")],
    fault: Annotated[Fault, typer.Option(help="the fault to inject", case_sensitive=False)],
    unit: Annotated[
        int | None, typer.Option(help="unit id of the lamp controller [default: every lamp on the link]")
    ] = None,
    url: UrlOpt = None,
    config: OptionalConfigOpt = None,
) -> None:
    """Inject a fault into one simulated lamp controller, or into all on a link (a feeder trips)."""
    base = _control_url(url, config)
    if unit is None:
        row = _request(base, "POST", f"/links/{link}/faults", json={"fault": fault, "active": True})
        typer.echo(f"{row['link']}: {row['fault']} on all {row['lamps']} lamps")
        return
    _control(base, "POST", "/faults", json={"link": link, "unit_id": unit, "fault": fault, "active": True})


@fault_app.command("mqtt")
def fault_mqtt(
    link: Annotated[str, typer.Option(help="the MQTT link (broker) id")],
    device: Annotated[str, typer.Option(help="the device's key in its topics")],
    fault: Annotated[
        MqttFault, typer.Option(help="offline: power cut (last will); stale; garbage; out_of_range")
    ],
    clear: Annotated[bool, typer.Option("--clear", help="clear the fault instead")] = False,
    url: UrlOpt = None,
    config: OptionalConfigOpt = None,
) -> None:
    """Inject (or clear) a fault in one simulated MQTT device: sensor or access point."""
    body = {"link": link, "key": device, "fault": fault.value, "active": not clear}
    row = _request(_control_url(url, config), "POST", "/mqtt-faults", json=body)
    typer.echo(f"{row['link']} {row['key']} ({row['kind']}): faults: {', '.join(row['faults']) or 'none'}")


@fault_app.command("clear")
def fault_clear(
    link: Annotated[str | None, typer.Option(help="only this link")] = None,
    unit: Annotated[int | None, typer.Option(help="only this unit")] = None,
    url: UrlOpt = None,
    config: OptionalConfigOpt = None,
) -> None:
    """Clear faults (all, one link's, or one lamp's)."""
    params = {k: v for k, v in {"link": link, "unit_id": unit}.items() if v is not None}
    _control(_control_url(url, config), "DELETE", "/faults", params=params)


@fault_app.command("list")
def fault_list(
    url: UrlOpt = None,
    config: OptionalConfigOpt = None,
) -> None:
    """List simulated lamps that have faults."""
    _control(_control_url(url, config), "GET", "/lamps", only_faulty=True)


@schedules_app.command("apply")
def schedules_apply(file: Path, api: ApiOpt = "http://127.0.0.1:8765") -> None:
    """Create or replace the programs, calendars and group calendars of a schedule file."""
    plan_file = _load_schedules(file)
    paths = {
        "program": "/api/v1/schedules/{}",
        "calendar": "/api/v1/calendars/{}",
        "group_calendar": "/api/v1/groups/{}/calendar",
    }
    for kind, key, doc in plan_file.objects():
        _request(api, "PUT", paths[kind].format(key), json=doc)
        typer.echo(f"{kind.replace('_', ' ')} {key}: applied")


@schedules_app.command("list")
def schedules_list(api: ApiOpt = "http://127.0.0.1:8765") -> None:
    """List programs, calendars and overrides."""
    for path, what in (
        ("/api/v1/schedules", "program"),
        ("/api/v1/calendars", "calendar"),
        ("/api/v1/overrides", "override"),
    ):
        for item in _request(api, "GET", path):
            typer.echo(f"{what} {item['id']}")


@schedules_app.command("preview")
def schedules_preview(
    group: Annotated[str, typer.Option(help="group path")],
    api: ApiOpt = "http://127.0.0.1:8765",
    hours: Annotated[float, typer.Option(help="from now, for this many hours")] = 24,
) -> None:
    """Show what a group's lamps will do, and the energy against full power dusk to dawn."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    params = {"group": group, "from": now.isoformat(), "to": (now + dt.timedelta(hours=hours)).isoformat()}
    body = _request(api, "GET", "/api/v1/schedules/preview", params=params)
    for t in body["transitions"]:
        typer.echo(f"{t['at']}  {t['level']:>4}%  {t['cause']}")
    typer.echo(
        f"{body['lamps']} lamps: {body['energy_kwh']} kWh against {body['baseline_kwh']} kWh "
        f"at full power dusk to dawn ({body['saving_pct']} % saved)"
    )


# -- processes ---------------------------------------------------------------------------------
async def _run_controller(
    settings: ControllerSettings, simulate_config: Path | None, plan_file: ScheduleFile | None = None
) -> None:
    from api.app import create_app
    from api.server import ApiServer
    from controller.runtime import Controller
    from lamplighter.simulate import simulated_ble_backends, simulated_radios

    stop = _stop_event()
    demo = simulate_config is not None
    embedded = await start_embedded_broker(settings, demo=demo) if settings.embedded_broker.enabled else None
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
        await _start_server(api, "API")
        typer.echo(f"Lamplighter on {api.url}  —  dashboard: {api.url}/  API docs: {api.url}/docs")
        if simulate_config is not None:
            key, password = await demo_credentials(controller.auth)
            typer.echo(
                "Demo mode (simulated city), fresh credentials for this run:\n"
                f"  API key (admin):  {key}\n"
                f"  dashboard login:  demo / {password}\n"
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


async def _run_simulators(settings: ControllerSettings) -> None:
    from api.server import ApiServer
    from lamplighter.simulate import city_from_config
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
        sys.executable, "-m", "lamplighter.cli", "simulate", "-c", str(config), env=env
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


async def _start_server(server: object, what: str) -> None:
    from api.server import ApiServer

    assert isinstance(server, ApiServer)
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


# -- helpers -----------------------------------------------------------------------------------
def _load(config: Path) -> ControllerSettings:
    try:
        return load_config(config)
    except ConfigError as exc:
        typer.echo(f"invalid configuration:\n{exc}", err=True)
        raise typer.Exit(2) from None


def _control_url(url: str | None, config: Path | None) -> str:
    if url:
        return url
    sim = _load(config).simulator if config else ControllerSettings().simulator
    return f"http://{sim.control_host}:{sim.control_port}"


def _load_schedules(path: Path) -> ScheduleFile:
    try:
        return load_schedule_file(path)
    except ValueError as exc:
        typer.echo(f"invalid schedule file: {exc}", err=True)
        raise typer.Exit(2) from None


def _configure_logging(verbose: bool) -> None:
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


def _request(url: str, method: str, path: str, **kwargs: Any) -> Any:
    try:
        rsp = httpx.request(method, url.rstrip("/") + path, timeout=5, headers=api_headers(), **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the simulators at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if rsp.status_code >= 400:
        typer.echo(f"refused ({rsp.status_code}): {rsp.text}{refused_hint(rsp.status_code)}", err=True)
        raise typer.Exit(1)
    return rsp.json()


def _control(url: str, method: str, path: str, *, only_faulty: bool = False, **kwargs: Any) -> None:
    body = _request(url, method, path, **kwargs)
    rows = body if isinstance(body, list) else [body]
    for row in rows:
        if only_faulty and not row.get("faults"):
            continue
        state = "on" if row["on_cmd"] else "off"
        faults = ", ".join(row["faults"]) or "none"
        typer.echo(
            f"{row['link']} unit {row['unit_id']}: level {row['level_cmd']}% {state}, "
            f"{row['power_w']} W, faults: {faults}"
        )


if __name__ == "__main__":
    app()
