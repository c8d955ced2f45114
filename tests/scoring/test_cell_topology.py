"""cell_breadth against a count on the genotype string: the share of normal-cell edges reading a cell input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fne.genotopheno.genotype import published
from fne.genotopheno.spaces import get_space
from fne.scoring.cell_topology import input_edge_share
from fne.scoring.fitness import FitnessConfig, score_genotypes
from fne.scoring.heuristics import ScoreUndefined


def share_from_string(genotype: str) -> float:
    """Oracle: read the normal cell's edges (op char, input digit) straight from the string."""
    nodes = genotype.split("|")[0].split("-")
    edges = [(node[k], int(node[k + 1])) for node in nodes for k in (0, 2)]
    live = [source for op, source in edges if op != "n"]
    return sum(source < 2 for source in live) / len(live)


def test_darts_v2_reads_its_inputs_on_seven_of_eight_edges():
    genotype = str(published("DARTS_V2"))
    model = get_space("darts").build(genotype, C=8, seed=0)
    assert input_edge_share(model) == 7 / 8 == share_from_string(genotype)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_share_matches_the_string_for_sampled_cells(seed):
    space = get_space("darts")
    genotype = space.sample(np.random.default_rng(seed))
    nodes = genotype.split("|")[0].split("-")
    if all(node[k] == "n" for node in nodes for k in (0, 2)):
        return  # no live edge: undefined, tested below
    model = space.build(genotype, C=4, seed=0)
    assert input_edge_share(model) == pytest.approx(share_from_string(genotype), abs=0)


def test_cut_edges_do_not_count_and_a_cell_of_none_is_undefined():
    space = get_space("darts")
    deep = "s0s1-s2s2-s3s3-s4s4|s0s1-s0s1-s0s1-s0s1|16.32.64|1.1.1"  # a chain: only the first node reads inputs
    assert input_edge_share(space.build(deep, C=4, seed=0)) == 2 / 8
    cut = "n0s1-n0s2-n1s3-n0s4|s0s1-s0s1-s0s1-s0s1|16.32.64|1.1.1"  # the four `none` edges leave 1 of 4 reading
    assert input_edge_share(space.build(cut, C=4, seed=0)) == 1 / 4
    with pytest.raises(ScoreUndefined, match="no normal DARTS-style cell"):
        input_edge_share(space.build("n0n1-n0n1-n0n1-n0n1|s0s1-s0s1-s0s1-s0s1|16.32.64|1.1.1", C=4, seed=0))


def test_scored_through_fitness_it_is_minus_the_share(labelled):
    x, y = labelled
    genotype = str(published("DARTS_V2"))
    config = FitnessConfig(batch_size=8, seed=0, device="cpu", heuristics=("cell_breadth",), C=4)
    row = score_genotypes(get_space("darts"), [genotype], x, config).iloc[0]
    assert row.cell_breadth == -7 / 8 and row.error == ""
