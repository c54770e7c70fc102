"""The night the broker and the time-series database restart under load: no reading is lost.

Sensors publish numbered readings at QoS 1 from their own process (`bench.mqtt_publisher`, which
resends what the broker did not acknowledge, as a device's MQTT client does). The controller takes
them in over a persistent session and writes them to a real InfluxDB. Mid-stream the broker is
stopped and started again (Mosquitto keeps queued messages in its persistence file); later InfluxDB
is stopped for a few seconds (the controller's disk buffer holds the points). At the end every
acknowledged reading is in InfluxDB.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from controller.config import load_config
from controller.telemetry.influx import InfluxStore
from drivers.mqtt import MqttLink
from tests.controller.city import influx_telemetry, running_controller, with_influx, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.tsdb import InfluxDB1
from tests.waiting import fetched_until, until

SENSORS = 20
COUNT = 3000
RATE = 250.0  # readings per second: the stream lasts 12 s


def write_config(tmp_path: Path, broker: Mosquitto, influx: InfluxDB1) -> Path:
    """Sensors on the broker (QoS 1, persistent session: the link's defaults), telemetry to InfluxDB."""
    sensors = [(f"s{i:05d}", f"s{i:05d}", "env_sensor") for i in range(SENSORS)]
    path = write_mqtt_city(tmp_path, broker.port, sensors)
    telemetry = influx_telemetry(
        influx.url, tmp_path / "buffer", batch_size=200, backoff_base_s=0.05, backoff_cap_s=0.5
    )
    path.write_text(with_influx(path.read_text(), telemetry))
    return path


async def test_broker_and_influxdb_restarts_during_qos1_ingest_lose_no_reading(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    influx = InfluxDB1(tmp_path / "influx")
    influx.start()
    try:
        settings = load_config(write_config(tmp_path, mosquitto, influx))
        async with running_controller(settings) as ctl:
            link = ctl.drivers["broker"]
            assert isinstance(link, MqttLink)
            assert isinstance(ctl.store, InfluxStore)
            store = ctl.store
            await until(lambda: link.stats.connected, what="subscribed")
            publisher = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bench.mqtt_publisher", "--port", str(mosquitto.port)),
                *("--count", str(COUNT), "--devices", str(SENSORS), "--resilient-rate", str(RATE)),
                stdout=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(2)
            mosquitto.stop()  # the broker restarts mid-stream …
            await until(lambda: not link.stats.connected, what="the controller notices")
            await asyncio.sleep(1.5)
            mosquitto.start()
            await until(lambda: link.stats.connected, what="reconnected", within_s=15)
            await asyncio.sleep(2)
            influx.stop()  # … and later the time-series database
            await until(lambda: store.down, what="InfluxDB outage noticed")
            await asyncio.sleep(3)
            influx.start()

            out, _ = await asyncio.wait_for(publisher.communicate(), 60)
            acknowledged = int(out.decode().split()[-1])
            assert acknowledged == COUNT

            def distinct_stored() -> int:
                rows = influx.query('SELECT count(distinct("illuminance_lx")) FROM "lamplighter"', "city")
                return int(rows[0][1]) if rows else 0  # type: ignore[call-overload]

            stored = await fetched_until(
                lambda: asyncio.to_thread(distinct_stored),
                lambda n: n >= COUNT,
                within_s=30,
                what="every acknowledged reading in InfluxDB",
            )
            assert stored == COUNT  # 0 lost (QoS 1 may deliver some twice: those count once)
            assert link.stats.connects >= 2
            assert store.buffer.points == 0
            assert not link.stats.rejections
    finally:
        influx.stop()
