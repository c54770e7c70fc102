"""The fixed sets of values the controller's tables, its API and its messages share.

Database columns holding them are typed with them, so nothing needs to trust a string.
"""

from __future__ import annotations

from typing import Literal

from drivers.profile import DeviceKind

__all__ = ["Action", "CommandStatus", "DeviceKind", "DeviceState", "Origin"]
DeviceState = Literal["unknown", "ok", "fault", "offline"]
#: what a command asks
Action = Literal["set_level", "switch"]
#: who asked
Origin = Literal["operator", "schedule", "campaign", "failsafe"]
#: how it ended
CommandStatus = Literal["pending", "confirmed", "mismatch", "failed", "expired"]
