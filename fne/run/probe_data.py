"""The heuristic image batch of a run's evaluators: from the run's opened Dataset, or a data spec opened here.

Built on the CPU once in the parent process, so that every back end (in process, dask workers, a remote
cluster) scores the very same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fne.data.batches import probe_batch
from fne.data.dataset import Dataset
from fne.data.source import DEFAULT_IMAGE_SIZE, open_data
from fne.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """The heuristic batch: a --data spec (None: the sample) at an image size; batch_size and seed as fitness's."""

    data: str | None = None
    batch_size: int | None = None
    seed: int | None = None
    image_size: int | None = DEFAULT_IMAGE_SIZE  # 0 / None: the dataset's own size


def probe_tensors(data_spec: Dataset | DataSpec | str | Path | None, fitness_config: Any
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The heuristic batch and its labels on the CPU, from an opened Dataset (a run's) or a spec opened here."""
    if isinstance(data_spec, Dataset):
        return probe_batch(data_spec, fitness_config.batch_size, fitness_config.seed, "cpu")
    if data_spec is None or isinstance(data_spec, str | Path):
        data_spec = DataSpec(None if data_spec is None else str(data_spec))
    if not isinstance(data_spec, DataSpec):
        raise ConfigError(f"data spec {data_spec!r}: expected a DataSpec, a data folder path, None or a tensor")
    batch_size = fitness_config.batch_size if data_spec.batch_size is None else data_spec.batch_size
    seed = fitness_config.seed if data_spec.seed is None else data_spec.seed
    # Built on the CPU whatever the device: normalising on a GPU could differ in the last bit.
    return probe_batch(open_data(data_spec.data, data_spec.image_size), batch_size, seed, "cpu")


def load_images(data_spec: DataSpec | torch.Tensor | str | Path | None, fitness_config: Any) -> torch.Tensor:
    """The heuristic image batch as a contiguous CPU float32 tensor (N,3,H,W), built once in the parent."""
    if isinstance(data_spec, torch.Tensor):
        return data_spec.detach().to("cpu", torch.float32).contiguous()
    return probe_tensors(data_spec, fitness_config)[0].contiguous()


def load_labels(data_spec: DataSpec | torch.Tensor | str | Path | None, fitness_config: Any) -> torch.Tensor | None:
    """The labels of load_images' batch (None when the batch was given as a bare tensor)."""
    if isinstance(data_spec, torch.Tensor):
        return None
    return probe_tensors(data_spec, fitness_config)[1].contiguous()
