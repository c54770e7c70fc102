"""What the `lamplighter` commands share: the common options, loading a config, and calling an HTTP
API (the controller's or the simulators') with a message a person can act on when it fails."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import httpx
import typer

from controller.config import ConfigError, ControllerSettings, load_config

#: the API of `make run` (examples/city.toml), when a command is given neither --api nor --config
API = "http://127.0.0.1:8765"
#: where commands that call the API find their key (`lamplighter auth key create`)
API_KEY_ENV = "LAMPLIGHTER_API_KEY"
ApiOpt = Annotated[
    str | None, typer.Option("--api", help=f"the controller's API [default: from --config, else {API}]")
]
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="configuration file (TOML)")]
ApiConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="configuration file (TOML): where the API listens, the sites' zones"),
]
#: every command group: help texts are plain text ("[database]" is a config section, not markup)
TYPER_OPTIONS: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None}


@dataclass(frozen=True)
class ApiTarget:
    """Which API a command calls, where that came from (for its errors), and the site's zone."""

    base: str
    source: str
    zone: ZoneInfo | None = None

    def local(self, at: str | dt.datetime, zone: str | None = None) -> str:
        """A time as people of the site read it: its zone, 24 h, no seconds' fractions."""
        t = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
        tz = ZoneInfo(zone) if zone else self.zone
        return (t.astimezone(tz) if tz else t).strftime("%Y-%m-%d %H:%M")


def api_target(api: str | None, config: Path | None) -> ApiTarget:
    """--api if given, else the [api] section of --config, else `make run`'s address."""
    if api:
        return ApiTarget(api.rstrip("/"), "--api")
    if config is None:
        return ApiTarget(API, "the default; give -c CONFIG or --api URL")
    settings = load_settings(config)
    host = settings.api.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: this machine answers on loopback
    elif ":" in host:
        host = f"[{host}]"
    zone = ZoneInfo(settings.sites[0].timezone) if settings.sites else None
    return ApiTarget(f"http://{host}:{settings.api.port}", f"[api] of {config}", zone)


def api_headers() -> dict[str, str]:
    """Credentials for the CLI's API calls, from the environment."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    return {"X-API-Key": key} if key else {}


def refused_hint(status: int) -> str:
    if status == 401:
        return f" (set {API_KEY_ENV} to an API key: `lamplighter auth key create NAME --role ROLE`)"
    return ""


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def load_settings(config: Path) -> ControllerSettings:
    try:
        return load_config(config)
    except ConfigError as exc:
        fail(f"invalid configuration:\n{exc}", 2)


def call(
    base: str | ApiTarget,
    method: str,
    path: str,
    *,
    what: str = "the controller's API",
    timeout: float = 10,
    **kwargs: Any,
) -> Any:
    """One request; its JSON answer, or the command ends saying who could not be reached (and where
    its address came from) or what was refused and why (the API's error message, or FastAPI's
    `detail` from the simulators)."""
    url, source = (base.base, f" ({base.source})") if isinstance(base, ApiTarget) else (base, "")
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, timeout=timeout, headers=api_headers(), **kwargs
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {what} at {url}{source}: {exc or type(exc).__name__}")
    if response.status_code >= 400:
        fail(f"refused ({response.status_code}): {_reason(response)}{refused_hint(response.status_code)}")
    return response.json()


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if "detail" in body:
            return str(body["detail"])
    return response.text[:300]
