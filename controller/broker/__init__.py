"""The MQTT broker's users and topic rules (controller/broker/access.py), and the embedded broker that
enforces them (controller/broker/embedded.py: imported only where it runs, amqtt takes ~90 ms to
import and most controllers use Mosquitto or EMQX)."""

from controller.broker.access import BrokerRules, broker_rules, mosquitto_acl

__all__ = ["BrokerRules", "broker_rules", "mosquitto_acl"]
