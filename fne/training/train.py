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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from fne.atomic import atomic_write, output_file
from fne.data.cifar10 import CifarArrays, load_cifar10, subset, to_tensor, train_val_split
from fne.device import resolve_device
from fne.errors import CheckpointError, ConfigError
from fne.export import ModelFile, atomic_torch_save, model_from_file, model_payload, read_model_file, torch_load_safely
from fne.genotopheno.network import seeded
from fne.training.recipe import Optimisation, TrainConfig, evaluate, train_epoch

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fne-train-checkpoint"
CHECKPOINT_VERSION = 1
LOG_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
# Settings that may change between a run and its resumption without changing what is computed.
RESUMABLE_DIFFERENCES = frozenset({"device"})


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: the per-epoch log, the model file and the checkpoint."""

    log: pd.DataFrame
    model_path: Path
    checkpoint_path: Path
    log_path: Path
    device: str


# ---------------------------------------------------------------- data
def prepare_data(data_dir: str | Path | None, config: TrainConfig) -> tuple[CifarArrays, CifarArrays]:
    """(train, val) images: val held out of the training set (stratified) or drawn from the test batch."""
    pool = load_cifar10(data_dir, "train")
    if config.val_source == "holdout":
        n_val = config.val_images or max(1, round(0.1 * len(pool)))
        train_positions, val_positions = train_val_split(pool, n_val, config.seed)
        val, pool = pool.take(val_positions), pool.take(train_positions)
    else:
        test = load_cifar10(data_dir, "test")
        val = subset(test, config.val_images, config.seed, balanced=False) if config.val_images else test
    if config.train_images is not None:
        if config.train_images > len(pool):
            raise ConfigError(f"train_images={config.train_images} but only {len(pool)} training images remain "
                              "after the held-out set")
        pool = subset(pool, config.train_images, config.seed + 1)
    return pool, val


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
    trained = ModelFile(model_file.genotype, model_file.builder, model.state_dict(), training, model_file.source)
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
        if key not in RESUMABLE_DIFFERENCES and saved.get(key) != wanted.get(key):
            raise CheckpointError(f"training checkpoint {path} was made with {key}={saved.get(key)!r}, this run asks "
                                  f"{key}={wanted.get(key)!r}; resume with the same settings or drop --resume")
    return state


def _write_log(rows: list[dict[str, float]], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    atomic_write(path, lambda stream: stream.write(frame.to_csv(index=False).encode("utf-8")))
    return frame


def train_model(model_path: str | Path, data_dir: str | Path | None, config: TrainConfig, *,
                output: str | Path | None = None, resume: bool = False, checkpoint_path: str | Path | None = None,
                log_path: str | Path | None = None, progress: bool = False) -> TrainResult:
    """Train the network of an fne model file and write the trained weights back (or to `output`)."""
    model_path = Path(model_path)
    model_file = read_model_file(model_path)
    output, checkpoint_path, log_path = _output_paths(model_path, output, checkpoint_path, log_path)
    device = resolve_device(config.device)
    use_amp = config.amp and device.type == "cuda"

    train, val = prepare_data(data_dir, config)
    log.info("training %s on %d images, validating on %d (%s), %d epochs on %s%s", model_file.genotype,
             len(train), len(val), config.val_source, config.epochs, device, " with AMP" if use_amp else "")
    train_images = torch.from_numpy(np.ascontiguousarray(train.images)).to(device)
    train_labels = torch.from_numpy(train.labels.copy()).to(device)
    val_x, val_y = to_tensor(val, device)

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
                                                desc=f"epoch {epoch + 1}/{config.epochs}")
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
    training = {"config": asdict(config), "epochs": len(rows), "train_images": len(train), "val_images": len(val),
                "data_dir": str(data_dir) if data_dir is not None else "fne sample",
                "final": dict(rows[-1]) if rows else {}}
    _save_trained(model, model_file, training, output)
    return TrainResult(frame, output, checkpoint_path, log_path, str(device))
