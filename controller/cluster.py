"""Several controller instances serving one city: which links each owns (docs/deployment.md).

Each instance owns a shard of the links: `[cluster] links` names them, or else instance `instance`
of `instances` owns the links whose id hashes (CRC-32) to it. It alone polls, commands, schedules
and watches their devices; MQTT links with a `shared_group` are ingested by every instance. The
instance reads back the other instances' device states with `PeerSync`: what they announce at
once (controller/state_news.py), the rest at their state flush. Who owns which links at run time
is decided by leases (controller/shard_keeper.py).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from controller.config import ControllerSettings, MqttLinkConfig
from controller.device import Device
from controller.fleet import Fleet
from controller.registry import Registry, SavedState

SCHEDULE_SYNC_S = 2.0  # how often an instance looks for schedule changes made elsewhere
STATE_CHUNK = 250  # device states saved (or read back from other instances) per transaction
PEER_CLOCK_MARGIN = timedelta(seconds=10)  # slow commits, and other instances' clocks behind ours


def owned_links(settings: ControllerSettings) -> frozenset[str]:
    """The links this instance polls and commands (all of them unless `[cluster]` says otherwise)."""
    cluster = settings.cluster
    if cluster.links is not None:
        return frozenset(cluster.links)
    return frozenset(
        link.id
        for link in settings.links
        if zlib.crc32(link.id.encode()) % cluster.instances == cluster.instance
    )


def shared_links(settings: ControllerSettings) -> frozenset[str]:
    """MQTT links with a `shared_group`: every instance takes in a share of their telemetry."""
    return frozenset(x.id for x in settings.links if isinstance(x, MqttLinkConfig) and x.shared_group)


def ingest_links(settings: ControllerSettings) -> frozenset[str]:
    """The links this instance takes readings from: its own, plus every MQTT link with a
    `shared_group`, whose telemetry the broker spreads over all the instances in the group. The
    instance that owns such a link still alone watches and commands its devices."""
    return owned_links(settings) | shared_links(settings)


class PeerSync:
    """Reads back what the other instances wrote to the shared database, so this instance's API
    answers for the whole city and its lamps follow schedules changed through another instance."""

    def __init__(
        self,
        registry: Registry,
        fleet: Fleet,
        owned: Mapping[str, Device],
        shared: set[str],
        interval_s: float,
    ) -> None:
        self.registry = registry
        self.fleet = fleet
        self.owned = owned  # this instance's devices: their states are its own
        self.shared = shared  # devices of shared-group MQTT links: every instance sees some readings
        self.interval_s = interval_s
        self._news: set[str] = set()  # announced by others, not read yet (bounded by the city)
        self._news_came = asyncio.Event()

    async def read_states_forever(self) -> None:
        """Other instances' device states, as fresh as their state flush."""
        since: datetime | None = None
        while True:
            await asyncio.sleep(self.interval_s)
            started = datetime.now(UTC)
            # Only what changed since the last read (with a margin for the instances' clocks),
            # a chunk at a time: all 50,000 rows every time held each instance's loop up.
            async for rows in self.registry.states_changed_since(since, chunk=STATE_CHUNK):
                self._take(rows)
                await asyncio.sleep(0)
            since = started - PEER_CLOCK_MARGIN

    def heard(self, device_ids: list[str]) -> None:
        """Another instance announced these devices' changes (controller/state_news.py)."""
        self._news.update(device_ids)
        self._news_came.set()

    async def read_news_forever(self) -> None:
        """Announced changes read back at once: a lamp out on another instance's link shows in
        this instance's API within a second, not at the next full read-back."""
        while True:
            await self._news_came.wait()
            self._news_came.clear()
            ids, self._news = sorted(self._news), set()
            rows = await self.registry.states_of(ids)
            self._take(rows)

    def _take(self, rows: Sequence[SavedState]) -> None:
        self.fleet.restore(
            r for r in rows if r.device_id not in self.owned and r.device_id not in self.shared
        )
        # A shared-group device's readings are spread over the instances: take the newest.
        self.fleet.merge_newer(r for r in rows if r.device_id in self.shared)
