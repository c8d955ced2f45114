"""The generic Registry: decorator registration, duplicates refused, lookups that name the known entries."""

from __future__ import annotations

import pytest

from fne.errors import ConfigError
from fne.evolution.operators import MUTATIONS
from fne.genotopheno.ops import DARTS_OPS
from fne.genotopheno.spaces import SPACES
from fne.registry import Registry, UnknownNameError
from fne.scoring.heuristics import HEURISTICS


def _fresh() -> Registry:
    registry: Registry = Registry("widget")

    @registry.register("square", cost=2)
    def square(x):
        return x * x

    @registry.register("cube")
    def cube(x):
        return x ** 3

    return registry


def test_the_decorator_files_the_entry_unchanged_with_its_metadata():
    registry = _fresh()
    assert registry["square"](3) == 9 and registry["cube"](2) == 8
    assert registry.meta("square") == {"cost": 2} and registry.meta("cube") == {}
    with pytest.raises(TypeError):
        registry.meta("square")["cost"] = 3  # read-only: metadata cannot drift after registration


def test_it_reads_like_a_dict_in_registration_order():
    registry = _fresh()
    assert registry.names() == ("square", "cube") and list(registry) == ["square", "cube"]
    assert len(registry) == 2 and "cube" in registry and "circle" not in registry and [] not in registry
    assert dict(registry.items()) == {"square": registry["square"], "cube": registry["cube"]}
    assert registry.get("circle") is None and registry.get("cube") is registry["cube"]


def test_a_duplicate_name_is_refused_and_the_first_entry_kept():
    registry = _fresh()
    first = registry["square"]
    with pytest.raises(ConfigError, match="widget 'square' is already registered"):
        registry.register("square")(lambda x: -x)
    assert registry["square"] is first
    with pytest.raises(ConfigError, match="non-empty string name"):
        registry.add("", object())


def test_an_unknown_name_is_a_config_error_listing_the_known_ones():
    registry = _fresh()
    with pytest.raises(ConfigError) as caught:
        registry["circle"]
    assert str(caught.value) == "unknown widget 'circle'; known: square, cube"  # no KeyError quoting
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, UnknownNameError)
    with pytest.raises(ConfigError, match="known: none registered"):
        Registry("gadget")["x"]


def test_unregister_returns_the_entry_and_frees_the_name():
    registry = _fresh()
    cube = registry.unregister("cube")
    assert cube(3) == 27 and registry.names() == ("square",)
    registry.register("cube")(lambda x: x)  # the name can be taken again
    with pytest.raises(ConfigError, match="unknown widget 'circle'"):
        registry.unregister("circle")
    for name in registry:  # iterating a snapshot: unregistering inside the loop is safe
        registry.unregister(name)
    assert len(registry) == 0


def test_fne_registries_are_registries():
    assert {"darts", "nb201"} <= set(SPACES.names())
    assert MUTATIONS.names() == ("add_channels", "reduce_width", "swap_blocks", "change_op", "rewire")
    assert MUTATIONS.meta("add_channels")["needs_widths"] and not MUTATIONS.meta("rewire")["needs_widths"]
    assert {"ntk", "linear_regions", "grad_corr"} <= set(HEURISTICS)
    with pytest.raises(ConfigError, match="unknown search space 'nope'; known: darts, nb201"):
        SPACES["nope"]
    # The op registry keeps its own face (name <-> code), built on two registries.
    assert DARTS_OPS.code_of("sep_conv_3x3") == "s" and DARTS_OPS.name_of("s") == "sep_conv_3x3"
    with pytest.raises(ValueError, match="already used by 'sep_conv_3x3'"):
        DARTS_OPS.register("my_conv", "s")(lambda C, stride, affine: None)
    assert "my_conv" not in DARTS_OPS
