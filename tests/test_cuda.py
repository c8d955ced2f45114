"""CUDA correctness: scores equal the CPU's, the chunked NTK under a tiny budget, AMP training, export and load.

Every test is marked `cuda` (`pytest -m cuda`; benchmarks/gpu_check.py runs them and records the
outcome) and is skipped without a CUDA device. FNE_CUDA_TESTS_ON_CPU=1 runs the same bodies on the CPU
with tiny networks (`gpu_check.py --quick` does), so the file keeps working where no GPU is lent.

Tolerances, stated once: in float64 a score on CUDA equals the CPU's to a relative 1e-6 (the same
arithmetic up to summation order); in float32, fne's default dtype, to a relative 2e-2 with TF32 off
(a condition number amplifies the last-bit differences of the kernel; on the CPU, float32 and float64
scores of these cells differed by at most 3e-4). Network outputs after export agree to 1e-4 (float32,
TF32 off).
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from fne.data.cifar10 import load_cifar10, subset, to_tensor
from fne.export import default_builder, load_model, save_model
from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import DEFAULT_HEURISTICS, FitnessConfig, score_genotypes
from fne.scoring.heuristics import probe_network

pytestmark = pytest.mark.cuda

ON_CPU = os.environ.get("FNE_CUDA_TESTS_ON_CPU") == "1"
GENOTYPES = ("C+CC+kCC", "c+Ca+kCc", "a+kC+Cnc")  # the benchmark's best cell, two mixed cells
FLOAT64_RTOL = 1e-6
FLOAT32_RTOL = 2e-2
OUTPUT_ATOL = 1e-4


@pytest.fixture
def device() -> str:
    """"cuda" where there is one; "cpu" under FNE_CUDA_TESTS_ON_CPU=1; else the test is skipped."""
    if torch.cuda.is_available():
        return "cuda"
    if ON_CPU:
        return "cpu"
    pytest.skip("needs a CUDA device (FNE_CUDA_TESTS_ON_CPU=1 runs these tests on the CPU)")


@pytest.fixture
def no_tf32():
    """Full float32 matmuls and convolutions (cuDNN uses TF32 by default), restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def sizes(device: str) -> tuple[int, int, int]:
    """(C, cells per stage, images): NB201's own TinyNetwork and batch on CUDA, a tiny one on the CPU."""
    return (16, 5, 64) if device.startswith("cuda") else (4, 1, 8)


