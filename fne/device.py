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
