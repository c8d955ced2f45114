"""`fne train`: train an exported network with the DARTS evaluation recipe (recipe.py), resumably.

Recipe (Liu et al., "DARTS", ICLR 2019, quark0/darts `cnn/train.py`): SGD with momentum 0.9 and weight
decay 3e-4, lr 0.025 on a cosine schedule to 0, batch 96, gradient-norm clip 5, drop-path rising
linearly from 0 to its maximum over the epochs, auxiliary loss weight 0.4, and the CIFAR augmentation
random crop (padding 4), horizontal flip and cutout 16 (DeVries & Taylor 2017). The augmentation runs
on whole batches on the device (no torchvision). On CUDA it trains in mixed precision (torch.autocast
+ GradScaler). Every epoch appends a CSV row and writes an atomic checkpoint that `resume` continues
from; the trained weights go back into an fne model file.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from fne.atomic import atomic_write, output_file
from fne.data.batches import probe_positions, to_tensors
from fne.data.cifar10 import train_val_split
from fne.data.dataset import Dataset
from fne.data.source import open_data, uint8_images
from fne.device import resolve_device
from fne.errors import CheckpointError, ConfigError, DataError
from fne.export import (
    ModelFile,
    atomic_torch_save,
    model_data,
    model_from_file,
    model_payload,
    read_model_file,
    torch_load_safely,
)
from fne.genotopheno.network import seeded
from fne.training.recipe import Optimisation, TrainConfig, evaluate, train_epoch

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fne-train-checkpoint"
CHECKPOINT_VERSION = 1
LOG_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
# Settings that may change between a run and its resumption without changing what is computed.
RESUMABLE_DIFFERENCES = frozenset({"device"})
NEW_SETTINGS = frozenset({"data", "image_size"})  # not in checkpoints written before fne read other datasets


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: the per-epoch log, the model file and the checkpoint."""

    log: pd.DataFrame
    model_path: Path
    checkpoint_path: Path
    log_path: Path
    device: str


# ---------------------------------------------------------------- data
Split = tuple[str, np.ndarray]  # (split of the Dataset, positions in it)


def prepare_data(dataset: Dataset, config: TrainConfig) -> tuple[Split, Split]:
    """(train, val) positions: val held out of the training split (stratified) or drawn from the held-out split."""
    pool = np.arange(dataset.train_size)
    if config.val_source == "holdout":
        n_val = config.val_images or max(1, round(0.1 * len(pool)))
        train_positions, val_positions = train_val_split(dataset.train_labels, n_val, config.seed)
        val, pool = ("train", val_positions), train_positions
    else:
        if not dataset.val_size:
            raise DataError(f"{dataset.path} has no held-out images for --val-source test; use holdout")
        positions = np.arange(dataset.val_size)
        if config.val_images:  # cifar10.subset(test, n, seed, balanced=False): one seeded draw over the classes
            pools = np.concatenate([np.flatnonzero(dataset.val_labels == c) for c in range(dataset.num_classes)])
            positions = np.sort(np.random.default_rng(config.seed).choice(pools, config.val_images, replace=False))
        val = ("val", positions)
    if config.train_images is not None:
        if config.train_images > len(pool):
            raise ConfigError(f"train_images={config.train_images} but only {len(pool)} training images remain "
                              "after the held-out set")
        labels = dataset.train_labels[pool]  # cifar10.subset(pool, n, seed + 1): class-balanced
        pool = pool[probe_positions(labels, dataset.num_classes, config.train_images, config.seed + 1,
                                    dataset.classes, dataset.path)]
    return ("train", pool), val


def training_dataset(model_file: ModelFile, config: TrainConfig) -> Dataset:
    """The Dataset of `config.data` at the model file's input size; DataError unless its classes are the file's."""
    size = model_file.input_size[0] if config.image_size is None else config.image_size
    dataset = open_data(config.data, size)
    recorded = model_file.data or {}
    classes = recorded.get("classes")
    if (classes is not None and list(classes) != list(dataset.classes)) or \
            dataset.num_classes != model_file.builder.num_classes:
        made = ", ".join(classes) if classes else f"{model_file.builder.num_classes} classes"
        raise DataError(f"{dataset.path} has classes {', '.join(dataset.classes)}; the model file was made for "
                        f"{made} (export it for this data with fne export --data)")
    return dataset


# ---------------------------------------------------------------- the run
def default_paths(output: Path) -> tuple[Path, Path]:
    """(checkpoint, CSV log) paths beside a model file: model.pt -> model.ckpt.pt, model.train.csv."""
    return output.with_suffix(".ckpt.pt"), output.with_suffix(".train.csv")


def _output_paths(model_path: Path, output: str | Path | None, checkpoint_path: str | Path | None,
                  log_path: str | Path | None) -> tuple[Path, Path, Path]:
    """(trained model file, checkpoint, log) with their defaults, each checked writable before any epoch runs."""
    output = Path(output) if output is not None else model_path
    default_checkpoint, default_log = default_paths(output)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else default_checkpoint
    log_path = Path(log_path) if log_path else default_log
    # Checked before an epoch is spent: a bad path would otherwise fail at the end of the first one.
    outputs = {"trained model file": output, "training log": log_path, "training checkpoint": checkpoint_path}
    for what, path in outputs.items():
        output_file(path, what, overwrite=True)
    return output, checkpoint_path, log_path


def _resume(path: Path, model_file: ModelFile, config: TrainConfig, model: nn.Module, parts: Optimisation,
            device: torch.device) -> tuple[list[dict[str, float]], int]:
    """Load a training checkpoint into the model and the optimisation parts: (log rows so far, epochs done)."""
    state = _read_checkpoint(path, model_file, config)
    model.load_state_dict(state["model"])
    parts.restore(state, device, config)
    log.info("resuming %s after epoch %d", path, int(state["epoch"]))
    return list(state["log"]), int(state["epoch"])


