"""Demo mode only: the simulated air sensors' last 12 hours, written once into an empty store, so that
`make run` shows each district's air quality index at once instead of after two hours (the NowCast
needs 2 of the 3 latest hourly means). The readings follow the simulators' own daily pattern
(simulators/mqtt_devices.py) and are said to be simulated in the log; a store that already holds
recent readings of a sensor is left as it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from controller.air_figures import hour_end
from controller.air_index import NOWCAST_HOURS
from controller.runtime import Controller
from drivers.base import Reading
from simulators.mqtt_devices import sensor_values

log = logging.getLogger(__name__)
EVERY = dt.timedelta(minutes=5)


async def backfill_air(controller: Controller, *, seed: int = 1) -> int:
    """Write the simulated history of every air sensor without recent readings; how many readings."""
    watch = controller.air
    if watch is None or not watch.fields:
        return 0
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(hours=NOWCAST_HOURS)
    rng = random.Random(seed)
    readings: list[Reading] = []
    for device_id, fields in sorted(watch.fields.items()):
        since = now - dt.timedelta(hours=2)
        if await controller.store.query(device_id, since, now, fields=fields, limit=1):
            continue
        tz = controller.clocks[controller.devices[device_id].site_id].tz
        at = start
        while at < now - EVERY:
            values = sensor_values(at.astimezone(tz), rng)
            readings.append(Reading(device_id, at, {f: values[f] for f in fields if f in values}))
            at += EVERY
    if readings:
        await controller.store.write(readings)
        log.info("demo: %d simulated air readings of the last %d hours written", len(readings), NOWCAST_HOURS)
        await watch.compute(hour_end(now, watch.settings.hour_s))
    return len(readings)
