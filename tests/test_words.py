"""The translation files are complete: both languages have every key with the same placeholders,
and every text the dashboard and the controller ask for exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from controller.auth.credentials import Role
from controller.faults import FAULT_KINDS
from controller.words import LANGUAGES, Language, catalog, evidence_in, say
from drivers.fields import READING_FIELDS

DASHBOARD = Path(__file__).parent.parent / "api" / "dashboard"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def used_by_the_dashboard() -> set[str]:
    keys = set()
    html = (DASHBOARD / "index.html").read_text(encoding="utf-8")
    keys |= set(re.findall(r'data-i18n(?:-[a-z]+)?="([^"]+)"', html))
    for script in DASHBOARD.glob("*.js"):
        keys |= set(re.findall(r'\bt\("([a-z0-9_.]+)"', script.read_text(encoding="utf-8")))
    return keys


def test_both_languages_have_every_key_with_the_same_placeholders() -> None:
    vi, en = catalog("vi"), catalog("en")
    assert sorted(set(en) - set(vi)) == [], "missing in Vietnamese"
    assert sorted(set(vi) - set(en)) == [], "missing in English"
    for key, text in en.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(vi[key])), key
        assert text.strip(), key
        assert vi[key].strip(), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_asked_for_exists(language: Language) -> None:
    texts = catalog(language)
    wanted = used_by_the_dashboard()
    assert len(wanted) > 50  # the scan found the page's texts
    wanted |= {f"kind.{k}" for k in FAULT_KINDS}
    wanted |= {f"role.{r}" for r in get_args(Role)}
    wanted |= {f"field.{f}" for f in READING_FIELDS}
    wanted |= {"alert.title", "group.title"}
    assert sorted(wanted - set(texts)) == []


def test_a_text_is_filled_in_and_an_unknown_key_says_itself() -> None:
    assert say("vi", "group.title.communicationFailure", link="gw-lethaito", count=52) == (
        "gw-lethaito: 52 thiết bị mất liên lạc"
    )
    assert say("en", "no.such.key") == "no.such.key"


def test_an_alerts_evidence_reads_in_vietnamese_and_unknown_evidence_stays_as_it_is() -> None:
    assert evidence_in("vi", "supply 183.4 V below 207 V") == "điện áp nguồn 183.4 V, thấp hơn 207 V"
    assert evidence_in("vi", "no report: last reading 920 s ago (limit 900 s)") == (
        "không báo cáo: số đo cuối cách đây 920 s (giới hạn 900 s)"
    )
    assert evidence_in("vi", "pm2_5_ugm3: 5000 above 1000") == "pm2_5_ugm3: 5000 above 1000"
    assert evidence_in("en", "supply 183.4 V below 207 V") == "supply 183.4 V below 207 V"
