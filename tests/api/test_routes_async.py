"""No route or dependency hands requests to a thread without meaning to.

FastAPI runs a plain `def` endpoint or dependency in its thread pool: a hand-over per request
(it cost the device route 0.15 ms of its 1.4 ms when the service dependency was one). Work that
must leave the event loop goes through `api.heavy.HeavyWork`, which says so and is bounded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api.app import create_app
from controller.runtime import Controller
from controller.service import ControllerService
from tests.controller.city import settings_for


def _runs_on_the_loop(call: Callable[..., Any] | None) -> bool:
    if call is None:
        return True
    target = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI 0.16x keeps an included router as a wrapper around it (not an APIRoute)
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_endpoint_and_dependency_runs_on_the_event_loop(tmp_path: Path) -> None:
    app = create_app(ControllerService(Controller(settings_for(tmp_path))))
    routes = list(_api_routes(app.routes))
    assert len(routes) > 50
    threaded = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', type(call).__name__)}"
            for route in routes
            for call in _calls(route.dependant)
            if not _runs_on_the_loop(call)
        }
    )
    assert threaded == []


def test_the_check_can_tell_a_plain_function_from_a_coroutine() -> None:
    def plain() -> None: ...

    async def coroutine() -> None: ...

    assert not _runs_on_the_loop(plain)
    assert _runs_on_the_loop(coroutine)
