"""The NGSI-LD query language (ETSI GS CIM 009, 4.9) and type selectors, as pure functions.

- `q`: terms `attr`, `attr==v`, `!=`, `>`, `>=`, `<`, `<=`, value lists (`==1,2,3`), ranges
  (`==1..5`), patterns (`~=` / `!~=`, RE2: linear time, no catastrophic backtracking), joined by
  `;` (and, binds first) and `|` (or), grouped with parentheses. An attribute is `name`, a
  sub-attribute `name.sub` (`observedAt`, `unitCode` too), or a member of a compound value
  `name[key]`. A missing attribute makes a term false.
- `type`: names, lists (`,` or `|`), `;` (all of), parentheses; full IRIs expand to our names.

Each parser raises `QueryError` with what is wrong and where; limits keep each query's cost known.
Geo-queries are in api/ngsi_geo.py.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import re2

MAX_Q_CHARS = 2000
MAX_TERMS = 50
MAX_DEPTH = 8


class QueryError(ValueError):
    """An invalid query: `kind` is the NGSI-LD error type (BadRequestData or TooComplexQuery)."""

    def __init__(self, message: str, kind: str = "BadRequestData") -> None:
        super().__init__(message)
        self.kind = kind


Entity = Mapping[str, Any]
Predicate = Callable[[Entity], bool]


# -- q ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lp>\() | (?P<rp>\)) | (?P<and>;) | (?P<or>\|)
    | (?P<term>(?:[^;|()"]|"(?:[^"\\]|\\.)*")+)
    )""",
    re.VERBOSE,
)
_TERM = re.compile(r"^(?P<attr>[^=!<>~]+?)\s*(?:(?P<op>==|!=|>=|<=|>|<|~=|!~=)\s*(?P<value>.+))?$", re.DOTALL)
_ATTR = re.compile(r"^(?P<name>[A-Za-z_@][\w:/#.\-@]*?)(?P<path>(?:\[[^\[\]]+\])*)$")


def parse_q(q: str, names: Callable[[str], str]) -> Predicate:
    """A predicate over normalized entities; `names` maps an attribute as written (short or IRI)
    to the name our entities use."""
    if len(q) > MAX_Q_CHARS:
        raise QueryError(f"q is {len(q)} characters; at most {MAX_Q_CHARS}", "TooComplexQuery")
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"q: cannot read {q[pos : pos + 20]!r} at character {pos + 1}")
        kind = m.lastgroup or ""
        tokens.append((kind, (m.group(kind) or "").strip()))
        pos = m.end()
    terms = sum(1 for kind, _ in tokens if kind == "term")
    if terms > MAX_TERMS:
        raise QueryError(f"q has {terms} terms; at most {MAX_TERMS}", "TooComplexQuery")
    parser = _QParser(tokens, names)
    predicate = parser.expression(0)
    if parser.pos != len(tokens):
        raise QueryError(f"q: unexpected {tokens[parser.pos][1]!r} after a complete query")
    return predicate


class _QParser:
    def __init__(self, tokens: list[tuple[str, str]], names: Callable[[str], str]) -> None:
        self.tokens = tokens
        self.names = names
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def expression(self, depth: int) -> Predicate:  # or-list of and-lists
        if depth > MAX_DEPTH:
            raise QueryError(f"q nests parentheses deeper than {MAX_DEPTH}", "TooComplexQuery")
        alternatives = [self._conjunction(depth)]
        while self._peek() == "or":
            self.pos += 1
            alternatives.append(self._conjunction(depth))
        if len(alternatives) == 1:
            return alternatives[0]
        return lambda e: any(p(e) for p in alternatives)

    def _conjunction(self, depth: int) -> Predicate:
        parts = [self._factor(depth)]
        while self._peek() == "and":
            self.pos += 1
            parts.append(self._factor(depth))
        if len(parts) == 1:
            return parts[0]
        return lambda e: all(p(e) for p in parts)

    def _factor(self, depth: int) -> Predicate:
        kind = self._peek()
        if kind == "lp":
            self.pos += 1
            inner = self.expression(depth + 1)
            if self._peek() != "rp":
                raise QueryError("q: a parenthesis is not closed")
            self.pos += 1
            return inner
        if kind == "term":
            text = self.tokens[self.pos][1]
            self.pos += 1
            return _term(text, self.names)
        found = self.tokens[self.pos][1] if kind else "the end"
        raise QueryError(f"q: expected a term or '(', found {found!r}")


