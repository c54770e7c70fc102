"""People's words: the texts users read, from the translation files in `controller/locales/`.

One JSON file per language, a flat map of key → text with `{name}` placeholders, editable by a
translator without reading code. The dashboard loads the same files (`/dashboard/locales/<lang>.json`),
so an alert reads the same on the wall screen, in MQTT and in a webhook. `tests/test_words.py` fails
when a key is missing from one language or a placeholder differs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Literal, get_args

Language = Literal["vi", "en"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
LOCALES = Path(__file__).parent / "locales"


@cache
def catalog(language: Language) -> dict[str, str]:
    texts: dict[str, str] = json.loads((LOCALES / f"{language}.json").read_text(encoding="utf-8"))
    return texts


def say(language: Language, key: str, **params: object) -> str:
    """The text of `key` in `language`, placeholders filled; the key itself if no file has it."""
    text = catalog(language).get(key) or catalog("en").get(key) or key
    return text.format_map({k: str(v) for k, v in params.items()})


def in_languages(languages: Iterable[Language], key: str, **params: object) -> dict[str, str]:
    return {lang: say(lang, key, **params) for lang in languages}


@cache
def _evidence_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each `evidence.*` English text as a pattern, the longest first (the most specific wins)."""
    patterns = []
    for key, text in catalog("en").items():
        if key.startswith("evidence."):
            parts = re.split(r"\{(\w+)\}", text)
            regex = "".join(
                re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
            )
            patterns.append((key, re.compile(f"^{regex}$")))
    return tuple(sorted(patterns, key=lambda p: -len(catalog("en")[p[0]])))


def evidence_in(language: Language, text: str) -> str:
    """An alert's evidence in `language`. The detectors write it from the English `evidence.*` texts,
    so it is read back into its key and figures (also in alerts stored before a translation
    existed); evidence no text describes (a driver's rejection detail) stays as it is."""
    if language == "en":
        return text
    for key, pattern in _evidence_patterns():
        match = pattern.match(text)
        if match:
            found = match.groupdict()
            params = {k: evidence_in(language, v) if k == "detail" else v for k, v in found.items()}
            return say(language, key, **params)
    return text
