"""A body is read only from someone who may send it: 401 and 403 come before the upload."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from tests.api.keys import auth_headers, serving
from tests.controller.city import settings_for
from tests.waiting import fetched_until

DECLARED = 400 * 2**20  # what the client says it will send


async def _start_upload(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Declare a 400 MB multipart upload, send its first 64 KB, and wait for the answer: a server
    that wants the whole body says nothing until it has it."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    sent = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        (
            "POST /api/v1/firmware HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {DECLARED}\r\n{sent}\r\n"
        ).encode()
        + b"--xyz\r\nContent-Disposition: form-data; name=image; filename=a.bin\r\n\r\n"
        + b"\0" * 65536
    )
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 5)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    return int(status_line.split()[1]), body


async def test_anonymous_and_unpermitted_uploads_are_refused_before_the_body(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path)) as (ctl, url):
        status, body = await _start_upload(url, {})
        assert status == 401
        assert b'"unauthorized"' in body
        status, body = await _start_upload(url, await auth_headers(ctl, "viewer"))
        assert status == 403
        assert b"technician" in body  # it names who may
        _, total = await fetched_until(ctl.auth.audit_log, lambda log: log[1] > 0)
        assert total == 1  # the viewer's refusal is audited; the stranger's is counted only