def real_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n class-balanced real CIFAR-10 training images (the shipped sample) and their labels, on the CPU."""
    return to_tensor(subset(load_cifar10(None, "train"), n, 0))


def score(space, genotypes, x, y, config):
    """score_genotypes with the labels where it takes them (the loss-based scores need them)."""
    labels = {"labels": y} if "labels" in inspect.signature(score_genotypes).parameters else {}
    return score_genotypes(space, genotypes, x, config, **labels)


def assert_same_scores(cpu, gpu, names, rtol: float) -> None:
    """Each named score agrees (both undefined, or within rtol) row by row, naming the first mismatch."""
    for name in names:
        for genotype, a, b in zip(cpu["genotype"], cpu[name], gpu[name]):
            if math.isinf(a) or math.isinf(b):
                assert math.isinf(a) and math.isinf(b), f"{name} of {genotype}: cpu {a}, cuda {b}"
            else:
                assert math.isclose(a, b, rel_tol=rtol, abs_tol=1e-9), f"{name} of {genotype}: cpu {a}, cuda {b}"


# float64 on two genotypes only: the CPU side of the full-size network is the slow part of this file.
@pytest.mark.parametrize("dtype,rtol,count", [("float64", FLOAT64_RTOL, 2), ("float32", FLOAT32_RTOL, 3)])
def test_default_scores_on_cuda_equal_cpu(device, no_tf32, dtype, rtol, count):
    C, layers, n = sizes(device)
    x, y = real_batch(n)
    config = FitnessConfig(batch_size=n, device="cpu", dtype=dtype, heuristics=DEFAULT_HEURISTICS, C=C,
                           layers=layers)
    space = get_space("nb201")
    cpu = score(space, GENOTYPES[:count], x, y, config)
    gpu = score(space, GENOTYPES[:count], x, y, replace(config, device=device))
    assert set(gpu["device"]) == {str(torch.device(device))}
    assert list(cpu["params"]) == list(gpu["params"]) and list(cpu["flops"]) == list(gpu["flops"])
    assert_same_scores(cpu, gpu, DEFAULT_HEURISTICS, rtol)
    assert np.isfinite(cpu[list(DEFAULT_HEURISTICS)].to_numpy(float)).any(), "every score undefined: test is void"


def test_tiny_memory_budget_chunks_the_ntk_and_agrees(device):
    C, layers, n = sizes(device)
    n = min(n, 16)  # the tiniest budget recomputes chunk gradients pairwise: n^2/2 passes
    x, y = real_batch(n)
    config = FitnessConfig(batch_size=n, device=device, dtype="float64", heuristics=DEFAULT_HEURISTICS, C=C,
                           layers=layers)
    tiny = replace(config, memory_budget_mib=0.01)
    space = get_space("nb201")
    model = space.build(GENOTYPES[0], C=C, layers=layers, seed=0).to(device, torch.float64)
    batch = x.to(device, torch.float64)
    whole = probe_network(model, batch, {"ntk"}, config.probe_settings())
    chunked = probe_network(model, batch, {"ntk"}, tiny.probe_settings())
    assert whole.ntk_method != chunked.ntk_method, "the tiny budget did not change the NTK path"
    np.testing.assert_allclose(chunked.ntk_kernel, whole.ntk_kernel, rtol=FLOAT64_RTOL, atol=1e-12)
    assert_same_scores(score(space, GENOTYPES[:2], x, y, config), score(space, GENOTYPES[:2], x, y, tiny),
                       DEFAULT_HEURISTICS, FLOAT64_RTOL)


def test_amp_training_step_and_train_model(device, tmp_path):
    from fne.training import TrainConfig, train_epoch, train_model

    cuda = device.startswith("cuda")
    builder = default_builder("darts", C=8 if cuda else 4, layers=5)
    path = save_model(tmp_path / "model.pt", "DARTS_V2", builder)
    model = load_model(path, device).train()
    before = [p.detach().clone() for p in model.parameters()]
    data = subset(load_cifar10(None, "train"), 64, 0)
    images = torch.from_numpy(np.ascontiguousarray(data.images)).to(device)
    labels = torch.from_numpy(data.labels.copy()).to(device)
    config = TrainConfig(batch_size=32, device=device)
    optimizer = torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum)
    scaler = torch.amp.GradScaler("cuda") if cuda else None  # AMP is fne's CUDA-only path
    shuffle, augment = torch.Generator().manual_seed(0), torch.Generator(device=device).manual_seed(1)
    loss, accuracy = train_epoch(model, images, labels, optimizer, config, shuffle, augment, scaler)
    assert math.isfinite(loss) and 0.0 <= accuracy <= 100.0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no parameter moved"
    if scaler is not None:
        assert math.isfinite(scaler.get_scale()) and scaler.get_scale() > 0
    result = train_model(path, None, TrainConfig(epochs=1, train_images=64, val_images=32, device=device),
                         output=tmp_path / "trained.pt")
    assert result.device.startswith(device) and len(result.log) == 1
    assert np.isfinite(result.log[["train_loss", "val_loss"]].to_numpy()).all()
    assert torch.isfinite(load_model(result.model_path)(real_batch(8)[0])).all()  # trained on device, loads on CPU


@pytest.mark.parametrize("space,genotype", [("darts", "DARTS_V2"), ("nb201", GENOTYPES[0])])
def test_export_and_load_model_on_cuda(device, no_tf32, tmp_path, space, genotype):
    small = device == "cpu"
    builder = default_builder(space, C=4 if small else None, layers=(5 if space == "darts" else 1) if small else None)
    path = save_model(tmp_path / f"{space}.pt", genotype, builder)
    on_device, on_cpu = load_model(path, device), load_model(path, "cpu")
    assert {p.device.type for p in on_device.parameters()} == {torch.device(device).type}
    assert not on_device.training
    x = real_batch(16)[0]
    with torch.no_grad():
        expected, got = on_cpu(x), on_device(x.to(device)).cpu()
    torch.testing.assert_close(got, expected, rtol=0, atol=OUTPUT_ATOL)
