"""The OpenAPI description is valid (openapi-spec-validator) and documents the errors the API answers.

What the API really answers is compared with it by schemathesis (tests/api/test_schemathesis.py:
status codes, content types, response schemas); this checks the document itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from api.app import create_app
from controller.runtime import Controller
from controller.service import ControllerService
from tests.controller.city import settings_for


def _description(tmp_path: Path) -> dict[str, Any]:
    return create_app(ControllerService(Controller(settings_for(tmp_path)))).openapi()


def test_the_description_passes_the_validator(tmp_path: Path) -> None:
    doc = _description(tmp_path)
    validate(doc)  # raises, saying where, on any violation (`itemSchema` on /api/v1/events did)
    assert doc["openapi"].startswith("3.1")


def test_every_operation_documents_the_errors_around_it(tmp_path: Path) -> None:
    doc = _description(tmp_path)
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text  # FastAPI's {"detail": …}, which the API never answers
    missing = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            statuses = set(op["responses"])
            needed = {"500"}
            if op.get("security") or path.startswith("/ngsi-ld/v1/entities"):
                needed |= {"401", "403", "429", "503"}
            if method in ("post", "put", "patch") and not path.startswith("/ngsi-ld/"):
                needed.add("413")
            if op.get("parameters") or op.get("requestBody"):
                needed.add("400" if path.startswith("/ngsi-ld/") else "422")
            if "{" in path:
                needed.add("404")
            if not needed <= statuses:
                missing.append(f"{method.upper()} {path}: {sorted(needed - statuses)}")
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and path != "/healthz":  # its 503 is its own body
                    content = response.get("content", {}).values()
                    schemas = [m.get("schema", {}).get("$ref", "") for m in content]
                    want = "ProblemDetails" if path.startswith("/ngsi-ld/") else "ErrorBody"
                    if not schemas or not all(s.endswith(want) for s in schemas):
                        missing.append(f"{method.upper()} {path} {status}: not {want}")
    assert not missing, "\n".join(missing)
