"""What the `lamplighter` commands share: the common options, loading a config, and calling an HTTP
API (the controller's or the simulators') with a message a person can act on when it fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from controller.config import ConfigError, ControllerSettings, load_config

API = "http://127.0.0.1:8765"
#: where commands that call the API find their key (`lamplighter auth key create`)
API_KEY_ENV = "LAMPLIGHTER_API_KEY"
ApiOpt = Annotated[str, typer.Option(help="the controller's API")]
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="configuration file (TOML)")]


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
    base: str, method: str, path: str, *, what: str = "the controller", timeout: float = 10, **kwargs: Any
) -> Any:
    """One request; its JSON answer, or the command ends saying who could not be reached or what was
    refused and why (the API's error message, or FastAPI's `detail` from the simulators)."""
    try:
        response = httpx.request(
            method, base.rstrip("/") + path, timeout=timeout, headers=api_headers(), **kwargs
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {what} at {base}: {exc}")
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
