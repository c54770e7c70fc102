"""The live-event hub: slow listeners lose events (and are told), reconnecting ones get a replay."""

from __future__ import annotations

from controller.alerts.events import EventHub


async def test_a_slow_listener_loses_events_and_is_told_how_many() -> None:
    hub = EventHub(listener_queue=3)
    async with hub.listen() as slow:
        for i in range(5):
            hub.publish("alert", f'{{"n": {i}}}')
        got = [slow.queue.get_nowait().data for _ in range(3)]
        assert got == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
        assert slow.lag_notice() == 2
        assert slow.lag_notice() == 0  # told once
    assert hub.listeners == set()
    assert hub.dropped == 2


async def test_a_reconnecting_listener_gets_what_it_missed() -> None:
    hub = EventHub()
    first = [hub.publish("alert", str(i)) for i in range(4)]
    async with hub.listen(last_event_id=first[1].id) as listener:
        hub.publish("report", "later")
        missed = [listener.queue.get_nowait() for _ in range(3)]
    assert [(e.name, e.data) for e in missed] == [("alert", "2"), ("alert", "3"), ("report", "later")]
