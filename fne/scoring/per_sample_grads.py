"""The NTK from one batched backward: per-sample parameter gradients rebuilt layer by layer.

With frozen (or eval) BatchNorm the samples of a batch are independent, so one backward of the summed
logits of the whole batch yields, at every layer output, each sample's own gradient g_i. A layer's
per-sample parameter gradient is then a small product of g_i with that sample's layer input a_i (the
Goodfellow / BackPACK / Opacus construction):

    Linear      dW_i = g_i a_i^T            db_i = g_i
    Conv2d      dW_i = g_i @ unfold(a_i)^T  (per group)      db_i = sum_s g_i[:, s]
    BatchNorm   dgamma_i = sum_s g_i xhat_i  dbeta_i = sum_s g_i   (xhat normalised with the frozen stats)

The backward itself computes no parameter gradients (only those w.r.t. activations and the input), and
each layer's contribution G_l G_l^T to K = J J^T is accumulated as soon as its g arrives, so neither the
batch-summed weight gradients nor the full N x P Jacobian are ever formed. Models containing another
parameterised module type (or reusing a module) are reported as unsupported; the caller then uses the
torch.func path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fne.scoring.jacobians import logits_of

SUPPORTED_LAYERS = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


class UnsupportedModel(Exception):
    """The hook construction does not cover this model; use the torch.func path instead."""


def check_supported(model: nn.Module) -> None:
    """Raise UnsupportedModel if a module with trainable parameters is not Conv2d/Linear/BatchNorm."""
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if not isinstance(module, SUPPORTED_LAYERS):
            raise UnsupportedModel(f"module {name!r} ({type(module).__name__}) has parameters")
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            raise UnsupportedModel(f"conv {name!r} uses padding_mode={module.padding_mode!r}")


def _conv_rows(module: nn.Conv2d, a: torch.Tensor, g: torch.Tensor, weight: bool, bias: bool
               ) -> list[torch.Tensor]:
    rows = []
    if weight:
        rows.append(conv_weight_per_sample(module, a, g).reshape(a.shape[0], -1))
    if bias:
        rows.append(g.sum((2, 3)))
    return rows


def conv_weight_per_sample(module: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(N, *weight.shape): each sample's conv weight gradient from its input a_i and output gradient g_i.

    One strided view of the padded input per kernel offset and a batched matmul with g; this is im2col
    without materialising the unfolded input, several times faster than F.unfold on CPU.
    """
    n, channels = a.shape[:2]
    groups, (kh_size, kw_size) = module.groups, module.kernel_size
    (sh, sw), (dh, dw) = module.stride, module.dilation
    out_channels, ho, wo = g.shape[1:]
    ph, pw = module.padding if isinstance(module.padding, tuple) else _same_padding(module)
    padded = F.pad(a, (pw, pw, ph, ph)) if ph or pw else a
    grads = g.reshape(n, groups, out_channels // groups, ho * wo)
    result = torch.empty(n, groups, out_channels // groups, channels // groups, kh_size, kw_size,
                         dtype=g.dtype, device=g.device)
    for kh in range(kh_size):
        for kw in range(kw_size):
            patch = padded[:, :, kh * dh: kh * dh + sh * (ho - 1) + 1: sh, kw * dw: kw * dw + sw * (wo - 1) + 1: sw]
            patch = patch.reshape(n, groups, channels // groups, ho * wo)
            result[..., kh, kw] = torch.matmul(grads, patch.transpose(2, 3))
    return result.reshape(n, out_channels, channels // groups, kh_size, kw_size)


def _same_padding(module: nn.Conv2d) -> tuple[int, int]:
    if module.padding == "valid":
        return 0, 0
    # padding="same" (stride 1): PyTorch pads the extra pixel of an even total on the right/bottom.
    totals = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size, strict=True)]
    if any(t % 2 for t in totals):
        raise UnsupportedModel("asymmetric 'same' padding")
    return totals[0] // 2, totals[1] // 2


def _linear_rows(module: nn.Linear, a: torch.Tensor, g: torch.Tensor, weight: bool, bias: bool
                 ) -> list[torch.Tensor]:
    n = a.shape[0]
    a, g = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])  # (N, tokens, features)
    rows = []
    if weight:
        rows.append(torch.bmm(g.transpose(1, 2), a).reshape(n, -1))
    if bias:
        rows.append(g.sum(1))
    return rows


