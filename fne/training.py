"""Train an exported network with the DARTS evaluation recipe, augmenting on the device with tensor ops.

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
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fne.atomic import atomic_write, output_file
from fne.data.cifar10 import CifarArrays, load_cifar10, normalize, subset, to_tensor, train_val_split
from fne.device import resolve_device
from fne.errors import CheckpointError, ConfigError
from fne.export import ModelFile, atomic_torch_save, model_from_file, model_payload, read_model_file, torch_load_safely
from fne.genotopheno.network import seeded

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fne-train-checkpoint"
CHECKPOINT_VERSION = 1
LOG_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
# Settings that may change between a run and its resumption without changing what is computed.
RESUMABLE_DIFFERENCES = frozenset({"device"})


@dataclass(frozen=True)
class TrainConfig:
    """The DARTS CIFAR-10 evaluation recipe; None sizes mean "all" (train) and "10% held out" (val)."""

    epochs: int = 600
    batch_size: int = 96
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 16
    drop_path_prob: float | None = None  # None: the model file's builder value
    auxiliary_weight: float = 0.4
    train_images: int | None = None
    val_images: int | None = None
    val_source: str = "holdout"  # "holdout" (from the training set) or "test" (the test batch)
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, used only on CUDA

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs={self.epochs} must be at least 1"),
            (self.batch_size >= 2, f"batch_size={self.batch_size} must be at least 2 (batch norm)"),
            (self.lr > 0 and 0 <= self.lr_min <= self.lr, f"need lr > 0 and 0 <= lr_min <= lr, got {self.lr}, "
                                                          f"{self.lr_min}"),
            (0 <= self.momentum < 1, f"momentum={self.momentum} must be in [0, 1)"),
            (self.weight_decay >= 0 and self.grad_clip >= 0, "weight_decay and grad_clip must be >= 0"),
            (self.crop_padding >= 0 and self.cutout >= 0, "crop_padding and cutout must be >= 0"),
            (self.drop_path_prob is None or 0 <= self.drop_path_prob < 1,
             f"drop_path_prob={self.drop_path_prob} must be in [0, 1)"),
            (self.auxiliary_weight >= 0, f"auxiliary_weight={self.auxiliary_weight} must be >= 0"),
            (self.train_images is None or self.train_images >= 2, f"train_images={self.train_images} must be >= 2"),
            (self.val_images is None or self.val_images >= 1, f"val_images={self.val_images} must be >= 1"),
            (self.val_source in ("holdout", "test"), f"val_source={self.val_source!r}: expected holdout or test"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: the per-epoch log, the model file and the checkpoint."""

    log: pd.DataFrame
    model_path: Path
    checkpoint_path: Path
    log_path: Path
    device: str


# ---------------------------------------------------------------- augmentation (batched tensor ops)
def crop_at(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad NHWC images by `padding` and cut each back to its size at its (row, col) offset."""
    n, h, w, _ = images.shape
    padded = F.pad(images, (0, 0, padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """torchvision's RandomCrop(size, padding) on a whole NHWC batch: uniform offsets in 0..2*padding."""
    if padding == 0:
        return images
    offsets = torch.randint(0, 2 * padding + 1, (images.shape[0], 2), generator=generator,
                            device=images.device)
    return crop_at(images, offsets, padding)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each NHWC image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(2), images)


def cutout_at(x: torch.Tensor, centers: torch.Tensor, length: int) -> torch.Tensor:
    """Zero a length x length square (clipped at the border) around each NCHW image's (row, col) centre."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    # DARTS utils.Cutout: rows clip(y - L//2, 0, h) .. clip(y + L//2, 0, h), end exclusive.
    in_rows = (rows >= centers[:, 0, None] - length // 2) & (rows < centers[:, 0, None] + length // 2)
    in_cols = (cols >= centers[:, 1, None] - length // 2) & (cols < centers[:, 1, None] + length // 2)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)


def random_cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017) on a normalised NCHW batch: one square per image, centre uniform."""
    if length == 0:
        return x
    n, _, h, w = x.shape
    limits = torch.tensor([h, w], device=x.device)
    centers = (torch.rand(n, 2, generator=generator, device=x.device) * limits).long()
    return cutout_at(x, centers, length)


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True,
                  cutout: int = 16) -> torch.Tensor:
    """uint8 NHWC batch -> crop, flip, normalise, cutout (DARTS's order) -> float32 NCHW network input."""
    images = random_crop(images, padding, generator)
    if flip:
        images = random_flip(images, generator)
    return random_cutout(normalize(images), cutout, generator)


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


