"""The search spaces fne ships (`darts`, `nb201`) behind one interface, and `get_space` to make one by name.

Importing this module registers the built-in spaces, as timm's `timm.models` imports every model file;
the interface and the registry are in search_space.py, each space in its own module. Users add a space
with `@register_space("name")` on a `SearchSpace` subclass and then reach it as `get_space("name")`.
"""

from __future__ import annotations

from typing import Any

from fne.genotopheno.darts_space import DartsSpace
from fne.genotopheno.nb201 import NB201Space
from fne.genotopheno.search_space import SPACES, CellGraph, SearchSpace, register_space

__all__ = ["SPACES", "CellGraph", "DartsSpace", "NB201Space", "SearchSpace", "get_space", "register_space"]


def get_space(name: str, **options: Any) -> SearchSpace:
    """Instantiate the registered search space `name` with its options; ConfigError naming the known ones."""
    return SPACES[name](**options)
