"""The finalists' stage: shortlist, training-speed estimate against a plain loop, successive halving's rungs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fne.data.cifar10 import load_cifar10
from fne.errors import ConfigError
from fne.genotopheno.spaces import get_space
from fne.run.config import SearchConfig, config_from_dict, run_config_dict
from fne.training import augment_batch, finalists
from fne.training.finalists import (
    TSE_BAND,
    FinalistConfig,
    batch_stream,
    decide,
    shortlist,
    stream_positions,
    successive_halving,
    survivors,
    tie_groups,
)

TINY = FinalistConfig(top=4, rungs=(2, 4, 6), C=2, batch_size=8, lr=0.05, warmup_steps=2, seed=3)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    arrays = load_cifar10(None, "train")  # the 1,000 real training images shipped with fne
    return torch.from_numpy(arrays.images[:64].copy()), torch.from_numpy(arrays.labels[:64].astype(np.int64))


def test_shortlist_takes_the_best_distinct_genotypes_and_puts_non_finite_last():
    genotypes = ["a", "b", "a", "c", "d", "e"]
    scores = [3.0, 1.0, 0.5, np.nan, 2.0, np.inf]
    assert shortlist(genotypes, scores, 3) == [2, 1, 4]  # the second "a" is better; NaN and inf come last
    assert shortlist(genotypes, scores, 10) == [2, 1, 4, 3, 5]  # ties among non-finite keep their order
    assert shortlist(["x", "y"], [1.0, 1.0], 1) == [0]
    assert shortlist(genotypes, scores, 0) == []


def test_the_final_decision_weighs_training_speed_against_the_prior():
    tse, prior = [1.0, 1.1, 1.2], [3.0, 1.0, 2.0]
    assert decide(tse) == 0
    # By hand, m = 3 and -log(r / 3) with r = 3 for the best: tse 0, 0.405, 1.099; prior 1.099, 0, 0.405.
    assert decide(tse, prior) == 1
    assert decide([np.nan, 2.0]) == 1 and decide([1.0, 1.0]) == 0  # NaN loses; ties keep the order


def test_total_steps_follow_the_halving():
    # 32 x 25 + 16 x 25 + 8 x 50 + 4 x 100: every rung trains the survivors up to its step count.
    assert FinalistConfig(top=32, rungs=(25, 50, 100, 200)).steps() == 2000
    assert FinalistConfig(top=5, rungs=(1, 2, 4)).steps() == 5 * 1 + 3 * 1 + 2 * 2
    assert FinalistConfig(top=2, rungs=(1, 2, 4)).steps() == 2 * 1  # one left after the first rung: decided


@pytest.mark.parametrize("settings", [dict(top=-1), dict(rungs=()), dict(rungs=(4, 2)), dict(rungs=(0, 3)),
                                      dict(lr=0.0), dict(dtype="float16"), dict(tse_band=-1e-9), dict(tse_band=1.0)])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ConfigError):
        FinalistConfig(**settings)


def _plain_loop(genotype: str, images, labels, config: FinalistConfig, steps: int) -> list[float]:
    """The reference: one network trained on its own, batch by batch, with the same recipe written out."""
    dtype = getattr(torch, config.dtype)  # float64 by default: weights and inputs converted after float32 set-up
    model = get_space("nb201").build(genotype, C=config.C, seed=config.seed).to(dtype).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    order = np.random.default_rng(config.seed).permutation(len(images))
    per_epoch = len(images) // config.batch_size
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (step + 1) / config.warmup_steps)
        index = torch.from_numpy(order[(step % per_epoch) * config.batch_size:][:config.batch_size])
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        x = augment_batch(images[index], generator, cutout=0).to(dtype)
        loss = F.cross_entropy(model(x), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_each_finalist_trains_as_if_alone_and_halving_keeps_the_lowest_tse(data):
    images, labels = data
    genotypes = ["C+CC+kCC", "n+nn+nnn", "k+kk+kkk", "C+Cc+CCc", "a+aa+aaa"]
    table = successive_halving(get_space("nb201"), genotypes, images, labels, TINY)
    # 5 start, 3 reach step 4, 2 reach step 6, one of those wins.
    assert sorted(table["steps"]) == [2, 2, 4, 6, 6]
    for row in table.itertuples():
        reference = _plain_loop(row.genotype, images, labels, TINY, row.steps)
        assert row.tse == pytest.approx(np.mean(reference), rel=1e-5)
        assert row.final_loss == pytest.approx(reference[-1], rel=1e-5)
    for rung, kept in ((2, 3), (4, 2)):
        reached = table[table["steps"] > rung]
        stopped = table[table["steps"] == rung]
        assert len(reached) == kept
        # Every survivor trained better than every candidate stopped at this rung, compared at the rung.
        at_rung = {g: np.mean(_plain_loop(g, images, labels, TINY, rung)) for g in table["genotype"]}
        assert max(at_rung[g] for g in reached["genotype"]) <= min(at_rung[g] for g in stopped["genotype"])
    finalists = table[table["steps"] == 6]
    assert table.loc[table["winner"], "genotype"].item() == finalists.loc[finalists["tse"].idxmin(), "genotype"]
    assert table["winner"].sum() == 1


def test_the_prior_decides_only_among_the_last_survivors(data):
    images, labels = data
    genotypes = ["C+CC+kCC", "n+nn+nnn", "k+kk+kkk", "C+Cc+CCc", "a+aa+aaa"]
    config = FinalistConfig(top=5, rungs=(2, 4), C=2, batch_size=8, lr=0.05, warmup_steps=2, seed=3)
    plain = successive_halving(get_space("nb201"), genotypes, images, labels, config)
    last = plain[plain["steps"] == 4].sort_values("tse")
    assert len(last) == 3 and plain.loc[plain["winner"], "genotype"].item() == last["genotype"].iloc[0]
    # Prior: the middle survivor best, the fastest worst; by hand (m = 3) the middle scores 0.405 + 0,
    # the fastest 0 + 1.099 and the slowest 1.099 + 0.405, so the middle one wins.
    fastest, middle, slowest = last.index
    prior = [{middle: 0.0, slowest: 1.0, fastest: 2.0}.get(i, -5.0) for i in range(len(genotypes))]
    weighed = successive_halving(get_space("nb201"), genotypes, images, labels, config, prior=prior)
    pd.testing.assert_frame_equal(weighed.drop(columns="winner"), plain.drop(columns="winner"))
    assert weighed.loc[weighed["winner"], "genotype"].item() == plain.loc[middle, "genotype"]


def test_the_stream_is_shared_and_wraps_around(data):
    images, labels = data
    batches = batch_stream(images, labels, TINY)
    x0, y0 = batches(0)
    x8, y8 = batches(8)  # 64 images / 8 per batch: step 8 starts the pass again, with new augmentation
    assert torch.equal(y0, y8) and not torch.equal(x0, x8)
    assert torch.equal(batches(3)[0], batch_stream(images, labels, TINY)(3)[0])
    with pytest.raises(ConfigError, match="at least batch_size"):
        batch_stream(images[:4], labels[:4], TINY)


def test_a_diverging_finalist_loses_without_stopping_the_stage(data):
    images, labels = data
    hot = FinalistConfig(top=2, rungs=(3,), C=2, batch_size=8, lr=1e6, warmup_steps=0, seed=0)
    table = successive_halving(get_space("nb201"), ["C+CC+CCC", "n+nn+nnn"], images, labels, hot)
    assert table["winner"].sum() == 1
    assert all(math.isfinite(v) or v == math.inf for v in table["tse"])


def test_search_config_rungs_defaults_and_old_runs():
    nb201, darts = SearchConfig(space="nb201"), SearchConfig(space="darts")
    assert (nb201.finalists, nb201.finalist_C, darts.finalists, darts.finalist_C) == (64, 8, 0, 8)  # DARTS: off
    assert nb201.finalist_config().rungs == (12, 25, 50, 100)
    assert FinalistConfig(top=64, rungs=nb201.finalist_config().rungs).steps() == 1984
    assert SearchConfig(space="nb201", finalist_steps=9).finalist_config().rungs == (1, 2, 4, 9)
    with pytest.raises(ConfigError, match="finalist"):
        SearchConfig(space="nb201", finalist_steps=4)
    assert nb201.finalist_config().dtype == "float64"  # the same pick on any machine (docs/search.md)
    assert SearchConfig(space="darts", finalist_dtype="float32").finalist_config().dtype == "float32"
    with pytest.raises(ConfigError, match="finalist_dtype='float16' is not one of"):
        SearchConfig(space="nb201", finalist_dtype="float16")
    saved = run_config_dict(nb201)
    assert saved["finalists"]["top"] == 64 and config_from_dict(saved) == nb201
    del saved["search"]["finalists"]  # a run directory from before the stage existed resumes without it
    assert config_from_dict(saved).finalists == 0


def test_every_training_step_is_reported_once_and_the_count_is_known_up_front(data):
    images, labels = data
    genotypes = ["C+CC+kCC", "C+CC+CCC", "k+kk+kkk", "n+nn+nnn"]
    steps, rungs = [], []
    successive_halving(get_space("nb201"), genotypes, images, labels, TINY,
                       on_step=lambda: steps.append(1), on_rung=lambda number, alive: rungs.append((number, alive)))
    assert len(steps) == TINY.steps() == 4 * 2 + 2 * 2 + 0  # the field is decided after the second rung
    assert rungs == [(0, 4), (1, 2)]


def test_freed_memory_is_released_after_every_finalist_of_every_rung(data, monkeypatch):
    """One release per finalist per rung, each after that finalist's steps (tests/test_memory.py: what it frees)."""
    images, labels = data
    steps, releases = [], []
    monkeypatch.setattr(finalists, "release_freed_memory", lambda: releases.append(len(steps)) or True)
    successive_halving(get_space("nb201"), ["C+CC+kCC", "C+CC+CCC", "k+kk+kkk", "n+nn+nnn"], images, labels, TINY,
                       on_step=lambda: steps.append(1))
    assert releases == [2, 4, 6, 8, 10, 12]  # 4 finalists x 2 steps, then 2 x 2; the field is then decided


