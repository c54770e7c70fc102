"""The InfluxDB telemetry store against real servers: Debian's InfluxDB 1.6 and VictoriaMetrics."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import shutil
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.config import InfluxSettings, load_config
from controller.telemetry.disk_buffer import TelemetryBufferError
from controller.telemetry.influx import InfluxStore
from drivers.base import Reading
from tests.api.keys import api_client
from tests.controller.city import (
    influx_telemetry,
    running_city,
    running_controller,
    with_influx,
    write_city,
)
from tests.tls_certs import make_tls_files
from tests.tsdb import InfluxDB1, VictoriaMetrics
from tests.waiting import fetched_until, until

ADMIN = ("admin", "s3cret-admin-pass")


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path / "influx", auth=ADMIN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path / "vm")
    server.start()
    yield server
    server.stop()


def settings(server_url: str, tmp_path: Path, **kw: Any) -> InfluxSettings:
    base: dict[str, Any] = {
        "url": server_url,
        "write_endpoint": "v1",
        "database": "city",
        "username": ADMIN[0],
        "password": ADMIN[1],
        "buffer_dir": str(tmp_path / "buffer"),
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "timeout_s": 2,
    }
    return InfluxSettings(**{**base, **kw})


def readings(device: str, n: int, start: dt.datetime, **values: Any) -> list[Reading]:
    return [
        Reading(
            device,
            start + dt.timedelta(seconds=i),
            {"power_w": 50.0 + i, "voltage_v": 230.0, "lamp_on": True, "dim_level_pct": 60, **values},
        )
        for i in range(n)
    ]


@pytest.fixture
async def store_factory(tmp_path: Path) -> AsyncIterator[Any]:
    opened: list[InfluxStore] = []

    async def make(s: InfluxSettings) -> InfluxStore:
        store = InfluxStore(s)
        store.describe_devices(
            {"lamp-1": {"device": "lamp-1", "site": "hn", "group": "hanoi/ba-dinh", "kind": "lamp"}}
        )
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=10)


async def test_points_land_with_tags_and_read_back(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    store = await store_factory(settings(influx.url, tmp_path))
    await store.write(readings("lamp-1", 120, NOW))
    assert await store.flush()
    rows = influx.query(
        'SELECT count("power_w") FROM "lamplighter" WHERE "group" = \'hanoi/ba-dinh\'', "city"
    )
    assert rows[0][1] == 120
    raw = await store.query("lamp-1", NOW, NOW + dt.timedelta(seconds=5), fields=["power_w", "lamp_on"])
    assert [p.values["power_w"] for p in raw] == [50.0, 51.0, 52.0, 53.0, 54.0]
    assert raw[0].values["lamp_on"] is True
    assert raw[0].ts == NOW
    per_minute = await store.query(
        "lamp-1", NOW, NOW + dt.timedelta(minutes=2), fields=["power_w"], every_s=60
    )
    assert [p.values["power_w"] for p in per_minute] == [79.5, 139.5]  # means of 50..109 and 110..169


async def test_the_span_an_energy_figure_covers_reads_back(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    store = await store_factory(settings(influx.url, tmp_path))
    await store.write(readings("lamp-1", 30, NOW, energy_wh=1000.0))
    await store.write(readings("lamp-2", 5, NOW))  # no energy counter: no span
    assert await store.flush()
    end = NOW + dt.timedelta(hours=1)
    assert await store.reported(["lamp-1", "lamp-2"], NOW - dt.timedelta(hours=1), end) == {
        "lamp-1": (NOW, NOW + dt.timedelta(seconds=29))
    }
    assert await store.reported(["lamp-1"], NOW + dt.timedelta(seconds=10), end) == {
        "lamp-1": (NOW + dt.timedelta(seconds=10), NOW + dt.timedelta(seconds=29))
    }


async def test_readings_a_fraction_of_a_millisecond_apart_are_all_kept(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    """A backlog delivered at once (a broker restart) has receipt times microseconds apart."""
    store = await store_factory(settings(influx.url, tmp_path))
    burst = [
        Reading("lamp-1", NOW + dt.timedelta(microseconds=150 * i), {"power_w": float(i)}) for i in range(5)
    ]
    await store.write(burst)
    assert await store.flush()
    rows = influx.query('SELECT "power_w" FROM "lamplighter"', "city")
    assert [row[1] for row in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_the_v2_write_path_reaches_victoria_metrics(
    victoria: VictoriaMetrics, tmp_path: Path, store_factory: Any
) -> None:
    store = await store_factory(
        settings(victoria.url, tmp_path, write_endpoint="v2", token="any", username=None, password=None)
    )
    await store.write(readings("lamp-1", 30, NOW))
    assert await store.flush()
    assert store.written_points == 30

    def exported() -> list[dict[str, Any]]:
        return victoria.export('{__name__="lamplighter_power_w"}')

    series = await fetched_until(
        lambda: asyncio.to_thread(exported),
        lambda got: bool(got) and len(got[0]["values"]) == 30,
        within_s=5,
        what="30 exported points",
    )
    assert series[0]["metric"] == {
        "__name__": "lamplighter_power_w",
        "device": "lamp-1",
        "site": "hn",
        "group": "hanoi/ba-dinh",
        "kind": "lamp",
    }
    assert series[0]["values"][:3] == [50, 51, 52]


async def test_an_outage_loses_nothing_even_across_a_restart(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    store = await store_factory(settings(influx.url, tmp_path))
    await store.write(readings("lamp-1", 50, NOW))
    assert await store.flush()
    influx.stop()
    for k in range(1, 5):  # the database is down: batches go to disk
        await store.write(readings("lamp-1", 50, NOW + dt.timedelta(seconds=50 * k)))
        await asyncio.sleep(0.1)
    await until(lambda: store.down, what="outage noticed")
    assert store.buffer.points == 200
    assert "ConnectError" in (store.last_error or "")
    await store.close()  # the controller restarts while the database is still down
    buffered = sorted(p.name for p in (tmp_path / "buffer").iterdir())
    assert len(buffered) == 4
    influx.start()
    again = await store_factory(settings(influx.url, tmp_path))
    assert again.buffer.points == 200
    assert await again.flush()
    rows = influx.query('SELECT count("power_w") FROM "lamplighter"', "city")
    assert rows[0][1] == 250  # zero lost
    assert list((tmp_path / "buffer").iterdir()) == []


async def test_refused_points_are_counted_and_their_neighbours_kept(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    store = await store_factory(settings(influx.url, tmp_path))
    # an older system wrote firmware_version as a number: a string now conflicts with it. InfluxDB
    # keeps a field's type per shard (7-day groups, from Monday 00:00 UTC), so that point goes in the
    # batch's minute: an hour before it, it fell into last week's shard on a Monday just after
    # midnight, and nothing conflicted.
    await store.write(readings("other", 1, NOW + dt.timedelta(seconds=30), firmware_version=1.4))
    assert await store.flush()
    batch = readings("lamp-1", 10, NOW)
    batch[4] = Reading("lamp-1", batch[4].ts, {**batch[4].values, "firmware_version": "1.5"})
    await store.write(batch)
    assert await store.flush()
    assert store.rejected_points == 1
    rows = influx.query(
        """SELECT count("power_w") FROM "lamplighter" WHERE "device" = 'lamp-1' AND time >= now() - 30m""",
        "city",
    )
    assert rows[0][1] == 9


async def test_wrong_credentials_keep_the_data_until_they_are_fixed(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    wrong = await store_factory(settings(influx.url, tmp_path, password="not-the-password"))
    await wrong.write(readings("lamp-1", 20, NOW))
    await until(lambda: wrong.errors.get("auth", 0) >= 1, what="auth failure")
    assert "HTTP 401" in (wrong.last_error or "")
    assert "check token / username / password" in (wrong.last_error or "")
    await wrong.close()
    right = await store_factory(settings(influx.url, tmp_path))
    assert await right.flush()
    assert influx.query('SELECT count("power_w") FROM "lamplighter"', "city")[0][1] == 20


async def test_the_v2_endpoint_on_an_old_influxdb_says_what_to_change(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    store = await store_factory(settings(influx.url, tmp_path, write_endpoint="v2"))
    await store.write(readings("lamp-1", 3, NOW))
    await until(lambda: bool(store.last_error), what="an error")
    assert 'set write_endpoint = "v1"' in (store.last_error or "")
    assert store.buffer.points == 3  # kept, not lost


async def test_past_its_cap_the_buffer_drops_the_oldest_and_counts_them(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    influx.stop()
    store = await store_factory(settings(influx.url, tmp_path, buffer_max_mb=0.002))  # ~2 KB
    for k in range(10):
        await store.write(readings("lamp-1", 20, NOW + dt.timedelta(seconds=20 * k)))
        await asyncio.sleep(0.05)
    assert store.buffer.dropped_points > 0
    assert store.buffer.bytes <= 0.002 * 2**20 or len(store.buffer) == 1
    assert store.buffer.points + store.buffer.dropped_points == 200


async def test_a_buffer_that_cannot_be_written_fails_the_write_clearly(
    influx: InfluxDB1, tmp_path: Path, store_factory: Any
) -> None:
    influx.stop()
    store = await store_factory(settings(influx.url, tmp_path))
    await store.write(readings("lamp-1", 5, NOW))
    await until(lambda: store.down, what="outage noticed")
    shutil.rmtree(tmp_path / "buffer")
    (tmp_path / "buffer").write_text("the disk is gone")  # nothing can be created there any more
    with pytest.raises(TelemetryBufferError, match=r"cannot keep 5 points in the telemetry buffer .*buffer"):
        await store.write(readings("lamp-1", 5, NOW + dt.timedelta(minutes=1)))
    # the disk is back before the store closes: closing keeps what is pending (else it says so, loudly)
    (tmp_path / "buffer").unlink()


async def test_the_controller_and_api_use_influxdb(influx: InfluxDB1, tmp_path: Path) -> None:
    extra = influx_telemetry(influx.url, tmp_path / "buffer", username=ADMIN[0], password=ADMIN[1])
    path = write_city(tmp_path, gw_lamps=2, bus_lamps=1)
    path.write_text(with_influx(path.read_text(), extra))
    config = load_config(path)
    async with running_city(config), running_controller(config) as ctl:
        await asyncio.sleep(1.5)
        async with api_client(ctl) as client:
            body = (
                await client.get("/api/v1/devices/gw1-001/telemetry", params={"fields": "voltage_v"})
            ).json()
            influx.stop()
            away = await client.get("/api/v1/devices/gw1-001/telemetry", params={"fields": "voltage_v"})
            assert away.status_code == 503
            assert away.json()["error"]["code"] == "telemetry_unavailable"
            influx.start()
    assert len(body["points"]) >= 3
    assert 220 < body["points"][0]["values"]["voltage_v"] < 240
    rows = influx.query(
        'SELECT count("voltage_v") FROM "lamplighter" WHERE "site" = \'hn\' GROUP BY "device"', "city"
    )
    assert len(rows) == 3


async def test_an_https_server_whose_certificate_is_not_trusted_is_refused(
    tmp_path: Path, store_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain-http server gets a client without a TLS context (a faster start); https:// — however
    spelled — keeps verifying: a server whose certificate no trusted authority signed is told nothing."""
    tls = make_tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.server_cert, tls.server_key)
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            requests.append(await reader.readline())  # reached only past a completed handshake
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        with caplog.at_level(logging.WARNING, logger="controller.telemetry.influx"):
            await store_factory(settings(f"HTTPS://127.0.0.1:{port}", tmp_path))
        assert requests == []
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    finally:
        server.close()
        await server.wait_closed()
