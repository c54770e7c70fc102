"""Logging that says a recurring problem once per interval, with a count, instead of per message."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable


class RateLimitedLog:
    """Logs the first occurrence of each key, then at most once per interval with how many more."""

    def __init__(self, logger: logging.Logger, *, interval_s: float = 60.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def warning(self, key: Hashable, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        more = self._suppressed.pop(key, 0)
        if more:
            self.logger.warning(
                msg + " (and %d more like it in the last %.0f s)", *args, more, self.interval_s
            )
        else:
            self.logger.warning(msg, *args)
