"""What routes receive (FastAPI dependencies): the controller's service and the worker for costly
answers, from the application's state (the access guard and the event-stream slots are handed
out the same way, beside their code: api/access.py, api/streams.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.heavy import HeavyWork
from controller.service import ControllerService


# `async def` though they never wait: FastAPI runs a plain `def` dependency in its thread pool,
# a hand-over that cost every request about 0.15 ms.
async def _service(request: Request) -> ControllerService:
    service: ControllerService = request.app.state.service
    return service


async def _heavy(request: Request) -> HeavyWork:
    work: HeavyWork = request.app.state.heavy
    return work


Service = Annotated[ControllerService, Depends(_service)]
Heavy = Annotated[HeavyWork, Depends(_heavy)]
