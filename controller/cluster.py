"""Several controller instances serving one city: which links each owns (docs/deployment.md).

Each instance owns a shard of the links: `[cluster] links` names them, or else instance `instance`
of `instances` owns the links whose id hashes (CRC-32) to it. It alone polls, commands, schedules
and watches their devices; MQTT links with a `shared_group` are ingested by every instance. The
loops that read back the other instances' work are in controller/runtime.py's `PeerSync`.
"""

from __future__ import annotations

import zlib

from controller.config import ControllerSettings, MqttLinkConfig


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
