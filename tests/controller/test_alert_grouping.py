"""Root causes: a link's devices failing alike at once are one group; what came before stays apart."""

from __future__ import annotations

import datetime as dt

from controller.alerts.book import Alert
from controller.alerts.grouping import Grouping, RootCauses, severity_then_newest
from controller.alerts.messages import group_message

T0 = dt.datetime(2026, 11, 30, 19, 0, tzinfo=dt.UTC)
LINK_OF = {f"gw-a-{i:03d}": "gw-a" for i in range(1, 53)} | {f"gw-b-{i:03d}": "gw-b" for i in range(1, 4)}
ON_LINK = {"gw-a": 52, "gw-b": 3}


def alert(n: int, device: str, kind: str = "communicationFailure", at_s: float = 0.0) -> Alert:
    a = Alert(device, kind, "major", T0 + dt.timedelta(seconds=at_s), "no answer")  # type: ignore[arg-type]
    a.id = n
    a.site = "hn"
    return a


def test_a_feeder_trip_is_one_group_and_the_lamp_that_failed_before_stays_on_its_own() -> None:
    earlier = alert(1, "gw-a-007", "lampFailure", at_s=-3600)
    trip = [alert(10 + i, f"gw-a-{i:03d}", "lampFailure", at_s=i * 0.2) for i in range(1, 53) if i != 7]
    other_link = alert(100, "gw-b-001", "lampFailure", at_s=5)
    groups, alone = Grouping(min_devices=3).split([earlier, *trip, other_link], LINK_OF, ON_LINK)
    assert len(groups) == 1
    (g,) = groups
    assert (g.link, g.kind, len(g.alerts), g.devices_on_link) == ("gw-a", "lampFailure", 51, 52)
    assert g.id == "gw-a:lampFailure:11"
    assert alone == [earlier, other_link]
    message = group_message(g, "group_raised", T0)
    assert message.title == {"vi": "gw-a: 51 đèn không sáng", "en": "gw-a: 51 lamps out"}


def test_too_few_or_too_far_apart_is_no_group() -> None:
    two = [alert(1, "gw-b-001"), alert(2, "gw-b-002")]
    assert Grouping(min_devices=3).split(two, LINK_OF, ON_LINK) == ([], two)
    spread = [alert(i, f"gw-b-{i:03d}", at_s=i * 600) for i in (1, 2, 3)]
    assert Grouping(min_devices=3, window=dt.timedelta(minutes=5)).split(spread, LINK_OF, ON_LINK)[0] == []
    kinds = [alert(1, "gw-b-001"), alert(2, "gw-b-002", "lampFailure"), alert(3, "gw-b-003")]
    assert Grouping(min_devices=3).split(kinds, LINK_OF, ON_LINK)[0] == []


def test_the_channels_hear_a_group_raised_grown_and_cleared_once_each() -> None:
    causes = RootCauses(Grouping(min_devices=3), LINK_OF, ON_LINK)
    first = [alert(i, f"gw-a-{i:03d}") for i in (1, 2)]
    assert causes.update(first) == []
    three = [*first, alert(3, "gw-a-003")]
    (change,) = causes.update(three)
    assert (change[0], len(change[1].alerts)) == ("group_raised", 3)
    assert causes.member_of(three[0]) == "gw-a:communicationFailure:1"
    assert causes.update(three) == []  # nothing new: nothing said
    four = [*three, alert(4, "gw-a-004")]
    assert [c[0] for c in causes.update(four)] == ["group_updated"]
    (went_on,) = causes.update(four[1:])  # its first member cleared: the same group goes on
    assert (went_on[0], went_on[1].id) == ("group_updated", "gw-a:communicationFailure:1")
    assert [c[0] for c in causes.update(four[2:])] == ["group_cleared"]  # fewer than three left
    assert causes.member_of(four[2]) == "gw-a:communicationFailure:1"  # its own clearing names it


def test_the_most_severe_then_the_newest_come_first() -> None:
    minor = alert(1, "gw-b-001", "dayBurning", at_s=60)
    minor.severity = "minor"
    old_major = alert(2, "gw-b-002", at_s=0)
    new_major = alert(3, "gw-b-003", at_s=30)
    assert sorted([minor, old_major, new_major], key=severity_then_newest) == [new_major, old_major, minor]
