"""Where tensors live: one resolver for the `--device auto|cpu|cuda` option every command takes."""

from __future__ import annotations

import torch

from fne.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """torch.device of "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"; ConfigError otherwise."""
    if isinstance(name, torch.device):
        return name
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use --device cpu or auto")
        try:
            device = torch.device(text)
        except RuntimeError:
            raise ConfigError(f"device {name!r} is not a valid CUDA device; expected cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return device
    raise ConfigError(f"device {name!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def move_module(model: torch.nn.Module, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """`model.to(device, dtype)` in one copy: floating parameters and buffers move as one flat tensor.

    `Module.to` dispatches a copy per tensor (two ATen calls each, a host-to-device launch each on a GPU);
    a freshly built network has hundreds. Here the floating tensors are flattened into one buffer on the
    host, moved once, and the parameters and buffers become views of it. A model already there is returned
    untouched, without a call.
    """
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if all(t.device == device and t.dtype == dtype for t in tensors):
        return model
    if any(t.dtype != tensors[0].dtype for t in tensors):
        return model.to(device=device, dtype=dtype)  # mixed precision: one copy per tensor
    flat = torch._utils._flatten_dense_tensors(tensors).to(device=device, dtype=dtype)
    for tensor, view in zip(tensors, torch._utils._unflatten_dense_tensors(flat, tensors), strict=True):
        tensor.data = view
    for buffer_owner in model.modules():  # integer buffers (BatchNorm's batch count) move as they are
        for name, buffer in buffer_owner._buffers.items():
            if buffer is not None and not buffer.is_floating_point() and buffer.device != device:
                buffer_owner._buffers[name] = buffer.to(device)
    return model
