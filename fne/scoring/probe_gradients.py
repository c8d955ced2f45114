"""The two gradient passes that cannot share the probe's forward: ZiCo's loss gradients and synflow's.

    loss_grads  per Conv2d/Linear weight, its cross-entropy gradient on each of `splits` parts of the batch,
                flattened into one (splits, numel) tensor that stays on the device
                (ZiCo, Li et al., ICLR 2023: the gradients of separate mini-batches)
    synflow     per Conv2d/Linear weight, sum |theta * dR/dtheta| with R the summed output of the network
                on an all-ones input, all parameters made positive, BatchNorm bypassed, in float64
                (Tanaka et al., NeurIPS 2020; the zero-cost proxy of Abdelfattah et al., ICLR 2021)

Neither changes the model: gradients are taken with torch.autograd.grad (no .grad is written) and
synflow's positive float64 parameters are a functional copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch._utils import _flatten_dense_tensors
from torch.func import functional_call

from fne.scoring.jacobians import batch_norm_mode, logits_of

WEIGHTED_LAYERS = (nn.Conv2d, nn.Linear)  # the layers ZiCo and synflow sum over (their reference code)
ZICO_SPLITS = 2  # ZiCo's NB201 code (as run by AZ-NAS) uses two mini-batches


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Conv2d/Linear with a trainable weight, in module order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, WEIGHTED_LAYERS) and m.weight.requires_grad]


@dataclass(frozen=True)
class LossGradients:
    """ZiCo's measurement: every reached Conv2d/Linear weight's loss gradient on each split, on the device."""

    flat: torch.Tensor  # float64 (splits, total numel): the weights' gradients flattened and concatenated
    sizes: tuple[int, ...]  # numel of each weight, in module order: the segments of `flat`


def loss_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_norm: str = "frozen",
                   splits: int = ZICO_SPLITS) -> LossGradients:
    """Per Conv2d/Linear weight (in module order), its loss gradient on each of `splits` parts of the batch.

    The batch is cut into `splits` consecutive parts; each part runs its own forward (BatchNorm statistics
    of that part, as a mini-batch in ZiCo's train-mode code) and backward of the mean cross-entropy
    against `labels`. A weight that no part's loss reaches is left out, as ZiCo's code skips a None grad.
    """
    if labels.shape[:1] != images.shape[:1]:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not match {images.shape[0]} images")
    weights = [m.weight for _, m in weighted_layers(model)]
    if labels.device != images.device or labels.dtype != torch.long:
        labels = labels.to(images.device, torch.long)
    parts: list[tuple[torch.Tensor | None, ...]] = []
    for x, y in zip(images.tensor_split(splits), labels.tensor_split(splits), strict=True):
        with batch_norm_mode(model, batch_norm):
            loss = F.cross_entropy(logits_of(model(x)), y)
            parts.append(torch.autograd.grad(loss, weights, allow_unused=True))
    reached = [i for i in range(len(weights)) if all(part[i] is not None for part in parts)]
    if not reached:
        return LossGradients(torch.zeros(splits, 0, dtype=torch.float64, device=images.device), ())
    flat = torch.stack([_flatten_dense_tensors([part[i] for i in reached]) for part in parts]).double()
    return LossGradients(flat, tuple(weights[i].numel() for i in reached))


@contextmanager
def _bypassing_batch_norm(model: nn.Module) -> Iterator[None]:
    # A forward hook that returns its input replaces the layer's output: BatchNorm becomes the identity,
    # as NASLib's `synflow` measure (bn=False) replaces BatchNorm's forward by a no-op.
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    handles = [m.register_forward_hook(lambda _m, inputs, _out: inputs[0]) for m in layers]
    was_training = model.training
    model.eval()  # the bypassed layers still run: eval mode keeps them from needing batch statistics
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def synflow_by_layer(model: nn.Module, input_shape: Sequence[int]) -> np.ndarray:
    """Per Conv2d/Linear weight (module order), sum |theta * dR/dtheta| in float64 (see the module docstring).

    R = sum of the outputs for one all-ones input of `input_shape` (C, H, W), every parameter and buffer
    replaced by its absolute value in float64, BatchNorm bypassed.
    """
    device = next(model.parameters()).device
    params = {name: p.detach().double().abs().requires_grad_(p.requires_grad)
              for name, p in model.named_parameters()}
    buffers = {name: (b.double().abs() if b.is_floating_point() else b) for name, b in model.named_buffers()}
    x = torch.ones(1, *input_shape, dtype=torch.float64, device=device)
    with _bypassing_batch_norm(model):
        output = logits_of(functional_call(model, (params, buffers), (x,))).sum()
    names = [f"{name}.weight" if name else "weight" for name, _ in weighted_layers(model)]
    wanted = [params[name] for name in names]
    grads = torch.autograd.grad(output, wanted, allow_unused=True) if output.requires_grad else [None] * len(wanted)
    zero = torch.zeros((), dtype=torch.float64, device=device)
    sums = [(w * g).abs().sum().detach() if g is not None else zero for w, g in zip(wanted, grads, strict=True)]
    return torch.stack(sums).cpu().numpy() if sums else np.zeros(0)