# ---------------------------------------------------------------- one epoch
def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, auxiliary_weight: float):
    logits, aux = model.forward_with_aux(x)
    loss = F.cross_entropy(logits, y)
    if aux is not None and auxiliary_weight > 0:
        loss = loss + auxiliary_weight * F.cross_entropy(aux, y)
    return logits, loss


def train_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                config: TrainConfig, shuffle: torch.Generator, augment: torch.Generator,
                scaler: torch.amp.GradScaler | None, progress: bool = False, desc: str = "") -> tuple[float, float]:
    """One pass over uint8 NHWC training images; returns (mean loss, accuracy %) of the main head."""
    model.train()
    device = images.device
    order = torch.randperm(len(labels), generator=shuffle).to(device)
    total_loss, correct, seen = 0.0, 0, 0
    batches = range(0, len(order), config.batch_size)
    for start in tqdm(batches, desc=desc, disable=not progress, leave=False, unit="batch"):
        index = order[start:start + config.batch_size]
        if len(index) < 2:  # a single image breaks batch norm in the auxiliary head
            continue
        x = augment_batch(images[index], augment, config.crop_padding, config.flip, config.cutout)
        y = labels[index]
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=scaler is not None):
            logits, loss = _loss(model, x, y, config.auxiliary_weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
        with torch.no_grad():
            main_loss = F.cross_entropy(logits.float(), y)
        total_loss += float(main_loss) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return total_loss / max(seen, 1), 100.0 * correct / max(seen, 1)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
             amp: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, accuracy %) of the eval-mode network on normalised NCHW images."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=amp):
            logits = model(xb).float()
        total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return total_loss / len(y), 100.0 * correct / len(y)


# ---------------------------------------------------------------- the run
def default_paths(output: Path) -> tuple[Path, Path]:
    """(checkpoint, CSV log) paths beside a model file: model.pt -> model.ckpt.pt, model.train.csv."""
    return output.with_suffix(".ckpt.pt"), output.with_suffix(".train.csv")


def _generator(device: torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


@dataclass
class _Optimisation:
    """The optimiser, LR schedule, AMP scaler and two RNG streams of a run: a checkpoint's state besides the model."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    shuffle: torch.Generator
    augment: torch.Generator

    @classmethod
    def start(cls, model: nn.Module, config: TrainConfig, device: torch.device, use_amp: bool) -> _Optimisation:
        """DARTS's SGD, cosine schedule; shuffling on the CPU (device-independent order), augmenting on the device."""
        optimizer = torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, eta_min=config.lr_min)
        return cls(optimizer, scheduler, torch.amp.GradScaler("cuda") if use_amp else None,
                   _generator(torch.device("cpu"), config.seed), _generator(device, config.seed + 1))

    def restore(self, state: dict[str, Any], device: torch.device, config: TrainConfig) -> None:
        """Load a checkpoint's optimiser, schedule, scaler and RNG states."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.shuffle.set_state(state["shuffle_rng"])
        if state.get("augment_device") == str(device):
            self.augment.set_state(state["augment_rng"])
        else:  # a generator state only fits its own device type; reseed deterministically from the epoch
            self.augment.manual_seed(config.seed + 1 + 1000003 * int(state["epoch"]))

    def state(self, device: torch.device) -> dict[str, Any]:
        """The checkpoint entries of these parts."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "shuffle_rng": self.shuffle.get_state(), "augment_rng": self.augment.get_state(),
                "augment_device": str(device)}


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


def _resume(path: Path, model_file: ModelFile, config: TrainConfig, model: nn.Module, parts: _Optimisation,
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
    parts = _Optimisation.start(model, config, device, use_amp)
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
