"""A fresh PostgreSQL database per test, on the server `make test` makes sure is running.

The registry, schedules, alerts, users, keys and audit log run on PostgreSQL through the same
SQLAlchemy code as on the SQLite default; tests that take the `registry_url` fixture run on both.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

# Trust auth (this machine) ignores the password; a fresh machine gets it set by `make postgres`.
ADMIN_DSN = os.environ.get(
    "LAMPLIGHTER_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create `lamplighter_test_<random>`, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"lamplighter_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