def _term(text: str, names: Callable[[str], str]) -> Predicate:
    m = _TERM.match(text)
    if m is None:
        raise QueryError(f"q: cannot read the term {text!r}")
    attr, op, raw = m.group("attr").strip(), m.group("op"), m.group("value")
    get = _accessor(attr, names)
    if op is None:
        return lambda e: get(e) is not _MISSING
    raw = raw.strip()
    if op in (
        "~=",
        "!~=",
    ):
        pattern = _compile(_unquote(raw) if raw.startswith('"') else raw)
        negate = op == "!~="

        def matches(e: Entity) -> bool:
            value = get(e)
            if value is _MISSING:
                return False
            found = any(isinstance(v, str) and pattern.search(v) is not None for v in _each(value))
            return found != negate

        return matches
    if op in ("==", "!=") and ".." in raw and not raw.startswith('"'):
        low, _, high = raw.partition("..")
        lo, hi = _value(low.strip()), _value(high.strip())
        inside: Predicate = lambda e: any(_cmp(v, lo, ">=") and _cmp(v, hi, "<=") for v in _each(get(e)))  # noqa: E731
        if op == "==":
            return lambda e: get(e) is not _MISSING and inside(e)
        return lambda e: get(e) is not _MISSING and not inside(e)
    values = [_value(v) for v in _split_list(raw)] if op in ("==", "!=") else [_value(raw)]
    if op == "==":
        return lambda e: any(_cmp(v, w, "==") for v in _each(get(e)) for w in values)
    if op == "!=":
        return lambda e: (
            get(e) is not _MISSING and not any(_cmp(v, w, "==") for v in _each(get(e)) for w in values)
        )
    target = values[0]
    return lambda e: any(_cmp(v, target, op) for v in _each(get(e)))


_MISSING = object()


def _accessor(attr: str, names: Callable[[str], str]) -> Callable[[Entity], Any]:
    """How to read `name`, `name.sub` or `name[key][key]` from a normalized entity."""
    m = _ATTR.match(attr)
    if m is None:
        raise QueryError(f"q: {attr!r} is not an attribute name")
    dotted, path = m.group("name"), [k.strip("[]") for k in re.findall(r"\[[^\[\]]+\]", m.group("path"))]
    if "://" in dotted:  # an IRI: its dots are part of the name
        name, sub = names(dotted), None
    else:
        first, _, rest = dotted.partition(".")
        name, sub = names(first), (rest or None)

    def get(entity: Entity) -> Any:
        attribute = entity.get(name)
        if not isinstance(attribute, Mapping):
            return _MISSING
        if sub is not None:
            inner = attribute.get(sub)
            if inner is None:
                return _MISSING
            value = inner.get("value", inner.get("object")) if isinstance(inner, Mapping) else inner
        else:
            value = attribute.get("value", attribute.get("object", _MISSING))
        for key in path:
            if not isinstance(value, Mapping) or key not in value:
                return _MISSING
            value = value[key]
        return value

    return get


def _each(value: Any) -> list[Any]:
    if value is _MISSING:
        return []
    return list(value) if isinstance(value, list) else [value]


def _split_list(raw: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in raw:
        if ch == '"' and not current.endswith("\\"):
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts]


