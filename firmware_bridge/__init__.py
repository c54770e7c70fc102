"""Signed firmware images, chunked resumable transfers over serial/BLE/MQTT, staged rollouts.

Arrives with the firmware issue; nothing here yet.
"""
