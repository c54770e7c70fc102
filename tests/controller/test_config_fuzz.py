"""Fuzzing config files with hypothesis: the example city's config, cut and mangled at random, either
loads or is refused with ConfigError naming the file — never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.config import ConfigError, load_config

EXAMPLE = (Path(__file__).parents[2] / "examples" / "city.toml").read_text(encoding="utf-8").splitlines()
SCALARS = st.sampled_from(
    ['""', "-1", "0", "1e309", "nan", "true", "[]", "{}", '"x"', "99999999999999999999"]
)


@st.composite
def mangled_configs(draw: st.DrawFn) -> str:
    lines = list(EXAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "value", "garbage", "cut"]))
        if how == "drop":
            del lines[i]
        elif how == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + draw(SCALARS)
        elif how == "garbage":
            lines[i] = draw(st.text(max_size=30))
        elif how == "cut":
            lines = lines[:i]
        if not lines:
            break
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mangled_configs())
def test_a_mangled_config_loads_or_is_refused_with_a_clear_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "city.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(path) in str(exc) or "city.toml" in str(exc), str(exc)  # noqa: PT017
