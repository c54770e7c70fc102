"""The MQTT broker's users and topic rules, and the embedded broker that enforces them."""

from controller.broker.access import BrokerRules, broker_rules, mosquitto_acl
from controller.broker.embedded import BrokerAccess, EmbeddedBroker, EmbeddedBrokerRun, start_embedded_broker

__all__ = [
    "BrokerAccess",
    "BrokerRules",
    "EmbeddedBroker",
    "EmbeddedBrokerRun",
    "broker_rules",
    "mosquitto_acl",
    "start_embedded_broker",
]
