"""Run by `tests/api/smart_data_models.py` with the interpreter of `.venv-ngsi` (made by `make test`):
checks NGSI-LD entities (normalized, one JSON list on stdin) against the FIWARE Smart Data Models as
the `pysmartdatamodels` library publishes them (its bundled database of every model's attributes,
their NGSI and JSON types, descriptions with enumerations, and each model's required attributes —
read offline, the same data the models' schema.json files are generated from).

Prints one JSON list of problems, each "entity id: what is wrong"; an empty list means every
entity uses only its model's attributes, with the model's types and allowed values.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pysmartdatamodels as sdm

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
ENUM = re.compile(r"Enum:\s*'([^']*)'")


def model_of(entity_type: str) -> tuple[str, dict[str, Any]]:
    subjects = sdm.subject_for_datamodel(entity_type)
    if not subjects:
        raise LookupError(f"no Smart Data Model named {entity_type!r}")
    subject = subjects[0]
    return subject, sdm.list_datamodel_metadata(entity_type, subject) or {}


def problems_of(entity: dict[str, Any]) -> list[str]:
    eid, kind = entity.get("id", "?"), entity.get("type", "?")
    try:
        subject, metadata = model_of(kind)
    except LookupError as exc:
        return [f"{eid}: {exc}"]
    known = set(sdm.attributes_datamodel(subject, kind))
    found = [
        f"{eid}: the model {kind} requires {name!r}"
        for name in metadata.get("required", [])
        if name not in entity
    ]
    for name, attribute in entity.items():
        if name in ("id", "type", "@context"):
            continue
        where = f"{eid}: {name}"
        if name not in known:
            found.append(f"{where} is not an attribute of {subject}/{kind}")
            continue
        ngsi = sdm.ngsi_datatype_attribute(subject, kind, name)
        if ngsi and attribute.get("type") != ngsi:
            found.append(f"{where} is a {attribute.get('type')}, the model says {ngsi}")
        value = attribute.get("object" if ngsi == "Relationship" else "value")
        json_type = sdm.datatype_attribute(subject, kind, name)
        if ngsi == "Relationship" and isinstance(value, list):
            json_type = "array"  # a multi-valued relationship (refStreetlight) lists its targets
        if (
            isinstance(json_type, str)
            and json_type in JSON_TYPES
            and not isinstance(value, JSON_TYPES[json_type])
        ):
            found.append(f"{where} = {value!r} is not a JSON {json_type}")
        described = sdm.description_attribute(subject, kind, name) or ""
        allowed = ENUM.search(described) if isinstance(described, str) else None
        if allowed is not None:
            values = {v.strip() for v in allowed.group(1).split(",")}
            for item in value if isinstance(value, list) else [value]:  # an array of enumerated words
                if item not in values:
                    found.append(f"{where} = {item!r} is not one of {sorted(values)}")
    return found


def main() -> None:
    entities = json.load(sys.stdin)
    print(json.dumps([p for e in entities for p in problems_of(e)]))


if __name__ == "__main__":
    main()
