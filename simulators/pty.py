"""A pseudo-terminal pair from socat: two serial-port paths wired to each other, like an RS-485 bus."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path


class PtyPairError(RuntimeError):
    """socat is missing or did not create the pair."""


class PtyPair:
    """`socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B`, run as a supervised child process.

    The controller opens `controller_end` as its serial port; the simulator serves `device_end`.
    """

    def __init__(self, controller_end: str | Path, device_end: str | Path | None = None) -> None:
        self.controller_end = Path(controller_end)
        self.device_end = Path(device_end) if device_end else Path(f"{controller_end}.sim")
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 5.0) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise PtyPairError("socat not found: install it (Debian package 'socat'; `make test` does)")
        self.controller_end.parent.mkdir(parents=True, exist_ok=True)
        for path in (self.controller_end, self.device_end):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._proc = await asyncio.create_subprocess_exec(
            socat,
            f"pty,raw,echo=0,link={self.controller_end}",
            f"pty,raw,echo=0,link={self.device_end}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not (self.controller_end.exists() and self.device_end.exists()):
            if self._proc.returncode is not None:
                raise PtyPairError(f"socat exited with {self._proc.returncode}")
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise PtyPairError(f"socat did not create {self.controller_end} in {timeout_s} s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for path in (self.controller_end, self.device_end):
            with contextlib.suppress(FileNotFoundError):
                if path.is_symlink():
                    os.unlink(path)

    async def __aenter__(self) -> PtyPair:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
