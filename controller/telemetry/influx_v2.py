"""Writes to `/api/v2/write` through influxdb-client's async API (`write_endpoint = "v2"`).

A module of its own so that influxdb-client (and the aiohttp under it) is imported only by an
instance that writes v2: importing them cost ~0.22 s of every start of the others (measured with
`python -X importtime` and by timing the import after the rest of `lamplighter run`'s).
"""

from __future__ import annotations

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from controller.config import InfluxSettings


class V2Writer:
    def __init__(self, settings: InfluxSettings, bucket: str) -> None:
        s = settings
        self.org = s.org
        self.bucket = bucket
        self._client = InfluxDBClientAsync(
            url=s.url,
            token=s.token or (f"{s.username}:{s.password}" if s.username else ""),
            org=s.org,
            timeout=int(s.timeout_s * 1000),
            enable_gzip=s.gzip,
        )
        self._write = self._client.write_api()

    async def post(self, lines: bytes) -> tuple[int, str]:
        """(HTTP status, body); aiohttp's own errors (unreachable, timeout) are raised."""
        try:
            await self._write.write(
                bucket=self.bucket,
                org=self.org,
                record=lines,
                write_precision=WritePrecision.US,  # type: ignore[arg-type]  # a str constant
            )
        except ApiException as exc:
            return int(exc.status or 0), str(exc.body or exc.reason)
        return 204, ""

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]
