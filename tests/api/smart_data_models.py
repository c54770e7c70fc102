"""Our NGSI-LD entities against the FIWARE Smart Data Models, checked by `sdm_check.py` with the
`pysmartdatamodels` library in `.venv-ngsi` (the FIWARE tools' own environment, made by `make test`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

FIWARE_PYTHON = Path(__file__).parents[2] / ".venv-ngsi" / "bin" / "python"


async def model_problems(entities: list[dict[str, Any]]) -> list[str]:
    """What the Smart Data Models say is wrong with these (normalized) entities; [] if nothing."""
    if not FIWARE_PYTHON.exists():
        pytest.fail(f"{FIWARE_PYTHON} is missing: `make test` makes it (ngsildclient, pysmartdatamodels)")
    proc = await asyncio.create_subprocess_exec(
        str(FIWARE_PYTHON), str(Path(__file__).with_name("sdm_check.py")),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(entities).encode()), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    problems: list[str] = json.loads(out.decode().strip().splitlines()[-1])
    return problems
