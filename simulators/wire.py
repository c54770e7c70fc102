"""RS-485 wire time, emulated: a pseudo-terminal moves bytes instantly, a real bus does not."""

from __future__ import annotations

import asyncio


class WireClock:
    """Emulates RS-485 wire time for RTU frames: 11-bit characters, 3.5-character silences.

    A pseudo-terminal moves bytes instantly; this clock delays each reply until the moment it
    would have finished arriving on a real bus, and delays a request that arrives before the
    bus's inter-frame silence has elapsed. One transaction occupies the bus for
    (request + 3.5 + response + 3.5) character times.
    """

    BITS_PER_CHAR = 11  # start + 8 data + parity or second stop + stop

    def __init__(self, baudrate: int) -> None:
        self.char_s = self.BITS_PER_CHAR / baudrate
        self.gap_s = 3.5 * self.char_s
        self._bus_free_at = 0.0

    @staticmethod
    def frame_sizes(function_code: int, count: int, writing: bool) -> tuple[int, int]:
        """RTU (request, response) sizes in bytes: address + PDU + CRC16."""
        if function_code in (3, 4):
            return 8, 5 + 2 * count
        if function_code == 6:
            return 8, 8
        if function_code == 16:
            return 9 + 2 * count, 8
        if function_code == 23:  # the same count written and read back (a lamp's setpoints)
            return 13 + 2 * count, 5 + 2 * count
        return 8, 5

    def transaction_s(self, request_bytes: int, response_bytes: int) -> float:
        """Bus time of one request/response pair, silences included."""
        return (request_bytes + response_bytes) * self.char_s + 2 * self.gap_s

    async def transact(self, request_bytes: int, response_bytes: int | None) -> None:
        """Wait as long as the wire would; `response_bytes=None` means the slave stays silent."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._bus_free_at)
        done = start + request_bytes * self.char_s
        if response_bytes is not None:
            done += self.gap_s + response_bytes * self.char_s
        self._bus_free_at = done + self.gap_s
        await asyncio.sleep(done - now)
