"""The heuristics against independent oracles: per-sample loop NTK, hand-made Hamming kernels, degenerate nets."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from fne.data.cifar10 import heuristic_batch
from fne.errors import ConfigError
from fne.genotopheno.spaces import get_space
from fne.scoring import jacobians
from fne.scoring.fitness import (
    HEURISTICS,
    ORIGINAL_HEURISTICS,
    FitnessConfig,
    candidate_seed,
    register_heuristic,
    score_genotypes,
    score_network,
)
from fne.scoring.heuristics import (
    GRAD_CORR_EPSILON,
    ProbeSettings,
    ScoreUndefined,
    condition_number,
    jacobian_correlation_score,
    log_abs_det,
    probe_network,
    unregister_heuristic,
)
from fne.scoring.jacobians import batch_norm_mode, input_jacobian, ntk_gram_loop, ntk_gram_vmap
from fne.scoring.per_sample_grads import ntk_by_layer_hooks

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
DARTS_ARCH = "s0s1-S0d1-s1k0-k0D2|m0m1-k2a1-m0k2-k2m1|16.32.64|1.1.1"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def original(**settings) -> FitnessConfig:
    """A FitnessConfig of the original method's three scores (these tests' oracles are about them)."""
    return FitnessConfig(heuristics=ORIGINAL_HEURISTICS, **settings)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return heuristic_batch(None, 8, seed=0)  # real CIFAR-10 images, shipped with fne


def tiny(space: str, arch: str, seed: int = 1, dtype: torch.dtype = torch.float64) -> nn.Module:
    builder = get_space(space)
    model = builder.build(arch, C=4, layers=1, seed=seed) if space == "nb201" else builder.build(arch, C=4, seed=seed)
    return model.to(dtype)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


# ---------------------------------------------------------------- NTK: batched == per-sample loop
@pytest.mark.parametrize("space,arch", [("nb201", NB201_ARCH), ("darts", DARTS_ARCH)])
def test_batched_ntk_equals_per_sample_loop(images, space, arch):
    model, x = tiny(space, arch), images[:6].double()
    with batch_norm_mode(model, "frozen") as stats:
        hooks, hook_grads, _ = ntk_by_layer_hooks(model, x)
    with batch_norm_mode(model, "frozen", stats):
        loop = ntk_gram_loop(model, x)  # one sample at a time: the oracle
        grads = input_jacobian(model, x)
        if space == "nb201":  # torch.func too (float64 grouped convs make it slow on the DARTS ops)
            vmapped = ntk_gram_vmap(model, x, with_input_grads=True)
            assert relative(vmapped.kernel, loop) < 1e-4
            assert torch.allclose(vmapped.input_grads, grads, rtol=1e-6, atol=1e-12)
    assert relative(hooks.numpy(), loop) < 1e-4
    assert torch.allclose(hook_grads, grads, rtol=1e-6, atol=1e-12)


def test_float32_ntk_matches_loop_on_tiny_net(images):
    model = tiny("nb201", NB201_ARCH, dtype=torch.float32)
    probe = probe_network(model, images, {"ntk"})
    with batch_norm_mode(model, "frozen", _stats(model, images)):
        loop = ntk_gram_loop(model, images)
    assert probe.ntk_method == "hooks"
    assert relative(probe.ntk_kernel, loop) < 1e-4


def _stats(model, x):
    with torch.no_grad(), batch_norm_mode(model, "frozen") as stats:
        model(x)
    return stats


@pytest.mark.parametrize("mode", ["frozen", "eval"])
def test_probe_with_loop_method_equals_default(images, mode):
    model, x = tiny("nb201", NB201_ARCH), images[:6].double()
    needs = {"ntk", "hamming", "input_grads"}
    fast = probe_network(model, x, needs, ProbeSettings(batch_norm=mode))
    loop = probe_network(model, x, needs, ProbeSettings(batch_norm=mode, ntk_method="loop"))
    assert (fast.ntk_method, loop.ntk_method) == ("hooks", "loop")
    assert relative(fast.ntk_kernel, loop.ntk_kernel) < 1e-10
    assert np.array_equal(fast.hamming_kernel, loop.hamming_kernel)
    assert np.allclose(fast.input_grads, loop.input_grads, rtol=1e-9, atol=1e-14)


def test_frozen_batch_norm_reproduces_train_forward_per_sample(images):
    model, x = tiny("darts", DARTS_ARCH), images[:4].double()
    with torch.no_grad(), batch_norm_mode(model, "train"):
        train_logits = model(x)
    stats = _stats(model, x)
    with torch.no_grad(), batch_norm_mode(model, "frozen", stats):
        one_by_one = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    assert torch.allclose(one_by_one, train_logits, rtol=1e-10, atol=1e-12)
    assert model.training and all(m.running_mean.abs().max() == 0 for m in jacobians.batch_norm_layers(model))


def test_train_mode_loop_couples_samples(images):
    model, x = tiny("nb201", NB201_ARCH), images.double()
    with batch_norm_mode(model, "train"):
        coupled = ntk_gram_loop(model, x)
    with batch_norm_mode(model, "frozen", _stats(model, x)):
        frozen = ntk_gram_loop(model, x)
    assert relative(coupled, frozen) > 1e-3  # the BN coupling is a real difference, not rounding


# ---------------------------------------------------------------- chunking, budget, OOM retry
def test_chunked_and_blockwise_equal_unchunked(images):
    model, x = tiny("nb201", NB201_ARCH), images.double()
    with batch_norm_mode(model, "frozen", _stats(model, x)):
        whole = ntk_gram_vmap(model, x, chunk_size=len(x)).kernel
        chunked = ntk_gram_vmap(model, x, chunk_size=3).kernel
        blockwise = ntk_gram_vmap(model, x, chunk_size=3, memory_budget_mib=1e-3).kernel  # J does not fit
    assert relative(chunked, whole) < 1e-12
    assert relative(blockwise, whole) < 1e-12


def test_tiny_budget_falls_back_to_chunks_with_same_scores(images):
    model, x = tiny("nb201", NB201_ARCH), images.double()
    needs = {"ntk", "hamming", "input_grads"}
    one_pass = probe_network(model, x, needs, ProbeSettings(memory_budget_mib=1024))
    # 8 samples x ~1 MiB of activations x 4 do not fit 16 MiB: torch.func in chunks of about 4 instead.
    chunked = probe_network(model, x, needs, ProbeSettings(memory_budget_mib=16))
    assert (one_pass.ntk_method, chunked.ntk_method) == ("hooks", "vmap")
    assert relative(chunked.ntk_kernel, one_pass.ntk_kernel) < 1e-10
    assert np.array_equal(chunked.hamming_kernel, one_pass.hamming_kernel)
    assert np.allclose(chunked.input_grads, one_pass.input_grads, rtol=1e-9, atol=1e-14)


def test_out_of_memory_halves_the_chunk_and_retries(images, monkeypatch):
    model, x = tiny("nb201", NB201_ARCH), images.double()
    real = jacobians.per_sample_grads_fn

    def fragile(model, with_input):
        fn = real(model, with_input)

        def run(params, chunk):
            if chunk.shape[0] > 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return fn(params, chunk)

        return run

    with batch_norm_mode(model, "frozen", _stats(model, x)):
        expected = ntk_gram_vmap(model, x, chunk_size=len(x)).kernel
        monkeypatch.setattr(jacobians, "per_sample_grads_fn", fragile)
        result = ntk_gram_vmap(model, x, chunk_size=len(x))
    assert result.chunk_size == 2
    assert relative(result.kernel, expected) < 1e-12


# ---------------------------------------------------------------- hand-checkable cases
def test_hamming_kernel_by_hand():
    # One Linear(2 -> 3) then ReLU: pre-activations are x @ W^T + b with W, b chosen by hand.
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 0.0, -1.5]))
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [2.0, 0.0]])
    # codes: [1,1,1], [1,0,0], [0,0,0], [1,0,1]; K_ij = units (3) minus Hamming distance
    expected = np.array([[3, 1, 0, 2], [1, 3, 2, 2], [0, 2, 3, 1], [2, 2, 1, 3]], dtype=float)
    probe = probe_network(model, x, {"hamming"})
    assert np.array_equal(probe.hamming_kernel, expected) and probe.relu_units == 3
    assert log_abs_det(probe.hamming_kernel) == pytest.approx(math.log(abs(np.linalg.det(expected))))


def test_hamming_popcount_equals_matmul(images, monkeypatch):
    model = tiny("nb201", NB201_ARCH, dtype=torch.float32)
    fast = probe_network(model, images, {"hamming"}).hamming_kernel
    monkeypatch.setattr(jacobians, "HAS_POPCOUNT", False)
    slow = probe_network(model, images, {"hamming"}).hamming_kernel
    assert np.array_equal(fast, slow)


def test_identical_inputs_make_kernels_singular(images):
    model = tiny("nb201", NB201_ARCH)
    same = images[:1].double().repeat(6, 1, 1, 1)  # six copies of one image
    scores, errors = score_network(model, same, original(batch_size=6, dtype="float64"))
    assert scores["ntk"] == math.inf and "singular" in errors["ntk"]
    assert scores["linear_regions"] == math.inf and "singular" in errors["linear_regions"]
    # Identical Jacobians: correlation all ones, eigenvalues (N, 0, ..., 0): finite but the worst possible.
    k = GRAD_CORR_EPSILON
    worst = 5 * (math.log(k) + 1 / k) + math.log(6 + k) + 1 / (6 + k)
    assert scores["grad_corr"] == pytest.approx(worst, rel=1e-6)


def test_net_of_only_none_ops_scores_worst(images):
    frame = score_genotypes(get_space("nb201"), [ALL_NONE], images, original(batch_size=8, C=4, layers=1))
    row = frame.iloc[0]
    assert row.ntk == row.linear_regions == row.grad_corr == math.inf
    assert "NTK singular" in row.error and "Hamming kernel singular" in row.error
    assert "constant" in row.error


def test_score_formulas_on_known_matrices():
    assert condition_number(np.diag([4.0, 2.0, 1.0])) == pytest.approx(4.0)
    with pytest.raises(ScoreUndefined):
        condition_number(np.ones((3, 3)))
    with pytest.raises(ScoreUndefined):
        condition_number(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    jac = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0]])
    v = np.linalg.eigvalsh(np.corrcoef(jac))
    assert jacobian_correlation_score(jac) == pytest.approx(float(np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))))
    orthogonal = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])  # uncorrelated: v = (1, 1)
    assert jacobian_correlation_score(orthogonal) == pytest.approx(2 * (math.log(1 + 1e-5) + 1 / (1 + 1e-5)))


# ---------------------------------------------------------------- NaN and failures never crash
def test_nan_network_and_failing_heuristics_become_inf(images):
    @register_heuristic("test_nan")
    def nan_score(context):
        return float("nan")

    @register_heuristic("test_raise")
    def raising_score(context):
        raise RuntimeError("boom")

    try:
        config = FitnessConfig(batch_size=8, C=4, layers=1, heuristics=("ntk", "test_nan", "test_raise"))
        row = score_genotypes(get_space("nb201"), [NB201_ARCH], images, config).iloc[0]
        assert row.test_nan == row.test_raise == math.inf
        assert "test_nan: returned nan" in row.error and "test_raise: RuntimeError: boom" in row.error
        assert math.isfinite(row.ntk)
        model = tiny("nb201", NB201_ARCH, dtype=torch.float32)
        with torch.no_grad():
            model.stem[0].weight.fill_(float("nan"))  # every activation, code and gradient becomes NaN
        scores, errors = score_network(model, images[:8], original(batch_size=8))
        assert all(value == math.inf for value in scores.values()) and set(errors) == set(scores)
    finally:
        unregister_heuristic("test_nan")
        unregister_heuristic("test_raise")
    assert "test_nan" not in HEURISTICS


# ---------------------------------------------------------------- seeds, determinism, order
def test_candidate_seed_is_a_stable_hash():
    expected = int.from_bytes(hashlib.sha256(b"7\x1fC+CC+kCC").digest()[:8], "little") & (2**63 - 1)
    assert candidate_seed(7, "C+CC+kCC") == expected
    assert candidate_seed(7, "C+CC+kCC", repeat=1) != expected != candidate_seed(8, "C+CC+kCC")


def test_scores_are_deterministic_and_order_independent(images):
    space = get_space("nb201")
    archs = [NB201_ARCH, "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
             "C+Cc+kCa"]
    config = original(batch_size=8, C=4, layers=1, seed=3)
    columns = ["ntk", "linear_regions", "grad_corr", "params", "flops"]
    first = score_genotypes(space, archs, images, config)
    again = score_genotypes(space, archs, images, config)
    shuffled = score_genotypes(space, archs[::-1], images, config).iloc[::-1].reset_index(drop=True)
    other_seed = score_genotypes(space, archs[:1], images, original(batch_size=8, C=4, layers=1, seed=4))
    assert list(first.genotype) == archs
    assert first[columns].equals(again[columns])
    assert np.allclose(first[columns], shuffled[columns], rtol=1e-9)
    assert first.ntk[0] != pytest.approx(other_seed.ntk[0], rel=1e-6)
    assert (first.error == "").all() and (first.params > 0).all() and (first.flops > 0).all()


def test_darts_space_rows_and_config_errors(images):
    space = get_space("darts")
    frame = score_genotypes(space, [DARTS_ARCH, space.sample(np.random.default_rng(0))], images,
                            original(batch_size=8, C=4))
    assert list(frame.columns) == ["genotype", "ntk", "linear_regions", "grad_corr", "params", "flops", "seconds",
                                   "device", "error"]
    assert np.isfinite(frame[["ntk", "linear_regions", "grad_corr"]].to_numpy()).all()
    assert (frame.device == "cpu").all() and (frame.error == "").all()
    with pytest.raises(ConfigError, match="layers=1"):  # a DARTS network needs 5 cells for 3 stages
        score_genotypes(space, [DARTS_ARCH], images, original(batch_size=8, C=4, layers=1))
    with pytest.raises(ConfigError, match="unknown heuristic"):
        score_genotypes(space, [DARTS_ARCH], images, FitnessConfig(batch_size=8, heuristics=("nope",)))
    with pytest.raises(ConfigError, match="batch_size=16"):
        score_genotypes(space, [DARTS_ARCH], images, original(batch_size=16))


def test_repeats_average_the_inits(images):
    space = get_space("nb201")
    base = dict(heuristics=ORIGINAL_HEURISTICS, batch_size=8, C=4, layers=1, seed=5)
    two = score_genotypes(space, [NB201_ARCH], images, FitnessConfig(repeats=2, **base)).iloc[0]
    one = score_genotypes(space, [NB201_ARCH], images, FitnessConfig(**base)).iloc[0]
    model = space.build(NB201_ARCH, C=4, layers=1, seed=candidate_seed(5, space.canonical(NB201_ARCH), 1))
    second, _ = score_network(model, images[:8], FitnessConfig(**base))
    assert two.ntk == pytest.approx((one.ntk + second["ntk"]) / 2, rel=1e-9)
