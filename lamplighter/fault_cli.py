"""`lamplighter fault …` — inject and clear faults in running simulators, through their control API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from controller.config import ControllerSettings
from lamplighter.cli_support import TYPER_OPTIONS, call, load_settings
from simulators.lamp import Fault
from simulators.mqtt_devices import MqttFault

fault_app = typer.Typer(help="Inject and clear faults in running simulators.", **TYPER_OPTIONS)
OptionalConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="take the control API address from this config")
]
UrlOpt = Annotated[
    str | None, typer.Option(help="simulator control API [default: from the config, else :8099]")
]


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
        row = _simulators(base, "POST", f"/links/{link}/faults", json={"fault": fault, "active": True})
        typer.echo(f"{row['link']}: {row['fault']} on all {row['lamps']} lamps")
        return
    _show_lamps(
        _simulators(
            base, "POST", "/faults", json={"link": link, "unit_id": unit, "fault": fault, "active": True}
        )
    )


@fault_app.command("mqtt")
def fault_mqtt(
    link: Annotated[str, typer.Option(help="the MQTT link (broker) id")],
    device: Annotated[str, typer.Option(help="the device's key in its topics")],
    fault: Annotated[
        MqttFault, typer.Option(help="offline: power cut (last will); stale; garbage; out_of_range; dust")
    ],
    clear: Annotated[bool, typer.Option("--clear", help="clear the fault instead")] = False,
    url: UrlOpt = None,
    config: OptionalConfigOpt = None,
) -> None:
    """Inject (or clear) a fault in one simulated MQTT device: sensor or access point."""
    body = {"link": link, "key": device, "fault": fault.value, "active": not clear}
    row = _simulators(_control_url(url, config), "POST", "/mqtt-faults", json=body)
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
    _show_lamps(_simulators(_control_url(url, config), "DELETE", "/faults", params=params))


@fault_app.command("list")
def fault_list(
    url: UrlOpt = None,
    config: OptionalConfigOpt = None,
) -> None:
    """List simulated lamps that have faults."""
    _show_lamps(_simulators(_control_url(url, config), "GET", "/lamps"), only_faulty=True)


def _control_url(url: str | None, config: Path | None) -> str:
    if url:
        return url
    sim = load_settings(config).simulator if config else ControllerSettings().simulator
    return f"http://{sim.control_host}:{sim.control_port}"


def _simulators(base: str, method: str, path: str, **kwargs: Any) -> Any:
    return call(base, method, path, what="the simulators", timeout=5, **kwargs)


def _show_lamps(body: Any, *, only_faulty: bool = False) -> None:
    for row in body if isinstance(body, list) else [body]:
        if only_faulty and not row.get("faults"):
            continue
        state = "on" if row["on_cmd"] else "off"
        faults = ", ".join(row["faults"]) or "none"
        typer.echo(
            f"{row['link']} unit {row['unit_id']}: level {row['level_cmd']}% {state}, "
            f"{row['power_w']} W, faults: {faults}"
        )
