"""Paths into JSON documents as real devices publish them, for payload layouts (drivers/payload.py).

A path is dotted steps; each step is a key, `*` (any key or list item: the first that leads to a
value), and may end in a selector: `[3]` (the list's fourth item) or `[type=P1]` (the list's item
whose `type` is `P1`, wherever it sits in the list). A string holding JSON is read as the JSON
inside it when the path goes on. Examples, for `{"sensordatavalues": [{"value_type": "P1",
"value": "23.40"}]}`: `sensordatavalues[value_type=P1].value`; for The Things Stack:
`uplink_message.decoded_payload.temperature`; for a list of readings: `readings[0].v`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(r"^(?P<name>[^\[\]]*)(?:\[(?P<selector>[^\]]+)\])?$")


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # a key, "*" for any, "" for the node itself (a path starting with a selector)
    index: int | None = None
    match: tuple[str, str] | None = None  # (key, value) an item of the list must have


def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of `path`; ValueError saying which step is wrong."""
    if not path.strip():
        raise ValueError("an empty path")
    steps = []
    for part in _split(path):
        m = _STEP.match(part)
        if m is None or (not m["name"] and not m["selector"]):
            raise ValueError(f"path {path!r}: step {part!r} is not key, key[n] or key[field=value]")
        selector = m["selector"]
        if selector is None:
            steps.append(Step(m["name"]))
        elif selector.isdigit():
            steps.append(Step(m["name"], index=int(selector)))
        elif "=" in selector:
            key, _, value = selector.partition("=")
            if not key:
                raise ValueError(f"path {path!r}: selector [{selector}] needs a field name before '='")
            steps.append(Step(m["name"], match=(key.strip(), value.strip())))
        else:
            raise ValueError(f"path {path!r}: selector [{selector}] is not a number or field=value")
    return tuple(steps)


def _split(path: str) -> Iterator[str]:
    """Dots separate steps, except inside a selector (`[name=a.b]`)."""
    depth, start = 0, 0
    for i, c in enumerate(path):
        depth += (c == "[") - (c == "]")
        if c == "." and depth == 0:
            yield path[start:i]
            start = i + 1
    yield path[start:]


def lookup(doc: Any, steps: tuple[Step, ...]) -> tuple[bool, Any]:
    """(found, value) of the path in the document."""
    # The common case first, as cheaply as a dotted path can be: plain keys into objects.
    for i, step in enumerate(steps):
        if step.index is None and step.match is None and type(doc) is dict and step.name in doc:
            doc = doc[step.name]
        else:
            return _lookup(doc, steps[i:])
    return True, doc


def _lookup(doc: Any, steps: tuple[Step, ...]) -> tuple[bool, Any]:
    if not steps:
        return True, doc
    step, rest = steps[0], steps[1:]
    if isinstance(doc, str) and doc[:1] in "{[":  # a JSON document inside a string
        try:
            doc = json.loads(doc)
        except ValueError:
            return False, None
    for candidate in _candidates(doc, step):
        picked = _select(candidate, step)
        if picked is not _MISSING:
            found, value = _lookup(picked, rest)
            if found:
                return True, value
    return False, None


_MISSING = object()


def _candidates(node: Any, step: Step) -> list[Any]:
    if step.name == "":
        return [node]
    if step.name == "*":
        return list(node.values()) if isinstance(node, dict) else list(node) if isinstance(node, list) else []
    if isinstance(node, dict) and step.name in node:
        return [node[step.name]]
    if isinstance(node, list) and step.name.isdigit() and int(step.name) < len(node):
        return [node[int(step.name)]]  # the older `items.0.value` form
    return []


def _select(node: Any, step: Step) -> Any:
    if step.index is not None:
        return node[step.index] if isinstance(node, list) and step.index < len(node) else _MISSING
    if step.match is not None:
        key, value = step.match
        if not isinstance(node, list):
            return _MISSING
        for item in node:
            if isinstance(item, dict) and key in item and _same(item[key], value):
                return item
        return _MISSING
    return node


def _same(found: Any, wanted: str) -> bool:
    if isinstance(found, bool):
        return str(found).lower() == wanted.lower()
    return str(found) == wanted