def _save_trained(model: nn.Module, model_file: ModelFile, training: dict[str, Any], output: Path) -> None:
    """Write the trained weights and the training record as a model file, drop-path back at its default."""
    model.set_drop_path(model_file.builder.drop_path_prob)
    trained = ModelFile(model_file.genotype, model_file.builder, model.state_dict(), training, model_file.source,
                        data=model_file.data)
    atomic_torch_save(model_payload(trained), output)


def _read_checkpoint(path: Path, model_file: ModelFile, config: TrainConfig) -> dict[str, Any]:
    state = torch_load_safely(path, "training checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an fne training checkpoint (written by `fne train`)")
    if state.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"training checkpoint {path} has format version {state.get('format_version')!r}; "
                              f"this fne reads version {CHECKPOINT_VERSION}")
    if state.get("genotype") != model_file.genotype or state.get("builder") != asdict(model_file.builder):
        raise CheckpointError(f"training checkpoint {path} belongs to another network ({state.get('genotype')}); "
                              f"the model file holds {model_file.genotype}")
    saved, wanted = state.get("config", {}), asdict(config)
    for key in sorted(set(saved) | set(wanted)):
        if key in NEW_SETTINGS and key not in saved:  # a checkpoint from before the setting existed
            continue
        if key not in RESUMABLE_DIFFERENCES and saved.get(key) != wanted.get(key):
            raise CheckpointError(f"training checkpoint {path} was made with {key}={saved.get(key)!r}, this run asks "
                                  f"{key}={wanted.get(key)!r}; resume with the same settings or drop --resume")
    return state


def _write_log(rows: list[dict[str, float]], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    atomic_write(path, lambda stream: stream.write(frame.to_csv(index=False).encode("utf-8")))
    return frame


def train_model(model_path: str | Path, data: str | Path | None, config: TrainConfig, *,
                output: str | Path | None = None, resume: bool = False, checkpoint_path: str | Path | None = None,
                log_path: str | Path | None = None, progress: bool = False) -> TrainResult:
    """Train the network of an fne model file on `data` (else config.data) and write the trained weights back."""
    model_path = Path(model_path)
    model_file = read_model_file(model_path)
    if data is not None:
        config = replace(config, data=str(data))
    output, checkpoint_path, log_path = _output_paths(model_path, output, checkpoint_path, log_path)
    device = resolve_device(config.device)
    use_amp = config.amp and device.type == "cuda"

    dataset = training_dataset(model_file, config)
    train, val = prepare_data(dataset, config)
    log.info("training %s on %d images, validating on %d (%s), %d epochs on %s%s", model_file.genotype,
             len(train[1]), len(val[1]), config.val_source, config.epochs, device, " with AMP" if use_amp else "")
    train_images = uint8_images(dataset, train[1], train[0], device)
    train_labels = torch.from_numpy(dataset.labels(train[0])[train[1]].copy()).to(device)
    val_x, val_y = to_tensors(dataset, val[1], val[0], device)

    model = model_from_file(model_file, model_path).to(device)
    drop_path_max = model_file.builder.drop_path_prob if config.drop_path_prob is None else config.drop_path_prob
    parts = Optimisation.start(model, config, device, use_amp)
    rows, start_epoch = _resume(checkpoint_path, model_file, config, model, parts, device) if resume else ([], 0)

    epochs = tqdm(range(start_epoch, config.epochs), desc="train", unit="epoch", initial=start_epoch,
                  total=config.epochs, disable=not progress)
    for epoch in epochs:
        began = time.perf_counter()
        lr = parts.optimizer.param_groups[0]["lr"]
        model.set_drop_path(drop_path_max * epoch / config.epochs)
        # Drop-path masks come from torch's global RNG (cells.py): seed it per epoch, inside a fork so the
        # caller's state is untouched, and a resumed run draws the same masks as an uninterrupted one.
        with seeded(config.seed * 100_003 + epoch):
            train_loss, train_acc = train_epoch(model, train_images, train_labels, parts.optimizer, config,
                                                parts.shuffle, parts.augment, parts.scaler, progress,
                                                desc=f"epoch {epoch + 1}/{config.epochs}", stats=dataset.stats)
        parts.scheduler.step()
        val_loss, val_acc = evaluate(model, val_x, val_y, amp=use_amp)
        if not math.isfinite(train_loss):
            raise ConfigError(f"training diverged at epoch {epoch + 1} (loss {train_loss}); lower --lr")
        rows.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                     "val_loss": val_loss, "val_acc": val_acc, "seconds": time.perf_counter() - began})
        log.info("epoch %d/%d lr %.5f train loss %.4f acc %.2f%% val loss %.4f acc %.2f%% (%.1f s)", epoch + 1,
                 config.epochs, lr, train_loss, train_acc, val_loss, val_acc, rows[-1]["seconds"])
        epochs.set_postfix(train_loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.1f}%")
        _write_log(rows, log_path)
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "genotype": model_file.genotype,
            "builder": asdict(model_file.builder), "config": asdict(config), "epoch": epoch + 1,
            "model": model.state_dict(), **parts.state(device), "log": rows,
        }, checkpoint_path)

    frame = _write_log(rows, log_path)
    training = {"config": asdict(config), "epochs": len(rows), "train_images": len(train[1]),
                "val_images": len(val[1]), "data": config.data or "fne sample", "final": dict(rows[-1]) if rows else {}}
    _save_trained(model, replace(model_file, data=model_data(dataset.describe())), training, output)
    return TrainResult(frame, output, checkpoint_path, log_path, str(device))
