"""A third search space, defined and registered only here, goes through search, export and report.

The "chain" space is what a user would write to plug in a space without editing fne: a genotype is two
nodes of two ops each, `ck-pc`, and the network applies the ops in a chain. Everything space-specific
(grammar, network, tournament layout, export sizes, drawings) is in the SearchSpace subclass below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fne.cli import cli, run_command
from fne.evolution.operators import MUTATIONS, StrategyParams, initial_strategy, mutation_names
from fne.export import canonical_genotype, default_builder, load_model, read_model_file
from fne.genotopheno.genotype import check_characters
from fne.genotopheno.network import count_parameters, seeded
from fne.genotopheno.ops import OpRegistry
from fne.genotopheno.spaces import SPACES, CellGraph, SearchSpace, get_space, register_space
from fne.run.search import SearchConfig, run_search

CHAIN_OPS = OpRegistry("chain")
CHAIN_OPS.register("conv_3x3", "c")(lambda C, stride, affine: nn.Sequential(
    nn.Conv2d(C, C, 3, padding=1, bias=False), nn.BatchNorm2d(C, affine=affine), nn.ReLU()))
CHAIN_OPS.register("skip", "k")(lambda C, stride, affine: nn.Identity())
CHAIN_OPS.register("avg_pool_3x3", "p")(lambda C, stride, affine: nn.AvgPool2d(3, 1, 1, count_include_pad=False))
NODES, OPS_PER_NODE = 2, 2


class ChainCell(nn.Module):
    """The genotype's ops applied one after another."""

    def __init__(self, ops: tuple[str, ...], C: int):
        super().__init__()
        self.ops = nn.Sequential(*(CHAIN_OPS.build(op, C, 1) for op in ops))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


class ChainNetwork(nn.Module):
    """Stem, `layers` cells, a fixed conv block, `layers` cells, head: the tournament's "chain" layout."""

    def __init__(self, ops: tuple[str, ...], C: int, layers: int, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C), nn.ReLU())
        fixed = nn.Sequential(nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C), nn.ReLU())
        self.cells = nn.ModuleList([*(ChainCell(ops, C) for _ in range(layers)), fixed,
                                    *(ChainCell(ops, C) for _ in range(layers))])
        self.searched_cells = tuple(i for i, cell in enumerate(self.cells) if isinstance(cell, ChainCell))
        self.lastact = nn.Sequential(nn.BatchNorm2d(C), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))


@dataclass
class ChainSpace(SearchSpace):
    """Two nodes of two chained ops, `ck-pc`; hooks: chain tournaments, export sizes, drawings, op names."""

    title: ClassVar[str] = "chain"
    tournament_layout: ClassVar[str | None] = "chain"
    evaluation_size: ClassVar[tuple[int | None, int | None]] = (8, 2)
    searched_size: ClassVar[tuple[int | None, int | None]] = (4, 1)

    C: int = 4
    layers: int = 1

    def positions(self) -> list[tuple[str, str]]:
        """Op characters, and a fixed '-' between the nodes."""
        positions = []
        for node in range(NODES):
            positions += [("-", "node separator")] if node else []
            positions += [(CHAIN_OPS.codes, f"node {node} op {i}") for i in range(OPS_PER_NODE)]
        return positions

    def parse(self, text: str) -> tuple[str, ...]:
        """The op names of a string, GenotypeError naming the bad position."""
        check_characters(text, self.positions(), "chain genotype")
        return tuple(CHAIN_OPS.name_of(c) for c in text if c != "-")

    def format(self, genotype: tuple[str, ...]) -> str:
        """Codes, nodes joined by '-'."""
        codes = "".join(CHAIN_OPS.code_of(op) for op in genotype)
        return "-".join(codes[i:i + OPS_PER_NODE] for i in range(0, len(codes), OPS_PER_NODE))

    def sample(self, rng: np.random.Generator) -> str:
        """Uniform ops."""
        names = CHAIN_OPS.names
        return self.format(tuple(names[int(i)] for i in rng.integers(len(names), size=NODES * OPS_PER_NODE)))

    def build(self, genotype, *, C=None, layers=None, num_classes=10, seed=None) -> nn.Module:
        """The chain network; C and layers default to the space's."""
        with seeded(seed):
            return ChainNetwork(self._as_genotype(genotype), C or self.C, layers or self.layers, num_classes)

    def size(self) -> int:
        """3 ops ** 4 positions."""
        return math.prod(len(alphabet) for alphabet in self.alphabets())

    def alternative_forms(self, genotype: str) -> dict[str, str]:
        """The ops by name."""
        return {"op names": " -> ".join(self.parse(genotype))}

    def cell_graphs(self, genotype: str) -> list[CellGraph]:
        """The chain as a path of labelled edges."""
        ops = self.parse(genotype)
        nodes = ["in", *(str(i) for i in range(1, len(ops) + 1))]
        return [CellGraph.of("cell", f"chain cell {genotype}", nodes,
                             [(nodes[i], nodes[i + 1], op) for i, op in enumerate(ops)], [nodes[-1]])]


