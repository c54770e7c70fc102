"""Maps a validation location like ('devices', 3, 'unit_id') to a line of a TOML file.

tomllib keeps no positions, so this finds the n-th `[[section]]` header and the key below it — good
enough to point an engineer at the right line of a config file.
"""

from __future__ import annotations

import re
from pathlib import Path


class TomlLocator:
    """Maps a validation location like ('devices', 3, 'unit_id') to a line of the TOML text.

    tomllib keeps no positions, so this finds the n-th `[[section]]` header and the key below it.
    """

    def __init__(self, path: Path, text: str, *, ignore: tuple[str, ...] = ()) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.ignore = ignore

    def describe(self, loc: tuple[str | int, ...], msg: str, value: object = None) -> str:
        loc = tuple(p for p in loc if p not in self.ignore)  # e.g. a union's tag: noise to a reader
        key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        line = self._line_of(loc)
        where = f"{self.path}:{line}" if line else str(self.path)
        shown = "" if value is None or isinstance(value, dict | list) else f" (got {value!r})"
        return f"{where}: {key}: {msg}{shown}"

    def _line_of(self, loc: tuple[str | int, ...]) -> int | None:
        if not loc or not isinstance(loc[0], str):
            return None
        section = loc[0]
        start = 0
        if len(loc) > 1 and isinstance(loc[1], int):
            headers = [
                i for i, ln in enumerate(self.lines) if re.match(rf"^\s*\[\[{re.escape(section)}\]\]", ln)
            ]
            if loc[1] >= len(headers):
                return None
            start = headers[loc[1]]
            key = next((p for p in reversed(loc[2:]) if isinstance(p, str)), None)
        else:
            headers = [i for i, ln in enumerate(self.lines) if re.match(rf"^\s*\[{re.escape(section)}\]", ln)]
            start = headers[0] if headers else 0
            key = next((p for p in loc[1:] if isinstance(p, str)), section if not headers else None)
        if key is None:
            return start + 1
        for i in range(start, len(self.lines)):
            if i > start and self.lines[i].lstrip().startswith("["):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", self.lines[i]):
                return i + 1
        return start + 1
