"""Faults and what is done about them: detectors, the alert book (raised once, cleared once), the
alert table, messages, delivery (MQTT, webhooks, live events) and citizen reports (docs/alerts.md)."""

from controller.alerts.book import Alert, AlertBook, AlertEvent
from controller.alerts.events import EventHub
from controller.alerts.messages import AlertMessage, alert_message
from controller.alerts.service import AlertChannel, AlertService, thresholds_by_device
from controller.alerts.store import AlertStore
from controller.alerts.webhooks import WebhookSender

__all__ = [
    "Alert",
    "AlertBook",
    "AlertChannel",
    "AlertEvent",
    "AlertMessage",
    "AlertService",
    "AlertStore",
    "EventHub",
    "WebhookSender",
    "alert_message",
    "thresholds_by_device",
]
