"""People's words: the texts users read, from the translation files in `controller/locales/`.

One JSON file per language, a flat map of key → text with `{name}` placeholders, editable by a
translator without reading code. The dashboard loads the same files (`/dashboard/locales/<lang>.json`),
so an alert reads the same on the wall screen, in MQTT and in a webhook. `tests/test_words.py` fails
when a key is missing from one language or a placeholder differs.
"""

from __future__ import annotations

import json
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
