"""A file of schedules (programs, calendars, group calendars) in TOML, validated before use."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from schedules.model import Calendar, Program


class ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    programs: list[Program] = []
    calendars: list[Calendar] = []
    groups: dict[str, str] = {}  # group path → calendar id

    def objects(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(kind, id, document) in the order they can be applied: programs, calendars, groups."""
        out: list[tuple[str, str, dict[str, Any]]] = [
            ("program", p.id, p.model_dump(mode="json")) for p in self.programs
        ]
        out += [("calendar", c.id, c.model_dump(mode="json")) for c in self.calendars]
        out += [("group_calendar", g, {"calendar": c}) for g, c in self.groups.items()]
        return out


def load_schedule_file(path: Path) -> ScheduleFile:
    try:
        return ScheduleFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {problems}") from None