def _batch_norm_rows(module: nn.modules.batchnorm._BatchNorm, a: torch.Tensor, g: torch.Tensor, weight: bool,
                     bias: bool, stats: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    n, channels = a.shape[0], a.shape[1]
    mean, var = stats
    shape = (1, channels) + (1,) * (a.dim() - 2)
    rows = []
    g = g.reshape(n, channels, -1)
    if weight:
        xhat = (a - mean.view(shape)) * torch.rsqrt(var.view(shape) + module.eps)
        rows.append((g * xhat.reshape(n, channels, -1)).sum(2))
    if bias:
        rows.append(g.sum(2))
    return rows


def _trainable(module: nn.Module, name: str) -> bool:
    parameter = getattr(module, name, None)
    return isinstance(parameter, nn.Parameter) and parameter.requires_grad


def ntk_by_layer_hooks(model: nn.Module, images: torch.Tensor,
                       on_output: Callable[[torch.Tensor], None] | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K float64 N x N, input grads N x D, logits) from one forward and one backward of the batch.

    The model must already be in its per-sample-independent BatchNorm mode (see jacobians.batch_norm_mode);
    `on_output` receives the logits before the backward (e.g. to keep them).
    """
    check_supported(model)
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)
    # Which parameters the NTK differentiates, read before autograd is switched off for all of them.
    wanted = {module: (_trainable(module, "weight"), _trainable(module, "bias")) for module in model.modules()
              if isinstance(module, SUPPORTED_LAYERS) and any(p.requires_grad for p in module.parameters(False))}
    called: set[nn.Module] = set()
    handles = []

    def accumulate(rows: list[torch.Tensor]) -> None:
        for row in rows:
            kernel.add_((row @ row.T).double())

    def on_forward(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if module in called:
            raise UnsupportedModel(f"{type(module).__name__} is called twice (shared weights)")
        called.add(module)
        if not output.requires_grad:
            # Not downstream of the input, yet it may feed the output: its gradient is unknown here.
            raise UnsupportedModel(f"{type(module).__name__} output does not depend on the input")
        a = inputs[0].detach()
        weight, bias = wanted[module]
        stats = ((module.running_mean.detach(), module.running_var.detach())
                 if isinstance(module, nn.modules.batchnorm._BatchNorm) else None)

        def on_grad(g: torch.Tensor) -> None:
            # Fires only for outputs on a path to the logits; a dead branch contributes exactly zero.
            with torch.no_grad():
                accumulate(_layer_rows(module, a, g, weight, bias, stats))

        output.register_hook(on_grad)

    for module in wanted:
        handles.append(module.register_forward_hook(on_forward))
    try:
        input_grads, logits = _input_gradients(model, images, on_output)
    finally:
        for handle in handles:
            handle.remove()
    return 0.5 * (kernel + kernel.T), input_grads.reshape(n, -1).detach(), logits.detach()


def _layer_rows(module: nn.Module, a: torch.Tensor, g: torch.Tensor, weight: bool, bias: bool,
                stats: tuple[torch.Tensor, torch.Tensor] | None) -> list[torch.Tensor]:
    """Per-sample gradient rows of one supported layer's parameters, from its input and output gradient."""
    if isinstance(module, nn.Conv2d):
        return _conv_rows(module, a, g, weight, bias)
    if isinstance(module, nn.Linear):
        return _linear_rows(module, a, g, weight, bias)
    return _batch_norm_rows(module, a, g, weight, bias, stats)


def _input_gradients(model: nn.Module, images: torch.Tensor, on_output: Callable[[torch.Tensor], None] | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(d sum(logits) / d images, logits) of one forward and backward with every parameter frozen."""
    # Parameter gradients are rebuilt per sample by the hooks, so autograd need not form the batch sums.
    flags = [(p, p.requires_grad) for p in model.parameters()]
    x = images.detach().clone().requires_grad_(True)
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        # The hooks check `output.requires_grad`, true for every layer downstream of the input.
        logits = logits_of(model(x))
        if on_output is not None:
            on_output(logits)
        if not logits.requires_grad:
            raise UnsupportedModel("the output does not depend on the input")
        (input_grads,) = torch.autograd.grad(logits.sum(), x)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return input_grads, logits
