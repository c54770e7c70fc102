"""Waiting for a condition in async tests, with a deadline that fails the test clearly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

T = TypeVar("T")


async def until(predicate: Callable[[], bool], within_s: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"{what} not reached within {within_s:g} s")
        await asyncio.sleep(0.02)


async def fetched_until(
    fetch: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool],
    within_s: float = 10.0,
    what: str = "condition",
    every_s: float = 0.2,
) -> T:
    """Fetch (over the network, say) until `predicate` holds for what came back; returns that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate(value := await fetch()):
        if loop.time() > deadline:
            pytest.fail(f"{what} not reached within {within_s:g} s; last: {value!r}")
        await asyncio.sleep(every_s)
    return value


async def json_of(request: Awaitable[httpx.Response]) -> Any:
    """The JSON body of a request's answer: `fetched_until(lambda: json_of(client.get(url)), ...)`."""
    return (await request).json()
