"""resolve_device: the one place `--device auto|cpu|cuda` is interpreted."""

import pytest
import torch

from fne.device import resolve_device
from fne.errors import ConfigError


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_or_unavailable_devices_are_config_errors():
    with pytest.raises(ConfigError, match="not one of auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    else:
        with pytest.raises(ConfigError, match="visible"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
