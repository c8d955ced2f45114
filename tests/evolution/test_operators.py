"""Genetic operators: validity in both spaces (hypothesis), what each mutation changes, self-adaptation."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fne.evolution.operators import (
    MUTATIONS,
    STRATEGY_BOUNDS,
    StrategyParams,
    add_channels,
    breed,
    change_op,
    crossover,
    initial_strategy,
    mutate,
    mutation_names,
    recombine_strategy,
    reduce_width,
    rewire,
    self_adapt,
    swap_blocks,
)
from fne.genotopheno.spaces import get_space
from fne.run.evaluation import FunctionEvaluator
from fne.run.search import SearchConfig, run_search

SPACES = {name: get_space(name) for name in ("darts", "nb201")}
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _edges(space, text):
    """(cell, node, op, input) of every DARTS edge."""
    genotype = space.parse(text)
    return [(kind, i, edge.op, edge.input) for kind, cell in (("normal", genotype.normal), ("reduce", genotype.reduce))
            for i, node in enumerate(cell.nodes) for edge in node]


def _nb201_nodes(text):
    return text.split("+")


@pytest.mark.parametrize("name", ["darts", "nb201"])
@settings(max_examples=60, deadline=None)
@given(seed=seeds, mutation=st.sampled_from(list(MUTATIONS)), step=st.floats(1.0, 40.0))
def test_every_mutation_keeps_the_genotype_valid(name, seed, mutation, step):
    space = SPACES[name]
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    strategy = StrategyParams(tuple((m, 0.5) for m in mutation_names(space)), step if name == "darts" else None)
    child = MUTATIONS[mutation](space, parent, rng, strategy)
    assert space.canonical(child) == child
    assert len(child) == len(parent)


@pytest.mark.parametrize("name", ["darts", "nb201"])
@settings(max_examples=60, deadline=None)
@given(seed=seeds)
def test_crossover_takes_each_character_from_a_parent_and_breed_stays_valid(name, seed):
    space = SPACES[name]
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    child = crossover(space, a, b, rng)
    assert space.canonical(child) == child
    assert all(c in (x, y) for c, x, y in zip(child, a, b, strict=True))
    strategy = initial_strategy(space)
    offspring, child_strategy = breed(space, [(a, strategy), (b, strategy)], rng, 1.0)
    assert space.canonical(offspring) == offspring
    assert [n for n, _ in child_strategy.probabilities] == list(mutation_names(space))


def test_crossover_mixes_both_parents():
    space = SPACES["nb201"]
    rng = np.random.default_rng(0)
    children = {crossover(space, "C+CC+CCC", "a+aa+aaa", rng) for _ in range(50)}
    assert len(children) > 10  # 2**6 possible mixes; 50 draws see many of them
    assert all(set(child) <= set("Ca+") for child in children)


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_darts_mutations_change_what_they_name(seed):
    space = SPACES["darts"]
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    strategy = initial_strategy(space)
    widths = space.parse(parent).widths

    grown = space.parse(add_channels(space, parent, rng, strategy))
    assert sum(w > v for w, v in zip(grown.widths, widths)) == 1 and sum(grown.widths) > sum(widths)
    assert grown.normal == space.parse(parent).normal and grown.reduce == space.parse(parent).reduce

    shrunk = space.parse(reduce_width(space, parent, rng, strategy))
    assert sum(w < v for w, v in zip(shrunk.widths, widths)) == 1 and min(shrunk.widths) >= 10

    before = _edges(space, parent)
    changed = _edges(space, change_op(space, parent, rng, strategy))
    diffs = [(x, y) for x, y in zip(before, changed) if x != y]
    assert len(diffs) == 1 and diffs[0][0][3] == diffs[0][1][3] and diffs[0][0][2] != diffs[0][1][2]

    rewired = _edges(space, rewire(space, parent, rng, strategy))
    diffs = [(x, y) for x, y in zip(before, rewired) if x != y]
    assert len(diffs) == 1 and diffs[0][0][2] == diffs[0][1][2] and diffs[0][0][3] != diffs[0][1][3]

    swapped = _edges(space, swap_blocks(space, parent, rng, strategy))
    # Same multiset of (op, input) edges per cell; at most two positions differ.
    for kind in ("normal", "reduce"):
        assert Counter(e[2:] for e in before if e[0] == kind) == Counter(e[2:] for e in swapped if e[0] == kind)
    assert sum(x != y for x, y in zip(before, swapped)) in (0, 2)


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_nb201_mutations_change_what_they_name(seed):
    space = SPACES["nb201"]
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    strategy = initial_strategy(space)
    assert strategy.width_step is None and "add_channels" not in dict(strategy.probabilities)
    assert add_channels(space, parent, rng, strategy) == parent  # NB201 widths are fixed

    changed = change_op(space, parent, rng, strategy)
    assert sum(x != y for x, y in zip(parent, changed)) == 1

    rewired = rewire(space, parent, rng, strategy)
    # Ops move between edges into the same node: each node keeps its multiset of ops.
    for before, after in zip(_nb201_nodes(parent), _nb201_nodes(rewired), strict=True):
        assert sorted(before) == sorted(after)

    swapped = swap_blocks(space, parent, rng, strategy)
    assert sorted(swapped) == sorted(parent) and sum(x != y for x, y in zip(parent, swapped)) in (0, 2)


def test_rewire_in_nb201_moves_an_op_into_the_same_node():
    space = SPACES["nb201"]
    rng = np.random.default_rng(3)
    results = {rewire(space, "C+ak+nCa", rng, initial_strategy(space)) for _ in range(40)}
    assert results <= {"C+ka+nCa", "C+ak+Cna", "C+ak+naC", "C+ak+aCn"}
    assert len(results) >= 3


def test_mutate_applies_nothing_at_minimal_probability_often_everything_at_maximal():
    space = SPACES["nb201"]
    rng = np.random.default_rng(0)
    low, high = STRATEGY_BOUNDS["probability"]
    quiet = StrategyParams(tuple((m, low) for m in mutation_names(space)))
    loud = StrategyParams(tuple((m, high) for m in mutation_names(space)))
    parent = "C+CC+kCC"
    assert sum(mutate(space, parent, rng, quiet) != parent for _ in range(200)) < 20
    assert sum(mutate(space, parent, rng, loud) != parent for _ in range(200)) > 180


def test_recombination_is_the_geometric_mean_of_steps_and_the_mean_log_odds():
    a = StrategyParams((("change_op", 0.2), ("rewire", 0.5)), 4.0)
    b = StrategyParams((("change_op", 0.8), ("rewire", 0.9)), 9.0)
    child = recombine_strategy(a, b)
    assert child.width_step == pytest.approx(6.0)
    assert child.probability("change_op") == pytest.approx(0.5)  # logit(0.2) = -logit(0.8)
    odds = math.sqrt((0.5 / 0.5) * (0.9 / 0.1))
    assert child.probability("rewire") == pytest.approx(odds / (1 + odds))


def test_self_adaptation_is_log_normal_with_the_schwefel_learning_rates():
    space = SPACES["darts"]
    start = StrategyParams(tuple((m, 0.3) for m in mutation_names(space)), 8.0)
    n = len(start)
    assert n == 6
    rng = np.random.default_rng(0)
    log_steps, log_odds = [], []
    for _ in range(4000):
        moved = self_adapt(start, rng)
        log_steps.append(math.log(moved.width_step / 8.0))
        p = moved.probability("change_op")
        log_odds.append(math.log(p / (1 - p)) - math.log(0.3 / 0.7))
    expected = math.sqrt(1 / (2 * n) + 1 / (2 * math.sqrt(n)))  # tau_global^2 + tau_local^2
    # Clipping at the bounds is rare at these values; the spread must match the rule.
    assert np.std(log_steps) == pytest.approx(expected, rel=0.06)
    assert np.std(log_odds) == pytest.approx(expected, rel=0.06)
    assert abs(np.mean(log_odds)) < 0.05
    # Parameters move, and stay inside their bounds however far they are pushed.
    pushed = start
    for _ in range(300):
        pushed = self_adapt(pushed, rng, learning_rate=3.0)
        low, high = STRATEGY_BOUNDS["probability"]
        assert all(low <= p <= high for _, p in pushed.probabilities)
        assert STRATEGY_BOUNDS["width_step"][0] <= pushed.width_step <= STRATEGY_BOUNDS["width_step"][1]


def _width_drift(tmp_path, reward_width: bool, seed: int) -> float:
    """Mean log-odds(add_channels) - log-odds(reduce_width): final population minus generation 0."""
    space = SPACES["darts"]

    def score(genotype: str) -> dict[str, float]:
        if reward_width:
            value = -float(sum(space.parse(genotype).widths))
        else:  # control: a score that ignores the widths (a stable pseudo-random number per genotype)
            value = int(hashlib.sha256(genotype.encode()).hexdigest()[:8], 16) / 2**32
        return {"ntk": value, "linear_regions": value, "grad_corr": value}

    # max_params=0: no budget, so that the width drift under selection pressure is visible.
    config = SearchConfig(space="darts", population=12, offspring=12, generations=10, tournament_every=0, seed=seed,
                          heuristics=("ntk", "linear_regions", "grad_corr"), aggregate="linear", max_params=0,
                          finalists=0)
    result = run_search(config, tmp_path / f"run-{reward_width}-{seed}",
                        evaluator=FunctionEvaluator(score, config.heuristics), progress=False)

    def bias(frame):
        odds = lambda p: np.log(p / (1 - p))  # noqa: E731
        return float(np.mean(odds(frame["strategy_p_add_channels"]) - odds(frame["strategy_p_reduce_width"])))

    return bias(result.population) - bias(result.history[result.history["generation"] == 0])


def test_selection_pressure_makes_the_strategy_drift(tmp_path):
    # Rewarding wide networks spreads a taste for growing over shrinking; a width-blind score does not.
    rewarded = np.mean([_width_drift(tmp_path, True, seed) for seed in range(3)])
    control = np.mean([_width_drift(tmp_path, False, seed) for seed in range(3)])
    assert rewarded > 0.8
    assert abs(control) < 0.4