@pytest.mark.parametrize("rungs", [(2, 4, 6), (4, 8, 30)])  # fewer steps than one pass, and more (it wraps)
def test_the_stream_over_its_drawn_positions_is_the_stream_over_all_images(data, rungs):
    images, labels = data
    config = FinalistConfig(top=2, rungs=rungs, C=2, batch_size=8, seed=3)
    positions = stream_positions(len(images), config)
    assert len(positions) == min(rungs[-1], len(images) // 8) * 8 and len(set(positions.tolist())) == len(positions)
    whole = batch_stream(images, labels, config)
    drawn = batch_stream(images[positions], labels[positions], config, ordered=True)
    for step in range(rungs[-1]):
        (x, y), (x2, y2) = whole(step), drawn(step)
        assert torch.equal(x, x2) and torch.equal(y, y2), step
    genotypes = ["C+CC+kCC", "k+kk+kkk"]
    table = successive_halving(get_space("nb201"), genotypes, images, labels, config)
    again = successive_halving(get_space("nb201"), genotypes, images[positions], labels[positions], config,
                               ordered=True)
    pd.testing.assert_frame_equal(table, again, check_exact=True)


# ---------------------------------------------------------------- the noise band: ties the aggregate breaks
INSIDE = TSE_BAND / 2  # a relative difference float rounding may make on another machine (float64, measured)


def test_tses_within_the_band_share_a_group_and_non_finite_ones_come_last():
    a = 2.0
    assert tie_groups([a * (1 + INSIDE), a, 2.1, math.inf, np.nan, a * (1 + 3 * TSE_BAND)]).tolist() == \
        [0, 0, 2, 3, 3, 1]
    assert tie_groups([1.0, 1.0 + 0.6 * TSE_BAND, 1.0 + 1.2 * TSE_BAND]).tolist() == [0, 0, 0]  # neighbours chain
    assert tie_groups([1.0, 1.1], band=0.2).tolist() == [0, 0]


@pytest.mark.parametrize("sign", [1, -1])
def test_a_difference_inside_the_band_cannot_flip_a_rung(sign):
    """Whichever of two tied TSEs comes out lower on a machine, the earlier (the aggregate's better) survives."""
    a = 2.3
    tse = [a * (1 + sign * INSIDE), a, 2.5, 2.2]
    assert survivors(tse, 2) == [3, 0]
    assert survivors(tse, 1) == [3] and survivors(tse[:3], 1) == [0]
    assert survivors([a * (1 + 3 * TSE_BAND), a], 1) == [1]  # beyond the band the TSE decides
    assert survivors([a * (1 + sign * INSIDE), a], 1, band=0.0) == ([1] if sign > 0 else [0])  # no band: noise decides


@pytest.mark.parametrize("sign", [1, -1])
def test_a_difference_inside_the_band_cannot_flip_the_final_decision(sign):
    a = 2.0
    assert decide([a * (1 + sign * INSIDE), a]) == 0
    # Tied TSEs rank equal, so the prior decides: the second has the better aggregate.
    assert decide([a * (1 + sign * INSIDE), a, 2.5], prior=[2.0, 1.0, 3.0]) == 1
    # Beyond the band, by hand (m = 3): the first scores 0 + 0.405, the second 0.405 + 0, a tie the order breaks.
    assert decide([a, a * (1 + 3 * TSE_BAND), 2.5], prior=[2.0, 1.0, 3.0]) == 0


def test_successive_halving_decides_tied_tses_by_the_aggregate(data, monkeypatch):
    """Each finalist's TSE rounded to 0.1, then jittered inside the band: the aggregate decides every tie."""
    images, labels = data
    genotypes = ["C+CC+kCC", "n+nn+nnn", "k+kk+kkk", "C+Cc+CCc", "a+aa+aaa"]
    true_tse = finalists._Run.tse
    for seed in (0, 1):
        jitter = np.random.default_rng(seed)

        def noisy_tse(run, jitter=jitter):
            return round(true_tse(run) / 0.1) * 0.1 * (1 + jitter.uniform(-INSIDE, INSIDE))
        monkeypatch.setattr(finalists._Run, "tse", noisy_tse)
        table = successive_halving(get_space("nb201"), genotypes, images, labels, TINY, prior=[5, 4, 3, 2, 1])
        # Rounded (the plain TSEs are in the first test's table): step 2 gives 2.4, 2.3, 2.3, 2.4, 2.3, so
        # orders 1, 2 and 4 go on; at step 4 all three tie at 2.3 and the aggregate keeps 1 and 2; at step 6
        # they tie again and the prior (3 before 4) picks order 2, where the plain TSE picked order 1.
        assert table["steps"].tolist() == [2, 6, 6, 2, 4], seed
        assert table["winner"].tolist() == [False, False, True, False, False], seed


def test_the_tse_in_float64_agrees_across_thread_counts_within_the_band(data):
    """Another reduction order (as on another CPU) moves the float64 TSE far less than the band."""
    images, labels = data
    config = FinalistConfig(top=2, rungs=(4, 8), C=8, batch_size=16, lr=0.1, warmup_steps=2, seed=1)
    before = torch.get_num_threads()
    try:
        tables = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            tables.append(successive_halving(get_space("nb201"), ["C+CC+kCC", "C+Cc+CCc"], images, labels, config))
    finally:
        torch.set_num_threads(before)
    one, two = tables
    np.testing.assert_allclose(two["tse"], one["tse"], rtol=TSE_BAND / 10, atol=0)
    assert one["winner"].tolist() == two["winner"].tolist()
