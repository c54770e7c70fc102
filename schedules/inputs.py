"""Value types for what people send (API bodies, schedule files): numbers are numbers, times are times.

pydantic's lax mode reads `false` as 0 and `"1.5"` as 1.5 for a number, and a number as seconds
since 1970 for a time: a report at longitude `false` or a command expiring at `0` was accepted as
if meant. These types take JSON numbers for numbers (an integer where a whole number is asked) and
ISO 8601 text for times and dates.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BeforeValidator, Strict


def _text_only(value: object) -> object:
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError(
            "expected ISO 8601 text such as 2026-11-30 or 2026-11-30T18:00:00+07:00, not a number"
        )
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: a JSON number (not true/false, not text)
Number = Annotated[float, Strict()]
#: a JSON integer
Whole = Annotated[int, Strict()]
#: true or false (not 0, 1 or "yes")
Flag = Annotated[bool, Strict()]
#: an instant as ISO 8601 text
Instant = Annotated[dt.datetime, BeforeValidator(_text_only)]
#: a calendar date as ISO 8601 text
Day = Annotated[dt.date, BeforeValidator(_text_only)]
