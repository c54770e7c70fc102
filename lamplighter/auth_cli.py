"""`lamplighter auth` — API keys and users, written straight into the registry database.

Works with the controller running or stopped (instances see changes within the credential cache's
few seconds). Every change is written to the audit log as `cli:<OS user>`. Commands that call the
API (`schedules`, `firmware upload|campaign`) send the key in `LAMPLIGHTER_API_KEY`.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from controller.auth.credentials import ROLES, Role
from controller.auth.store import AuthStore, NameTaken
from controller.db import create_engine
from controller.registry import Registry
from lamplighter.cli_support import TYPER_OPTIONS, fail, load_settings

auth_app = typer.Typer(help="API keys and users (straight into the registry database).", **TYPER_OPTIONS)
key_app = typer.Typer(help="API keys for machine clients such as the IOC.", **TYPER_OPTIONS)
user_app = typer.Typer(help="Users who log in (dashboard, tokens).", **TYPER_OPTIONS)
auth_app.add_typer(key_app, name="key")
auth_app.add_typer(user_app, name="user")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="configuration file (its [database])")]
RoleOpt = Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")]
T = TypeVar("T")


DEMO_USERS: dict[str, Role] = {"demo": "admin", "ca-dem": "operator"}  # ca đêm: the night shift


async def demo_credentials(store: AuthStore) -> tuple[str, dict[str, str]]:
    """`make run`'s demo mode: a new admin key and new passwords for the demo users (an admin and
    a night operator), each run. Earlier demo keys are revoked, so a key printed by a past run
    stops working."""
    await store.revoke_key("demo", by_name=True)
    _, key = await store.create_key("demo", "admin", "demo-mode")
    passwords = {}
    for user, role in DEMO_USERS.items():
        password = passwords[user] = secrets.token_urlsafe(12)
        if await store.update_user(user, password=password, role=role, disabled=False) is None:
            await store.create_user(user, role, password)
    await store.audit("demo-mode", None, "demo credentials issued", 0, "local", {"key_id": key.key_id})
    return key.plaintext, passwords


def _role(value: str) -> Role:
    role = next((r for r in ROLES if r == value), None)
    if role is None:
        fail(f"unknown role {value!r}: use one of {', '.join(ROLES)}", 2)
    return role


def _with_store(config: Path, work: Callable[[AuthStore], Awaitable[T]]) -> T:
    settings = load_settings(config)

    async def main() -> T:
        registry = Registry(create_engine(settings.database.url))
        try:
            await registry.create_schema()
            return await work(AuthStore(registry.engine))
        finally:
            await registry.engine.dispose()

    return asyncio.run(main())


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def _audit(store: AuthStore, action: str, detail: dict[str, Any]) -> None:
    await store.audit(_actor(), None, action, 0, "local", detail)


@key_app.command("create")
def key_create(name: str, config: ConfigOpt, role: RoleOpt = "viewer") -> None:
    """Make an API key and print it — the only time it is shown."""
    chosen = _role(role)

    async def work(store: AuthStore) -> str:
        row, key = await store.create_key(name, chosen, _actor())
        await _audit(store, "auth key create", {"key_id": row.key_id, "name": name, "role": chosen})
        return key.plaintext

    plaintext = _with_store(config, work)
    typer.echo(plaintext)
    typer.echo(f"API key {name!r} ({chosen}); it is shown only now: store it.", err=True)


@key_app.command("revoke")
def key_revoke(
    key: Annotated[str, typer.Argument(help="key id (or, with --name, every live key of that name)")],
    config: ConfigOpt,
    by_name: Annotated[bool, typer.Option("--name", help="revoke by name")] = False,
) -> None:
    """Revoke a key; clients using it are refused within seconds."""

    async def work(store: AuthStore) -> list[str]:
        rows = await store.revoke_key(key, by_name=by_name)
        if rows:
            await _audit(store, "auth key revoke", {"key_ids": [r.key_id for r in rows]})
        return [f"{r.key_id} {r.name}" for r in rows]

    revoked = _with_store(config, work)
    if not revoked:
        fail(f"no live key {key!r}")
    for line in revoked:
        typer.echo(f"revoked {line}")


@key_app.command("list")
def key_list(config: ConfigOpt) -> None:
    """Keys with their role and state (never the keys themselves)."""

    async def work(store: AuthStore) -> list[str]:
        return [
            f"{k.key_id}  {k.name:<20} {k.role:<10} "
            f"{'revoked ' + k.revoked_at.isoformat(timespec='seconds') if k.revoked_at else 'live'}"
            f"  last used {k.last_used_at.isoformat(timespec='seconds') if k.last_used_at else 'never'}"
            for k in await store.keys()
        ]

    for line in _with_store(config, work) or ["no API keys"]:
        typer.echo(line)


def _password(env: str | None) -> str:
    if env:
        value = os.environ.get(env)
        if not value:
            fail(f"${env} is empty", 2)
        return value
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        fail("the passwords differ", 2)
    return first


PasswordEnvOpt = Annotated[
    str | None, typer.Option(help="read the password from this environment variable instead of a prompt")
]


@user_app.command("add")
def user_add(
    username: str, config: ConfigOpt, role: RoleOpt = "viewer", password_env: PasswordEnvOpt = None
) -> None:
    """Add a user who logs in with a password (at least 10 characters)."""
    chosen = _role(role)
    password = _password(password_env)
    if len(password) < 10:
        fail("passwords need at least 10 characters", 2)

    async def work(store: AuthStore) -> None:
        await store.create_user(username, chosen, password)
        await _audit(store, "auth user add", {"username": username, "role": chosen})

    try:
        _with_store(config, work)
    except NameTaken as exc:
        fail(str(exc))
    typer.echo(f"user {username!r} ({chosen}) added")


@user_app.command("set")
def user_set(
    username: str,
    config: ConfigOpt,
    role: Annotated[str | None, typer.Option(help="new role")] = None,
    password: Annotated[bool, typer.Option("--password", help="set a new password")] = False,
    password_env: PasswordEnvOpt = None,
    disable: Annotated[bool | None, typer.Option("--disable/--enable")] = None,
) -> None:
    """Change a user's role or password, or disable them; their tokens stop working."""
    chosen = _role(role) if role else None
    new_password = _password(password_env) if password or password_env else None

    async def work(store: AuthStore) -> bool:
        row = await store.update_user(username, role=chosen, password=new_password, disabled=disable)
        if row is not None:
            changed = {"role": chosen, "password": new_password is not None, "disabled": disable}
            await _audit(store, "auth user set", {"username": username, **changed})
        return row is not None

    if not _with_store(config, work):
        fail(f"no user {username!r}")
    typer.echo(f"user {username!r} updated")


@user_app.command("list")
def user_list(config: ConfigOpt) -> None:
    async def work(store: AuthStore) -> list[str]:
        return [
            f"{u.username:<24} {u.role:<10} {'disabled' if u.disabled else 'active'}"
            for u in await store.users()
        ]

    for line in _with_store(config, work) or ["no users"]:
        typer.echo(line)