def _unquote(raw: str) -> str:
    if len(raw) < 2 or not raw.endswith('"'):
        raise QueryError(f"q: the string {raw!r} is not closed")
    return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def _value(raw: str) -> Any:
    if raw.startswith('"'):
        return _unquote(raw)
    if raw in ("true", "false"):
        return raw == "true"
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise QueryError(f"q: {raw!r} is not a finite number")
    parsed = _datetime(raw)
    if parsed is not None:
        return parsed
    if re.fullmatch(r"[A-Za-z][\w+.-]*:\S+", raw):  # a URI (a relationship's object)
        return raw
    raise QueryError(f"q: {raw!r} is not a number, a quoted string, true/false, a date or a URI")


def _datetime(raw: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _cmp(value: Any, target: Any, op: str) -> bool:
    """Compare an attribute's value with a query value of the same kind; different kinds never match."""
    if isinstance(target, dt.datetime):
        value = _datetime(value) if isinstance(value, str) else None
        if value is None:
            return False
    elif isinstance(target, bool) or isinstance(value, bool):
        if not (isinstance(target, bool) and isinstance(value, bool)):
            return False
    elif isinstance(target, float):
        if not isinstance(value, int | float):
            return False
    elif not isinstance(value, str):
        return False
    try:
        if op == "==":
            return bool(value == target)
        if op == ">":
            return bool(value > target)
        if op == ">=":
            return bool(value >= target)
        if op == "<":
            return bool(value < target)
        return bool(value <= target)
    except TypeError:
        return False


def _compile(pattern: str) -> Any:
    if len(pattern) > 256:
        raise QueryError("a pattern is longer than 256 characters", "TooComplexQuery")
    try:
        return re2.compile(pattern)
    except re2.error as exc:
        raise QueryError(f"the pattern {pattern!r} is not a regular expression: {exc}") from None


def id_pattern(pattern: str) -> Callable[[str], bool]:
    compiled = _compile(pattern)
    return lambda entity_id: compiled.search(entity_id) is not None


# -- type ------------------------------------------------------------------------------------------


def parse_types(selector: str, names: Callable[[str], str]) -> Callable[[str], bool]:
    """`A`, `A,B` / `A|B` (any of), `A;B` (all of: never true for our single-typed entities),
    with parentheses; each name short or a full IRI."""
    if len(selector) > MAX_Q_CHARS:
        raise QueryError(f"type is {len(selector)} characters; at most {MAX_Q_CHARS}", "TooComplexQuery")
    tokens = re.findall(r"\(|\)|[,|;]|[^,|;()\s]+", selector.replace(" ", ""))
    if not tokens:
        raise QueryError("type: empty")
    pos = 0

    def alternatives(depth: int) -> Callable[[str], bool]:
        nonlocal pos
        if depth > MAX_DEPTH:
            raise QueryError("type nests too deep", "TooComplexQuery")
        options = [all_of(depth)]
        while pos < len(tokens) and tokens[pos] in (",", "|"):
            pos += 1
            options.append(all_of(depth))
        return lambda t: any(o(t) for o in options)

    def all_of(depth: int) -> Callable[[str], bool]:
        nonlocal pos
        needed = [single(depth)]
        while pos < len(tokens) and tokens[pos] == ";":
            pos += 1
            needed.append(single(depth))
        return lambda t: all(n(t) for n in needed)

    def single(depth: int) -> Callable[[str], bool]:
        nonlocal pos
        if pos >= len(tokens):
            raise QueryError(f"type: {selector!r} ends where a type was expected")
        token = tokens[pos]
        pos += 1
        if token == "(":
            inner = alternatives(depth + 1)
            if pos >= len(tokens) or tokens[pos] != ")":
                raise QueryError(f"type: a parenthesis in {selector!r} is not closed")
            pos += 1
            return inner
        if token in (")", ",", "|", ";"):
            raise QueryError(f"type: unexpected {token!r} in {selector!r}")
        name = names(token)
        return lambda t: t == name

    matcher = alternatives(0)
    if pos != len(tokens):
        raise QueryError(f"type: unexpected {tokens[pos]!r} in {selector!r}")
    return matcher
