"""The live-event hub: slow listeners lose events (and are told), reconnecting ones get a replay."""

from __future__ import annotations

import asyncio
import json

from controller.alerts.events import EventHub
from controller.event_news import event_payloads
from controller.state_news import PAYLOAD_MAX


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


async def test_after_a_restart_a_browser_gets_what_came_since_the_id_it_last_saw() -> None:
    """Ids are the publishing time in microseconds: a restarted controller's (or another
    instance's) are ahead of every old one, so the replay has all of them (with ids counted from 1
    at each start, the events since the restart came out as 'already seen')."""
    before = EventHub()
    last_seen = [before.publish("alert", str(i)) for i in range(300)][-1]
    await asyncio.sleep(0.01)  # a restart takes seconds; a burst runs ids ahead by 1 µs an event
    after = EventHub()
    since = [after.publish("alert", f"after {i}") for i in range(2)]
    assert since[0].id > last_seen.id
    async with after.listen(last_event_id=last_seen.id) as listener:
        replayed = [listener.queue.get_nowait().data for _ in range(listener.queue.qsize())]
    assert replayed == ["after 0", "after 1"]


def test_live_events_fit_notifications_and_one_too_large_is_left_out() -> None:
    events = [("alert", json.dumps({"n": i, "text": "x" * 900})) for i in range(20)]
    events.insert(5, ("alert", json.dumps({"text": "y" * (PAYLOAD_MAX + 1)})))
    payloads, too_big = event_payloads("instance-1", events)
    assert too_big == 1
    assert all(len(p.encode()) <= PAYLOAD_MAX for p in payloads)
    sent = [json.loads(data)["n"] for p in payloads for _name, data in json.loads(p)["events"]]
    assert sent == list(range(20))  # all the others, in order
    assert {json.loads(p)["from"] for p in payloads} == {"instance-1"}
