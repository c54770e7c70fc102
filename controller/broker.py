"""The embedded MQTT broker (amqtt, in this process) for set-ups without Mosquitto or EMQX.

It speaks MQTT 3.1.1 only and binds loopback by default. Production deployments point MQTT links
at a real broker instead (docs/mqtt.md).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """amqtt on host:port; `port=0` picks a free port, reported by `start()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    async def start(self) -> int:
        if self.port == 0:
            with socket.socket() as s:  # ask the kernel for a free port, then hand it to amqtt
                s.bind((self.host, 0))
                self.port = int(s.getsockname()[1])
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config)
        await self._broker.start()
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