@pytest.fixture(scope="module")
def chain_space():
    """The chain space registered for this module's tests only."""
    register_space("chain")(ChainSpace)
    yield get_space("chain")
    SPACES.unregister("chain")


@pytest.fixture(scope="module")
def chain_run(chain_space, tmp_path_factory):
    """A real search in the chain space: real heuristics, Pareto generations and one tournament generation."""
    config = SearchConfig(space="chain", population=4, offspring=4, generations=2, tournament_every=2,
                          tournament_size=2, tournament_steps=3, tournament_C=4, tournament_images=64,
                          batch_size=8, seed=0, device="cpu")
    return run_search(config, tmp_path_factory.mktemp("chain") / "run", progress=False)


def test_the_plugin_space_gets_the_generic_mutations(chain_space):
    assert chain_space.name == "chain" and "chain" in SPACES
    assert mutation_names(chain_space) == ("swap_blocks", "change_op", "rewire")  # no widths to change
    assert initial_strategy(chain_space).width_step is None
    rng = np.random.default_rng(0)
    strategy = StrategyParams(tuple((name, 0.5) for name in mutation_names(chain_space)))
    for _ in range(50):
        parent = chain_space.sample(rng)
        for name in mutation_names(chain_space):
            child = MUTATIONS[name](chain_space, parent, rng, strategy)
            assert chain_space.canonical(child) == child
            if name == "rewire":  # fixed inputs: ops move only within their node
                assert sorted(child[:2]) == sorted(parent[:2]) and sorted(child[3:]) == sorted(parent[3:])


def test_a_search_runs_in_the_plugin_space(chain_run, chain_space):
    history = pd.read_csv(chain_run.run_dir / "history.csv")
    assert set(history["generation"]) == {0, 1, 2} and len(history) == 12
    assert history["genotype"].map(chain_space.canonical).eq(history["genotype"]).all()
    assert np.isfinite(history["az_expressivity"]).any() and (history["params"] > 0).all()  # real scores, real nets
    tournaments = pd.read_csv(chain_run.run_dir / "tournaments.csv")
    assert set(tournaments["generation"]) == {2} and len(tournaments) == 2
    assert chain_run.best is not None and chain_space.canonical(chain_run.best["genotype"])


def test_export_and_report_of_the_plugin_space(chain_run, chain_space, tmp_path):
    model_path = tmp_path / "chain.pt"
    assert run_command(cli, ["export", str(chain_run.run_dir), "-o", str(model_path)]) == 0
    stored = read_model_file(model_path)
    assert stored.builder.space == "chain" and (stored.builder.C, stored.builder.layers) == (8, 2)
    assert stored.genotype == chain_run.best["genotype"]
    model = load_model(model_path)
    rebuilt = chain_space.build(stored.genotype, C=8, layers=2, seed=0).eval()
    assert count_parameters(model) == count_parameters(rebuilt)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), rebuilt(x))
    assert (default_builder("chain", as_searched=True).C, default_builder("chain").auxiliary) == (4, False)
    assert canonical_genotype(stored.genotype) == ("chain", stored.genotype)  # guessed among all spaces

    assert run_command(cli, ["report", str(chain_run.run_dir), "-o", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "README.md").read_text()
    names = " -> ".join(chain_space.parse(stored.genotype))
    assert f"op names: `{names}`" in page and "![best cell](best_cell.png)" in page
    assert (tmp_path / "report" / "best_cell.png").stat().st_size > 0
