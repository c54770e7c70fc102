"""Waiting for a condition in async tests, with a deadline that fails the test clearly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


async def until(predicate: Callable[[], bool], within_s: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"{what} not reached within {within_s:g} s")
        await asyncio.sleep(0.02)
