from dataclasses import dataclass, field
from typing import Literal

import pytest

from finecap.typed_config import ConfigError, build, set_dotted


@dataclass
class Inner:
    size: int = field(default=4, metadata={"min": 1})
    ratio: float = 0.5


@dataclass
class Outer:
    name: str
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=list)
    maybe: int | None = None


def test_builds_nested_values_and_coerces_ints_to_floats():
    cfg = build(Outer, {"name": "x", "inner": {"size": 3, "ratio": 1}, "items": [{"size": 2}], "maybe": 5})
    assert cfg.inner.size == 3 and cfg.inner.ratio == 1.0 and isinstance(cfg.inner.ratio, float)
    assert cfg.items[0].size == 2 and cfg.maybe == 5


@pytest.mark.parametrize("text, number", [("1e-3", 0.001), ("2E5", 2e5), ("-1.5e-2", -0.015)])
def test_a_float_written_as_yaml_11_reads_it_is_a_number(text, number):
    """`--set stage3.optim.lr=1e-3` reaches the config as the string '1e-3' (YAML 1.1 wants a dot)."""
    assert build(Outer, {"name": "x", "inner": {"ratio": text}}).inner.ratio == number
    with pytest.raises(ConfigError, match="inner.ratio: expected a number, got 'e-3'"):
        build(Outer, {"name": "x", "inner": {"ratio": "e-3"}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "x", "inner": {"sise": 3}}, "unknown key 'inner.sise' (did you mean 'inner.size'?)"),
        ({"name": "x", "inner": {"size": 0}}, "inner.size: must be >= 1 (got 0)"),
        ({"name": "x", "inner": {"size": "3"}}, "inner.size: expected an integer, got '3'"),
        ({"name": "x", "inner": {"size": True}}, "inner.size: expected an integer, got True"),
        ({"name": "x", "mode": "c"}, "mode: must be one of 'a', 'b' (got 'c')"),
        ({"name": "x", "items": [{"size": -1}]}, "items.0.size: must be >= 1 (got -1)"),
        ({"inner": {}}, "missing required key 'name'"),
        ({"name": "x", "inner": 3}, "inner: expected a mapping, got int"),
        ({"name": "x", "maybe": "no"}, "maybe: expected an integer, got 'no'"),
    ],
)
def test_errors_are_one_line_and_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        build(Outer, data)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_set_dotted_creates_sections_and_indexes_lists():
    data = {"items": [{"size": 1}]}
    set_dotted(data, "inner.size", 9)
    set_dotted(data, "items.0.size", 7)
    assert data == {"items": [{"size": 7}], "inner": {"size": 9}}
    with pytest.raises(ConfigError, match="items.3"):
        set_dotted(data, "items.3.size", 1)
