"""Alert webhooks: batches of alert events POSTed with httpx, signed, retried, dead-lettered.

Signature (docs/alerts.md): header `X-Lamplighter-Signature: t=<unix seconds>,v1=<hex>` where hex is
HMAC-SHA256(secret, "<t>.<raw body>"). The timestamp lets a receiver refuse replays; `verify_signature`
is the reference check. Delivery never blocks the alert pipeline: each endpoint has its own bounded
queue and worker; a batch that still fails after `max_attempts` (or that the endpoint refuses with a
4xx) goes to the dead-letter table, from where the API can send it again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from controller.alerts.book import SEVERITY_RANK
from controller.alerts.messages import AlertGroupMessage, AlertMessage, AnyAlertMessage
from controller.alerts.store import AlertStore
from controller.config import WebhookSettings
from controller.metrics import ControllerMetrics
from drivers.backoff import Backoff

log = logging.getLogger(__name__)
# no discriminator: letters stored before groups existed have no "type"
_EVENT: TypeAdapter[AnyAlertMessage] = TypeAdapter(AlertMessage | AlertGroupMessage)
SIGNATURE_HEADER = "X-Lamplighter-Signature"
#: a dead letter's reason when a stop came before delivery: such letters are sent at the next start
STOPPED = "not delivered before the controller stopped"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str, header: str, body: bytes, *, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """A receiver's check: the signature matches the body and is no older than `tolerance_s`."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class WebhookSender:
    def __init__(
        self,
        settings: WebhookSettings,
        store: AlertStore,
        metrics: ControllerMetrics,
        *,
        queue_size: int = 100_000,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.queue: asyncio.Queue[AnyAlertMessage] = asyncio.Queue(queue_size)
        self.kinds = set(settings.kinds)
        self.min_rank = SEVERITY_RANK[settings.min_severity]
        self.sent = 0
        self.overflow: list[AnyAlertMessage] = []
        self.delivered_batches = 0
        self._in_flight: list[AnyAlertMessage] = []  # taken from the queue, not yet delivered

    def wants(self, msg: AnyAlertMessage) -> bool:
        return (not self.kinds or msg.kind in self.kinds) and SEVERITY_RANK[msg.severity] >= self.min_rank

    def offer(self, messages: Sequence[AnyAlertMessage]) -> None:
        """Queue events for delivery without waiting; past the bound they go to the dead letters."""
        for msg in messages:
            if not self.wants(msg):
                continue
            try:
                self.queue.put_nowait(msg)
            except asyncio.QueueFull:
                self.overflow.append(msg)
                self.metrics.alert_deliveries.labels(f"webhook:{self.settings.id}", "dropped").inc()

    async def run(self) -> None:
        s = self.settings
        async with httpx.AsyncClient(timeout=s.timeout_s, follow_redirects=False) as client:
            while True:
                if self.overflow:
                    batch, self.overflow = self.overflow, []
                    await self.store.dead_letter(s.id, self.body(batch), 0, "queue full: not attempted")
                batch = self._in_flight = [await self.queue.get()]
                while len(batch) < s.batch_size and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                await self.deliver(client, batch)  # sent, or in the dead letters
                self._in_flight = []
                for _ in batch:
                    self.queue.task_done()

    async def delivered(self) -> None:
        """Until every event offered so far is sent or dead-lettered (a stop waits for it, bounded)."""
        await self.queue.join()

    async def keep_undelivered(self) -> None:
        """After the sender has stopped: what it had not delivered goes to the dead letters, to be
        sent first at the next start (`take_back`); nothing said is lost in a stop."""
        left = [*self.overflow, *self._in_flight]
        while not self.queue.empty():
            left.append(self.queue.get_nowait())
        self.overflow, self._in_flight = [], []
        if not left:
            return
        hook = self.settings.id
        log.warning("webhook %s: %d events %s: dead-lettered", hook, len(left), STOPPED)
        self.metrics.alert_deliveries.labels(f"webhook:{hook}", "dead_letter").inc(len(left))
        try:
            await self.store.dead_letter(hook, self.body(left), 0, STOPPED)
        except SQLAlchemyError as exc:  # the stop goes on: the alerts are in the alert table
            log.error("webhook %s: %d events lost, no dead letters (%s)", hook, len(left), exc)

    async def take_back(self) -> int:
        """At a start, before anything new is offered: queue again what a stop left undelivered
        (`keep_undelivered`), oldest first. Returns how many events."""
        hook = self.settings.id
        events: list[AnyAlertMessage] = []
        unreadable: list[object] = []
        for body in await self.store.take_dead_letters(hook, STOPPED):
            for e in body.get("events", []) if isinstance(body, dict) else [body]:
                try:
                    events.append(_EVENT.validate_python(e))
                except ValidationError:
                    unreadable.append(e)
        if unreadable:  # kept, not lost: a start goes on whatever a stored letter holds
            log.error(
                "webhook %s: %d events left by the last stop not understood; dead letters",
                hook,
                len(unreadable),
            )
            await self.store.dead_letter(
                hook, {"webhook": hook, "events": unreadable}, 0, "not understood at a start"
            )
        if events:
            self.offer(events)
            log.info("webhook %s: %d events left by the last stop, sent again", hook, len(events))
        return len(events)

    def body(self, batch: list[AnyAlertMessage]) -> dict[str, Any]:
        return {
            "webhook": self.settings.id,
            "sent_at": dt.datetime.now(dt.UTC).isoformat(),
            "events": [m.model_dump(mode="json") for m in batch],
        }

    async def deliver(self, client: httpx.AsyncClient, batch: list[AnyAlertMessage]) -> bool:
        """POST one batch, retrying with capped backoff; dead-letter it if it cannot be delivered."""
        s = self.settings
        channel = f"webhook:{s.id}"
        body = self.body(batch)
        raw = json.dumps(body, separators=(",", ":")).encode()
        backoff = Backoff(base_s=s.backoff_base_s, cap_s=s.backoff_cap_s)
        error = ""
        attempt = 0
        while attempt < s.max_attempts:
            attempt += 1
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(s.secret, raw, int(time.time())),
                "X-Lamplighter-Delivery-Attempt": str(attempt),
            }
            try:
                response = await client.post(s.url, content=raw, headers=headers)
                if response.is_success:
                    self.sent += len(batch)
                    self.delivered_batches += 1
                    self.metrics.alert_deliveries.labels(channel, "sent").inc(len(batch))
                    return True
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses this body; sending it again will not change that
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.metrics.alert_deliveries.labels(channel, "failed").inc(len(batch))
            if attempt < s.max_attempts:
                delay = backoff.next_delay()
                log.warning("webhook %s attempt %d failed (%s); retry in %.1f s", s.id, attempt, error, delay)
                await asyncio.sleep(delay)
        log.error(
            "webhook %s: %d events dead-lettered after %d attempts: %s", s.id, len(batch), attempt, error
        )
        self.metrics.alert_deliveries.labels(channel, "dead_letter").inc(len(batch))
        await self.store.dead_letter(s.id, body, attempt, error)
        return False

    async def resend(self, body: dict[str, Any]) -> None:
        """Queue the events of a dead letter again."""
        self.offer([_EVENT.validate_python(e) for e in body.get("events", [])])
