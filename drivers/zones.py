"""IANA time-zone names as profiles and links give them (`Asia/Ho_Chi_Minh`), checked when read."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator


def _known(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r} (an IANA name: Asia/Ho_Chi_Minh)") from None
    return zone


#: a zone name that exists in this machine's zone database
ZoneName = Annotated[str, AfterValidator(_known)]
